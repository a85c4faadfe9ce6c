"""The training loop of an :class:`~deeplandscape.nets.Ensemble`: mini-batch SGD for every member at once.

Choromanska et al. §5.1 train 1000 networks per width for 200 epochs "using SGD with learning rate
decay", Sagun et al. §3.1.3 many students per size; :func:`train_ensemble` trains them all in one batched
model with :class:`~deeplandscape.optim.EnsembleSGD`, recording every member's loss on the whole train and
test sets after each epoch (:class:`EnsembleHistory`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deeplandscape.nets.ensemble import Ensemble, LossFn, evaluate_ensemble
from deeplandscape.optim.ensemble_sgd import EnsembleSGD


@dataclass(frozen=True)
class EnsembleHistory:
    """Per-member losses recorded by :func:`train_ensemble`.

    ``train_loss[e, k]`` / ``test_loss[e, k]``: member k's loss on the whole train / test set after epoch
    ``e`` (row 0 is before training), shape (epochs + 1, E); ``test_loss`` is ``None`` without test data.
    ``steps`` is the number of optimizer steps taken.
    """

    train_loss: torch.Tensor
    test_loss: torch.Tensor | None
    steps: int


def train_ensemble(
    ensemble: Ensemble,
    optimizer: EnsembleSGD,
    train: tuple[torch.Tensor, torch.Tensor],
    *,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
    epochs: int = 1,
    batch_size: int = 64,
    loss_fn: LossFn = F.cross_entropy,
    lr_schedule: Callable[[int], float | Sequence[float] | torch.Tensor] | None = None,
    shuffle: str = "shared",
    seed: int = 0,
    eval_batch_size: int = 4096,
) -> EnsembleHistory:
    """Mini-batch SGD for every member at once, recording per-member train/test loss after every epoch.

    Each epoch visits the N training samples in batches of ``batch_size`` (the last one may be smaller).
    ``shuffle="shared"``: one order for all members, ``torch.randperm(N, generator=g)`` per epoch with
    ``g`` seeded by ``seed``; ``"per-member"``: member k draws its own order from a generator seeded by
    ``seed + k``; ``"none"``: the data order. So member k equals a single network trained with
    torch.optim.SGD on the batches of that generator. ``lr_schedule(epoch)`` (epoch = 0, 1, …), when given,
    sets the learning rate(s) before each epoch (e.g. Choromanska §5.1's decay: ``lambda e: η0 · γ**e``).
    A NaN or Inf loss raises ``FloatingPointError`` naming the epoch and the members.
    """
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if shuffle not in ("shared", "per-member", "none"):
        raise ValueError(f"shuffle must be 'shared', 'per-member' or 'none', got {shuffle!r}")
    if optimizer.ensemble is not ensemble:
        raise ValueError("optimizer must be an EnsembleSGD built on this ensemble")
    x, y = train
    n = x.shape[0]
    if n == 0 or y.shape[0] != n:
        raise ValueError(
            f"train x and y must hold the same positive number of samples, got {n}, {y.shape[0]}"
        )
    E = ensemble.size
    gens = [torch.Generator().manual_seed(seed + k) for k in range(E if shuffle == "per-member" else 1)]

    def record(rows_train: list, rows_test: list, epoch: int) -> None:
        was_training = ensemble.training
        ensemble.eval()
        rows_train.append(evaluate_ensemble(ensemble, x, y, loss_fn, batch_size=eval_batch_size))
        if test is not None:
            rows_test.append(evaluate_ensemble(ensemble, *test, loss_fn, batch_size=eval_batch_size))
        ensemble.train(was_training)
        bad = (~torch.isfinite(rows_train[-1])).nonzero().flatten().tolist()
        if bad:
            raise FloatingPointError(f"non-finite train loss after epoch {epoch} for members {bad[:10]}")

    train_rows: list[torch.Tensor] = []
    test_rows: list[torch.Tensor] = []
    record(train_rows, test_rows, 0)
    steps = 0
    for epoch in range(epochs):
        if lr_schedule is not None:
            optimizer.set_lr(lr_schedule(epoch))
        if shuffle == "none":
            order = torch.arange(n)
        else:
            order = torch.stack([torch.randperm(n, generator=g) for g in gens])
        order = order.to(x.device)
        for start in range(0, n, batch_size):
            idx = order[..., start : start + batch_size]
            per_member = idx.dim() == 2 and shuffle == "per-member"
            if idx.dim() == 2 and not per_member:
                idx = idx[0]
            optimizer.zero_grad()
            ensemble.losses(x[idx], y[idx], loss_fn, per_member=per_member).sum().backward()
            optimizer.step()
            steps += 1
        record(train_rows, test_rows, epoch + 1)
    return EnsembleHistory(
        train_loss=torch.stack(train_rows),
        test_loss=torch.stack(test_rows) if test is not None else None,
        steps=steps,
    )
