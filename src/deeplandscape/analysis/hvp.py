"""Hessian–vector products of a model's data-set loss, by forward-over-reverse differentiation.

For the data-set loss ``f(x) = Σ_b n_b ℓ_b(x) / Σ_b n_b`` (mean-reduced batch losses ``ℓ_b`` weighted by
their sizes ``n_b``), the product of the Hessian with a direction ``v`` is the directional derivative of
the gradient,

    H v = ∇²f(x) v = d/dt ∇f(x + t v) |_{t=0} = Σ_b (n_b / N) ∇²ℓ_b(x) v,

computed per batch by forward-over-reverse differentiation: one forward-mode pass through one reverse-mode
pass, a few times the cost of a gradient, never forming ``∇²f``. :meth:`HessianOperator.matvec` runs it
eagerly: the parameters become dual tensors ``x + ε v`` (``torch.autograd.forward_ad``) and the ordinary
backward pass ``torch.autograd.grad(ℓ_b, x)`` then carries ``∇²ℓ_b(x) v`` as the tangent of its result;
:meth:`HessianOperator.matmat` vectorizes ``torch.func.jvp(torch.func.grad(ℓ_b), (x,), (v,))`` over the
columns with ``vmap``. Both apply the same forward-mode rules and give the same numbers; the eager pass
skips the transforms' per-operation overhead (about a fifth of the time of an MLP's HVP, see
``benchmarks/bench_curvature.py``).

Because ``H`` is symmetric, ``H v = (vᵀ H)ᵀ`` is also the vector–Jacobian product of the gradient,
``torch.func.vjp(torch.func.grad(ℓ_b), x)`` applied to ``v`` (reverse-over-reverse, ``mode="reverse"``);
both give the same numbers up to rounding, and which is faster depends on the model (see
``benchmarks/bench_curvature.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
from scipy.sparse.linalg import LinearOperator
from torch import Tensor, nn
from torch.func import grad_and_value, jvp, vjp, vmap

from deeplandscape.analysis._functional import FunctionalLoss, check_finite
from deeplandscape.analysis._model import Batch, LossFn, preserved
from deeplandscape.analysis.linear_operator import to_scipy


class HessianOperator:
    """The Hessian ``H = ∇²f(x)`` of a model's data-set loss as a symmetric linear operator on ``R^d``.

    ``d`` is the number of trainable parameters (those with ``requires_grad=True``), flattened in
    ``model.named_parameters()`` order (:meth:`unflatten` splits a vector back into per-parameter
    tensors). The Hessian is taken at the parameter and buffer values the model holds when the operator is
    built. Each :meth:`matvec` sweeps the whole data set and counts as one Hessian–vector product in
    :attr:`num_matvecs`.

    Args:
        model: any ``nn.Module``; it is never changed (mode, parameters, buffers, ``requires_grad`` and
            ``.grad`` are restored exactly after every product).
        loss_fn: ``loss_fn(outputs, targets)`` with mean reduction, e.g. ``nn.CrossEntropyLoss()``.
        data: a DataLoader, a list of ``(inputs, targets)`` batches, or one batch; materialized once.
        train: evaluate in train mode (BatchNorm batch statistics, active Dropout; the operator is then
            random if the model has Dropout). Default ``False``: eval mode.
        mode: ``"forward"`` (default): forward-over-reverse, forward-mode AD through the backward pass;
            ``"reverse"``: reverse-over-reverse, ``vjp`` of ``grad``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Iterable[Batch] | Batch,
        *,
        train: bool = False,
        mode: str = "forward",
    ) -> None:
        if mode not in ("forward", "reverse"):
            raise ValueError(f"Invalid mode: {mode!r}, expected 'forward' or 'reverse'")
        self.mode = mode
        self.loss = FunctionalLoss(model, loss_fn, data, train=train)
        self.model = model
        self.dim = self.loss.dim
        self.dtype = self.loss.dtype
        self.device = self.loss.device
        self.num_samples = self.loss.num_samples
        self.num_matvecs = 0

    @property
    def parameters(self) -> Tensor:
        """The flat parameter vector ``x`` at which the Hessian is taken."""
        return self.loss.flatten(self.loss.params)

    def unflatten(self, vector: Tensor) -> dict[str, Tensor]:
        """Split a flat vector of length ``dim`` (e.g. an eigenvector) into per-parameter tensors."""
        return self.loss.unflatten(vector)

    def flatten(self, tensors: dict[str, Tensor]) -> Tensor:
        """Concatenate per-parameter tensors, by parameter name, into a flat vector of length ``dim``."""
        return self.loss.flatten(tensors)

    def _eager_forward_hvp(
        self, tangent: dict[str, Tensor], inputs: Tensor, targets: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(∇²ℓ_b(x) v, ℓ_b(x))`` for one batch by forward-mode AD (dual parameters ``x + ε v``) through
        an eager backward pass: the tangent of ``∇ℓ_b`` at ``x + ε v`` is ``∇²ℓ_b(x) v``."""
        with torch.enable_grad(), fwAD.dual_level():
            primals = [self.loss.params[name].detach().requires_grad_(True) for name in self.loss.names]
            duals = {
                name: fwAD.make_dual(p, tangent[name])
                for name, p in zip(self.loss.names, primals, strict=True)
            }
            if targets.is_floating_point():  # a materialized zero tangent, as in _batch_hvp
                targets = fwAD.make_dual(targets, torch.zeros_like(targets))
            value = self.loss.batch_loss(duals, inputs, targets)
            grads = torch.autograd.grad(value, list(duals.values()), allow_unused=True)
            hv = []
            for g, p in zip(grads, primals, strict=True):
                t = None if g is None else fwAD.unpack_dual(g).tangent
                hv.append(torch.zeros_like(p) if t is None else t)
            return self.loss.flatten(hv), fwAD.unpack_dual(value).primal.detach()

    def _batch_hvp(
        self, tangent: dict[str, Tensor], inputs: Tensor, targets: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(∇²ℓ_b(x) v, ℓ_b(x))`` for one batch, ``v`` given per parameter (``torch.func``, vmap-safe)."""

        def grad_fn(params: dict[str, Tensor], y: Tensor):
            return grad_and_value(self.loss.batch_loss)(params, inputs, y)

        if self.mode == "reverse":
            _, vjp_fn, value = vjp(lambda p: grad_fn(p, targets), self.loss.params, has_aux=True)
            (hv,) = vjp_fn(tangent)
        elif targets.is_floating_point():
            # Floating-point targets enter as a primal with a materialized zero tangent: left without one,
            # some loss backward formulas (e.g. mse_loss) try to write into an immutable ZeroTensor under
            # forward-mode AD.
            (_, value), (hv, _) = jvp(
                grad_fn, (self.loss.params, targets), (tangent, torch.zeros_like(targets))
            )
        else:
            (_, value), (hv, _) = jvp(lambda p: grad_fn(p, targets), (self.loss.params,), (tangent,))
        return self.loss.flatten(hv), value

    def matvec(self, vector: Tensor) -> Tensor:
        """``H v = Σ_b (n_b/N) ∇²ℓ_b(x) v`` for a flat ``v`` of length ``dim`` (one HVP)."""
        self.loss.check_vector(vector, "vector")
        tangent = self.loss.unflatten(vector.detach().to(dtype=self.dtype, device=self.device))
        total = None
        with preserved(self.model, train=self.loss.train):
            for i, (inputs, targets) in enumerate(self.loss.batches):
                if self.mode == "forward":
                    hv, value = self._eager_forward_hvp(tangent, inputs, targets)
                else:
                    hv, value = self._batch_hvp(tangent, inputs, targets)
                check_finite(value, "loss", f"batch {i}")
                weight = self.loss.weight(i)
                if total is not None:
                    total.add_(hv, alpha=weight)
                else:  # hv is a fresh tensor (a concatenation): scaled in place, 1 batch: weight 1
                    total = hv if weight == 1.0 else hv.mul_(weight)
        check_finite(total, "Hessian-vector product", "the data set")
        self.num_matvecs += 1
        return total

    def __matmul__(self, vector: Tensor) -> Tensor:
        return self.matvec(vector)

    def matmat(self, vectors: Tensor, *, chunk_size: int = 32) -> Tensor:
        """``H V`` for a ``(d, m)`` matrix ``V``: ``m`` HVPs, vectorized with ``torch.func.vmap`` over
        chunks of ``chunk_size`` columns (a Python loop in train mode with BatchNorm, whose in-place
        running-statistics update is not vmap-safe). Counts ``m`` in :attr:`num_matvecs`."""
        if not isinstance(vectors, Tensor) or vectors.dim() != 2 or vectors.shape[0] != self.dim:
            shape = tuple(vectors.shape) if isinstance(vectors, Tensor) else type(vectors).__name__
            raise ValueError(f"Invalid vectors: shape {shape}, expected ({self.dim}, m)")
        if chunk_size < 1:
            raise ValueError(f"Invalid chunk_size: {chunk_size}, expected >= 1")
        if self.loss.train and self.loss.has_batchnorm:
            return torch.stack([self.matvec(col) for col in vectors.unbind(1)], dim=1)
        vectors = vectors.detach().to(dtype=self.dtype, device=self.device)
        total = torch.zeros(vectors.shape[1], self.dim, dtype=self.dtype, device=self.device)
        with preserved(self.model, train=self.loss.train):
            for i, (inputs, targets) in enumerate(self.loss.batches):

                def hvp(tangent: Tensor, x: Tensor = inputs, y: Tensor = targets) -> tuple[Tensor, Tensor]:
                    return self._batch_hvp(self.loss.unflatten(tangent), x, y)

                hv, value = vmap(hvp, randomness="same", chunk_size=chunk_size)(vectors.T)
                check_finite(value, "loss", f"batch {i}")
                total.add_(hv, alpha=self.loss.weight(i))
        check_finite(total, "Hessian-vector product", "the data set")
        self.num_matvecs += vectors.shape[1]
        return total.T

    def loss_and_gradient(self) -> tuple[Tensor, Tensor]:
        """``(f(x), ∇f(x))`` over the data set, the gradient flat (a by-product, not counted as an HVP)."""
        grad = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        value = torch.zeros((), dtype=self.dtype, device=self.device)
        with preserved(self.model, train=self.loss.train):
            for i, (inputs, targets) in enumerate(self.loss.batches):
                g, v = grad_and_value(self.loss.batch_loss)(self.loss.params, inputs, targets)
                check_finite(v, "loss", f"batch {i}")
                grad.add_(self.loss.flatten(g), alpha=self.loss.weight(i))
                value.add_(v.detach(), alpha=self.loss.weight(i))
        return value, grad

    def to_scipy(self) -> LinearOperator:
        """The operator as a ``scipy.sparse.linalg.LinearOperator`` (numpy in, numpy out)."""
        return to_scipy(self)


@dataclass(frozen=True)
class HessianVectorProduct:
    """``H v`` for one direction ``v``; ``num_hvps`` is the number of full-data Hessian–vector products."""

    product: Tensor
    num_hvps: int


def hessian_vector_product(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    vector: Tensor | dict[str, Tensor],
    *,
    train: bool = False,
    mode: str = "forward",
) -> HessianVectorProduct:
    """``∇²f(x) v`` of the data-set loss ``f = Σ_b n_b ℓ_b / N`` (forward-over-reverse, see module doc).

    ``vector`` is flat (length ``d``) or a dict of per-parameter tensors; the product is flat. ``train`` and
    ``mode`` are as for :class:`HessianOperator`.
    """
    op = HessianOperator(model, loss_fn, data, train=train, mode=mode)
    if isinstance(vector, dict):
        missing = sorted(set(op.loss.names) - set(vector))
        if missing:
            raise ValueError(f"Invalid vector: no entries for parameters {missing}")
        vector = op.flatten(vector)
    return HessianVectorProduct(product=op.matvec(vector), num_hvps=op.num_matvecs)
