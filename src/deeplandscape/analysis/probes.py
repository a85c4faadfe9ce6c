"""Training probes: per-step gradient statistics and the field alignment of an AnnealSGD run
(AnnealSGD paper Fig. 3b and Fig. 4).

At every optimizer step, with g = ∇f(x) the back-propagated gradient in the parameters' ``.grad`` fields
and x the weights before the update, :class:`TrainingProbe` records

* the minimum absolute back-propagated gradient min_i |g_i| over all trainable weights (Fig. 3b: with
  AnnealSGD's external field the gradient stays away from zero);
* the gradient norm of every layer, ‖g_L‖ = (Σ_{i ∈ L} g_i²)^{1/2}, a layer being the parameters of one
  module (e.g. ``"0"`` for ``"0.weight"`` and ``"0.bias"``);
* optionally, given a field vector h ∈ R^d, the alignment |hᵀx| of the weights with the field (Fig. 4,
  |hᵀσ|) and its normalized form |hᵀx| / (|h| |x|).

The probe attaches to an optimizer as a step pre-hook (:meth:`TrainingProbe.attach`), so an ordinary loop
(``loss.backward(); opt.step()``) records one row per step; :meth:`TrainingProbe.record` can also be called
by hand. Parameters whose ``.grad`` is ``None`` are skipped, as ``torch.optim`` skips them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ._model import trainable_parameters

Field = Tensor | Callable[[int], Tensor]


@dataclass(frozen=True)
class ProbeRecord:
    """The rows recorded by a :class:`TrainingProbe`, one per step.

    ``steps``; ``min_abs_grad``: min_i |g_i| (AnnealSGD paper Fig. 3b); ``grad_norm``: ‖g‖ over all weights;
    ``layer_grad_norms``: layer name → ‖g_L‖ per step (NaN where no parameter of the layer had a gradient);
    ``field_alignment``: |hᵀx| (Fig. 4) and ``field_cosine``: |hᵀx|/(|h||x|), ``None`` without a field.
    """

    steps: np.ndarray
    min_abs_grad: np.ndarray
    grad_norm: np.ndarray
    layer_grad_norms: dict[str, np.ndarray]
    field_alignment: np.ndarray | None
    field_cosine: np.ndarray | None


def _layer_name(param_name: str) -> str:
    return param_name.rsplit(".", 1)[0] if "." in param_name else ""


class TrainingProbe:
    """Record, per optimizer step, min |∇f|, per-layer gradient norms and |hᵀx| (AnnealSGD paper
    Fig. 3b, Fig. 4).

    ``field`` is the field h: a flat tensor with one entry per trainable parameter (``named_parameters``
    order), a sequence of tensors shaped like the trainable parameters, or a callable ``field(step)``
    returning either (for an annealed or resampled field). ``every`` records one step in ``every``.
    Use as ``probe = TrainingProbe(model).attach(optimizer)``; ``probe.remove()`` detaches it and
    ``probe.result()`` returns a :class:`ProbeRecord`. Recording reads the model and never changes it.
    """

    def __init__(self, model: nn.Module, field: Field | None = None, *, every: int = 1) -> None:
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"Invalid every: {every!r}; must be an integer >= 1")
        if field is not None and not (isinstance(field, (Tensor, list, tuple)) or callable(field)):
            raise ValueError(
                "Invalid field: expected a tensor, a sequence of tensors or a callable, "
                f"got {type(field).__name__}"
            )
        self.model = model
        self.params = trainable_parameters(model)
        self.dimension = sum(p.numel() for p in self.params.values())
        self.layers = sorted(
            {_layer_name(n) for n in self.params}, key=list(map(_layer_name, self.params)).index
        )
        self.field = field
        self.every = every
        self._count = 0
        self._handle = None
        self._steps: list[int] = []
        self._min: list[float] = []
        self._norm: list[float] = []
        self._layers: dict[str, list[float]] = {name: [] for name in self.layers}
        self._align: list[float] = []
        self._cos: list[float] = []
        if isinstance(field, (Tensor, list, tuple)):
            self._field_vector(field)  # validate now, not at the first step

    def _field_vector(self, field: Tensor | list | tuple) -> Tensor:
        if isinstance(field, (list, tuple)):
            shapes = [tuple(p.shape) for p in self.params.values()]
            if [tuple(t.shape) for t in field] != shapes:
                raise ValueError(
                    f"Invalid field: tensor shapes {[tuple(t.shape) for t in field]}; expected {shapes}"
                )
            field = torch.cat([t.reshape(-1) for t in field])
        if not isinstance(field, Tensor) or field.dim() != 1 or field.numel() != self.dimension:
            shape = tuple(field.shape) if isinstance(field, Tensor) else type(field).__name__
            raise ValueError(
                f"Invalid field: shape {shape}; expected a flat vector of length {self.dimension}"
            )
        return field.detach()

    @torch.no_grad()
    def record(self, step: int | None = None) -> None:
        """Record one row from the current ``.grad`` fields and weights (call after ``backward()``)."""
        step = self._count if step is None else int(step)
        self._count += 1
        if step % self.every:
            return
        grads = {n: p.grad for n, p in self.params.items() if p.grad is not None}
        if not grads:
            raise ValueError(
                f"Invalid state at step {step}: no trainable parameter has a gradient (call backward())"
            )
        minimum = min(float(g.abs().min()) for g in grads.values())
        squares: dict[str, float] = {}
        for name, g in grads.items():
            layer = _layer_name(name)
            squares[layer] = squares.get(layer, 0.0) + float(g.double().pow(2).sum())
        total = sum(squares.values())
        if not np.isfinite(total):
            bad = next(n for n, g in grads.items() if not torch.isfinite(g).all())
            raise ValueError(f"Non-finite gradient in parameter {bad} at step {step}")
        self._steps.append(step)
        self._min.append(minimum)
        self._norm.append(float(np.sqrt(total)))
        for layer in self.layers:
            self._layers[layer].append(float(np.sqrt(squares[layer])) if layer in squares else float("nan"))
        if self.field is not None:
            h = self._field_vector(self.field(step) if callable(self.field) else self.field).double()
            x = torch.cat([p.detach().reshape(-1) for p in self.params.values()]).double().to(h.device)
            dot = abs(float(h @ x))
            self._align.append(dot)
            denominator = float(h.norm() * x.norm())
            self._cos.append(dot / denominator if denominator > 0 else float("nan"))

    def attach(self, optimizer: torch.optim.Optimizer) -> TrainingProbe:
        """Record before every ``optimizer.step()`` (a step pre-hook); returns ``self``."""
        if self._handle is not None:
            raise ValueError("Invalid state: the probe is already attached to an optimizer")
        self._handle = optimizer.register_step_pre_hook(lambda opt, args, kwargs: self.record())
        return self

    def remove(self) -> None:
        """Detach from the optimizer (no-op if not attached)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def result(self) -> ProbeRecord:
        """The rows recorded so far."""
        with_field = self.field is not None
        return ProbeRecord(
            steps=np.asarray(self._steps, dtype=np.int64),
            min_abs_grad=np.asarray(self._min),
            grad_norm=np.asarray(self._norm),
            layer_grad_norms={k: np.asarray(v) for k, v in self._layers.items()},
            field_alignment=np.asarray(self._align) if with_field else None,
            field_cosine=np.asarray(self._cos) if with_field else None,
        )
