"""Tokens: the vocabulary's layout, its codec (notes <-> tokens) and its grammar."""
