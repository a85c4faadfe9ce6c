"""Small model and data factories for trying the instruments (and ``deeplandscape inspect``) offline.

``deeplandscape inspect --model deeplandscape.analysis.examples:tiny_mlp
--data deeplandscape.analysis.examples:gaussian_blobs`` runs with nothing downloaded: the data are
Gaussian blobs generated from a seed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def tiny_mlp(input_dim: int = 2, hidden: int = 16, classes: int = 3, *, seed: int = 0) -> nn.Module:
    """A two-hidden-layer tanh MLP ``input_dim → hidden → hidden → classes``, initialized from ``seed``."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return nn.Sequential(
            nn.Linear(input_dim, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, classes),
        )
    finally:
        torch.random.set_rng_state(generator_state)


def tiny_cnn(channels: int = 4, classes: int = 3, *, seed: int = 0) -> nn.Module:
    """A small CNN for 1 × 8 × 8 inputs: conv-BatchNorm-ReLU, conv-ReLU-pool, linear; ``seed`` initializes."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        return nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(channels * 4 * 4, classes),
        )
    finally:
        torch.random.set_rng_state(generator_state)


def gaussian_blobs(
    n: int = 256,
    input_dim: int = 2,
    classes: int = 3,
    *,
    spread: float = 0.6,
    batch_size: int = 64,
    seed: int = 0,
) -> list[tuple[Tensor, Tensor]]:
    """``n`` points in ``classes`` Gaussian blobs (centres on a circle of radius 2 in the first two
    coordinates, standard deviation ``spread``), as a list of ``(inputs, labels)`` batches of
    ``batch_size``. Deterministic in ``seed``.
    """
    if n < 1 or classes < 1 or input_dim < 2 or batch_size < 1:
        raise ValueError(
            f"Invalid blobs: n={n}, input_dim={input_dim}, classes={classes}, batch_size={batch_size}; "
            "need n, classes, batch_size >= 1 and input_dim >= 2"
        )
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    angles = 2 * torch.pi * labels.double() / classes
    centres = torch.zeros(n, input_dim, dtype=torch.float64)
    centres[:, 0], centres[:, 1] = 2 * torch.cos(angles), 2 * torch.sin(angles)
    inputs = (centres + spread * torch.randn(n, input_dim, generator=g, dtype=torch.float64)).float()
    return [(inputs[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, n, batch_size)]


def image_blobs(
    n: int = 128, classes: int = 3, *, batch_size: int = 32, seed: int = 0
) -> list[tuple[Tensor, Tensor]]:
    """Gaussian blobs shaped as 1 × 8 × 8 images (for :func:`tiny_cnn`): each class a fixed random mean image
    plus unit noise, as a list of ``(inputs, labels)`` batches. Deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, 1, 8, 8, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    inputs = means[labels] + torch.randn(n, 1, 8, 8, generator=g)
    return [(inputs[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, n, batch_size)]
