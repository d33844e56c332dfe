"""Encoder-decoder pieces: attention, the model, and search."""
