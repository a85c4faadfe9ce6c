"""Experiments: one module per figure or table of the papers."""
