"""The transfer family: a conditional VAE over phrases and a performance decoder (training, evaluation)."""
