"""Down-sampled MNIST: 10×10 (Choromanska et al. §5.1) and 7×7 with 5 classes (Thesis §6.3.3)."""

from __future__ import annotations

import os
from dataclasses import replace

import torch
import torch.nn.functional as F

from .mnist import load_mnist
from .splits import DataSplits, Split


def downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Area down-sampling of (n, c, H, W) images to size×size: each output pixel is the mean of the input
    pixels its cell covers (``F.adaptive_avg_pool2d``; exact 4×4 block means for 28→7). Means keep
    pixels in [−1, 1]. The papers do not state the down-sampling method."""
    if size < 1 or size > x.shape[-1]:
        raise ValueError(f"size must lie in [1, {x.shape[-1]}], got {size}")
    return F.adaptive_avg_pool2d(x, size)


def _select(split: Split, size: int, classes: tuple[int, ...] | None) -> Split:
    x, y = split.x, split.y
    if classes is not None:
        keep = torch.isin(y, torch.tensor(classes))
        x, y = x[keep], y[keep]
        y = torch.searchsorted(torch.tensor(sorted(classes)), y)
    return Split(downsample(x, size), y)


def load_mnist_small(
    path: str | os.PathLike | None = None,
    *,
    size: int = 10,
    classes: tuple[int, ...] | None = None,
    val_fraction: float = 0.12,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> DataSplits:
    """MNIST (:func:`~deeplandscape.data.mnist.load_mnist`) down-sampled to size×size, optionally restricted
    to ``classes`` (relabelled 0…len(classes)−1 in increasing order).

    Choromanska et al. §5.1: "each image was downsampled to size 10×10". Thesis §6.3.3 (tiny-fc): 7×7
    images and 5 output classes ("30,000 input images", about the number of training digits 0–4).
    """
    if classes is not None:
        classes = tuple(sorted(set(int(c) for c in classes)))
        if not classes or min(classes) < 0 or max(classes) > 9:
            raise ValueError(f"classes must be a non-empty subset of 0…9, got {classes!r}")
    base = load_mnist(path, val_fraction=val_fraction, seed=seed, cache_dir=cache_dir)
    name = f"mnist-{size}x{size}" + (f"-{len(classes)}class" if classes is not None else "")
    return replace(
        base,
        name=name,
        train=_select(base.train, size, classes),
        val=_select(base.val, size, classes),
        test=_select(base.test, size, classes),
        num_classes=10 if classes is None else len(classes),
        input_shape=(1, size, size),
        info={"classes": classes if classes is not None else tuple(range(10))},
    )


def load_mnist_10x10(path: str | os.PathLike | None = None, **kw) -> DataSplits:
    """Choromanska et al. §5.1: MNIST down-sampled to 10×10, all 10 classes."""
    return load_mnist_small(path, size=10, **kw)


def load_mnist_7x7_5class(path: str | os.PathLike | None = None, **kw) -> DataSplits:
    """Thesis §6.3.3: MNIST down-sampled to 7×7, digits 0–4 (5 classes)."""
    kw.setdefault("classes", (0, 1, 2, 3, 4))
    return load_mnist_small(path, size=7, **kw)
