"""Landscape instruments for any ``nn.Module`` with a loss and data."""
