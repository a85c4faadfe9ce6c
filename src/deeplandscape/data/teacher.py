"""Teacher-labelled data (Sagun et al. §3.1.3): inputs labelled with a teacher network's soft-max outputs."""

from __future__ import annotations

import torch
from torch import nn

from .splits import DataSplits, make_splits


@torch.no_grad()
def soft_labels(teacher: nn.Module, x: torch.Tensor, *, temperature: float = 1.0, batch_size: int = 1024):
    """Sagun et al. §3.1.3: "replacing actual tags with the probabilities assigned by the outputs of the
    teacher network", ``q(x) = softmax(f_teacher(x)/T)`` with temperature T (T = 1 in the paper).

    The teacher is evaluated in eval mode (its train/eval mode is restored afterwards).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    was_training = teacher.training
    teacher.eval()
    try:
        out = [torch.softmax(teacher(xb) / temperature, dim=-1) for xb in x.split(batch_size)]
    finally:
        teacher.train(was_training)
    q = torch.cat(out)
    if not torch.isfinite(q).all():
        raise ValueError("teacher outputs contain NaN/Inf: soft labels are not finite")
    return q


def load_teacher_labelled(
    teacher: nn.Module | None = None,
    x: torch.Tensor | None = None,
    *,
    temperature: float = 1.0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> DataSplits:
    """Inputs ``x`` with soft labels ``q(x)`` from ``teacher`` (targets are (n, C) probability rows, usable
    directly with ``F.cross_entropy``), split with ``seed``.

    In Sagun et al. the teacher (784-500-300-10) is trained on the first half of MNIST's training set and
    labels the second half; pass that second half as ``x``.
    """
    if teacher is None or x is None:
        raise ValueError(
            "teacher-labelled data needs teacher=<nn.Module> and x=<input tensor>, e.g. "
            "load('teacher', teacher=nets.get('sagun-teacher'), x=mnist.train.x)"
        )
    q = soft_labels(teacher, x, temperature=temperature)
    return make_splits(
        "teacher", x, q, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
        num_classes=q.shape[-1], source=f"soft labels of {type(teacher).__name__}",
        info={"temperature": temperature},
    )  # fmt: skip
