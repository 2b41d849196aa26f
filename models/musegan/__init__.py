"""MuseGAN: the multi-track ensemble family (four chorale voices), in PyTorch."""
