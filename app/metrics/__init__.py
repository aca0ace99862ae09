"""Disentanglement metrics against ground-truth factors (see scores.py)."""
