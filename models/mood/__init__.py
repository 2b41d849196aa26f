"""The mood recogniser: data (labelled phrases), the model, training and evaluation."""
