"""Hessian–vector products of a model's data-set loss, never forming the Hessian.

For the data-set loss ``f(x) = Σ_b n_b ℓ_b(x) / Σ_b n_b`` (mean-reduced batch losses ``ℓ_b`` weighted by
their sizes ``n_b``), the product of the Hessian with a direction ``v`` is the directional derivative of
the gradient,

    H v = ∇²f(x) v = d/dt ∇f(x + t v) |_{t=0} = ∇_x ⟨∇f(x), v⟩ = Σ_b (n_b / N) ∇²ℓ_b(x) v,

a few times the cost of a gradient. Three ways to differentiate, the same numbers up to rounding (the tests
check each against a float64 ``torch.func.hessian`` oracle); which is fastest depends on the model
(``benchmarks/bench_curvature.py``):

- ``mode="double"``, the textbook double backward (Pearlmutter 1994, "Fast exact multiplication by the
  Hessian"): ``g = torch.autograd.grad(ℓ_b, x, create_graph=True)``, then ``torch.autograd.grad(g, x, v)``
  = ``∇_x ⟨g, v⟩``; the fastest on dense networks on CPU;
- ``mode="forward"``, forward-over-reverse: the parameters become dual tensors ``x + ε v``
  (``torch.autograd.forward_ad``) and the ordinary backward pass carries ``∇²ℓ_b(x) v`` as the tangent of
  its result; the fastest on convolutional networks on CPU;
- ``mode="reverse"``: ``torch.func.vjp`` of ``torch.func.grad`` (reverse-over-reverse through the function
  transforms).

The default ``mode="auto"`` takes ``"forward"`` for a model with convolutions and ``"double"`` for every
other model (the fastest of the three in ``BENCHMARKS.md``). :meth:`HessianOperator.matmat` vectorizes
``torch.func.jvp`` (``"forward"``) or ``torch.func.vjp`` (the two reverse modes) of ``torch.func.grad``
over the columns with ``vmap``, and applies :meth:`HessianOperator.matvec` column by column to a model
that ``vmap`` cannot run (an LSTM, or BatchNorm in train mode).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
from scipy.sparse.linalg import LinearOperator
from torch import Tensor, nn
from torch.func import grad_and_value, jvp, vjp, vmap

from deeplandscape.analysis._functional import FunctionalLoss, all_finite, check_finite
from deeplandscape.analysis._model import Batch, LossFn, Output, preserved
from deeplandscape.analysis.linear_operator import to_scipy

MODES = ("auto", "double", "forward", "reverse")


def _auto_mode(model: nn.Module) -> str:
    """``"forward"`` for a model with convolutions, else ``"double"`` (the fastest in ``BENCHMARKS.md``);
    ``"double"`` too for recurrent layers, whose oneDNN kernels have no forward-mode derivative."""
    modules = list(model.modules())
    if any(isinstance(m, nn.RNNBase) for m in modules):
        return "double"
    if any(isinstance(m, nn.modules.conv._ConvNd) for m in modules):
        return "forward"
    return "double"


_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _check_no_dropout(model: nn.Module) -> None:
    """In train mode a model with active Dropout draws a new mask at every product: ``v ↦ H v`` would be a
    different matrix at each call, and Lanczos's residuals and convergence flags would certify nothing."""
    active = [name for name, m in model.named_modules() if isinstance(m, _DROPOUT) and m.p > 0]
    if active:
        raise ValueError(
            f"Invalid train: True with Dropout (module {active[0]}): the loss is then random and has no "
            "fixed Hessian; use train=False (eval mode) or set the dropout probability to 0"
        )


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
        train: evaluate in train mode (BatchNorm batch statistics); refused for a model with active
            Dropout, whose loss is then random. Default ``False``: eval mode.
        mode: ``"auto"`` (default: ``"forward"`` for a model with convolutions, else ``"double"``),
            ``"double"`` (double backward), ``"forward"`` (forward-over-reverse) or ``"reverse"``
            (``torch.func`` reverse-over-reverse); see the module docstring. :attr:`mode` holds the one used.
        output: the part of the model's output the loss takes (a dict key, a tuple index or a callable);
            ``None`` for a model that returns a tensor.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Iterable[Batch] | Batch,
        *,
        train: bool = False,
        mode: str = "auto",
        output: Output = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"Invalid mode: {mode!r}, expected one of {MODES}")
        self.mode = _auto_mode(model) if mode == "auto" else mode
        if train:
            _check_no_dropout(model)
        self.loss = FunctionalLoss(model, loss_fn, data, train=train, output=output)
        self.model = model
        self.dim = self.loss.dim
        self.dtype = self.loss.dtype
        self.device = self.loss.device
        self.num_samples = self.loss.num_samples
        self.num_matvecs = 0
        self._vectorize = True

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

    def _eager_double_backward_hvp(
        self, tangent: dict[str, Tensor], inputs: Tensor, targets: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(∇²ℓ_b(x) v, ℓ_b(x))`` for one batch by double backward: ``∇_x ⟨∇ℓ_b(x), v⟩``."""
        with torch.enable_grad():
            primals = {name: self.loss.params[name].detach().requires_grad_(True) for name in self.loss.names}
            leaves = list(primals.values())
            value = self.loss.batch_loss(primals, inputs, targets)
            grads = torch.autograd.grad(value, leaves, create_graph=True, allow_unused=True)
            # A gradient that does not depend on x (a parameter the loss is linear in) has no graph: its
            # rows of H are zero and it drops out of ⟨∇ℓ_b, v⟩.
            pairs = [(g, tangent[n]) for g, n in zip(grads, self.loss.names, strict=True) if g is not None]
            pairs = [(g, t) for g, t in pairs if g.requires_grad]
            hv = [None] * len(leaves)
            if pairs:
                hv = torch.autograd.grad(
                    [g for g, _ in pairs], leaves, grad_outputs=[t for _, t in pairs], allow_unused=True
                )
            flat = [torch.zeros_like(p) if h is None else h for h, p in zip(hv, leaves, strict=True)]
            return self.loss.flatten(flat), value.detach()

    def _batch_hvp(
        self, tangent: dict[str, Tensor], inputs: Tensor, targets: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(∇²ℓ_b(x) v, ℓ_b(x))`` for one batch, ``v`` given per parameter (``torch.func``, vmap-safe)."""

        def grad_fn(params: dict[str, Tensor], y: Tensor):
            return grad_and_value(self.loss.batch_loss)(params, inputs, y)

        if self.mode != "forward":  # "reverse" and "double": reverse-over-reverse through torch.func
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
        if not all_finite(vector):
            raise ValueError("Invalid vector: contains NaN or Inf")
        tangent = self.loss.unflatten(vector.detach().to(dtype=self.dtype, device=self.device))
        total = None
        with preserved(self.model, train=self.loss.train):
            for i, (inputs, targets) in enumerate(self.loss.batches):
                if self.mode == "forward":
                    try:
                        hv, value = self._eager_forward_hvp(tangent, inputs, targets)
                    except NotImplementedError as error:
                        raise ValueError(
                            f"Invalid mode: 'forward' cannot differentiate this model ({error}); use "
                            "mode='double' or mode='reverse'"
                        ) from error
                elif self.mode == "double":
                    hv, value = self._eager_double_backward_hvp(tangent, inputs, targets)
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
        chunks of ``chunk_size`` columns; column by column with :meth:`matvec` (the same numbers up to
        rounding) in train mode with BatchNorm, whose in-place running-statistics update is not vmap-safe,
        and for a model ``vmap`` cannot run (e.g. an LSTM). Counts ``m`` in :attr:`num_matvecs`."""
        if not isinstance(vectors, Tensor) or vectors.dim() != 2 or vectors.shape[0] != self.dim:
            shape = tuple(vectors.shape) if isinstance(vectors, Tensor) else type(vectors).__name__
            raise ValueError(f"Invalid vectors: shape {shape}, expected ({self.dim}, m)")
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"Invalid chunk_size: {chunk_size}, expected an integer >= 1")
        if not all_finite(vectors):
            raise ValueError("Invalid vectors: contain NaN or Inf")
        if self._vectorize and not (self.loss.train and self.loss.has_batchnorm):
            try:
                total = self._vmapped_matmat(vectors, chunk_size)
            except Exception:  # no batching rule for some operation: the loop below is exact everywhere
                self._vectorize = False
            else:
                self.num_matvecs += vectors.shape[1]
                return total
        return torch.stack([self.matvec(col) for col in vectors.unbind(1)], dim=1)

    def _vmapped_matmat(self, vectors: Tensor, chunk_size: int) -> Tensor:
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
    mode: str = "auto",
    output: Output = None,
) -> HessianVectorProduct:
    """``∇²f(x) v`` of the data-set loss ``f = Σ_b n_b ℓ_b / N`` (see the module docstring).

    ``vector`` is flat (length ``d``) or a dict of per-parameter tensors; the product is flat. ``train``,
    ``mode`` and ``output`` are as for :class:`HessianOperator`.
    """
    op = HessianOperator(model, loss_fn, data, train=train, mode=mode, output=output)
    if isinstance(vector, dict):
        missing = sorted(set(op.loss.names) - set(vector))
        if missing:
            raise ValueError(f"Invalid vector: no entries for parameters {missing}")
        vector = op.flatten(vector)
    return HessianVectorProduct(product=op.matvec(vector), num_hvps=op.num_matvecs)
