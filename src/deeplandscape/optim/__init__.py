"""Landscape-shaping optimizers, as native ``torch.optim`` optimizers."""
