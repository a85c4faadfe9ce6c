"""Critical points of one-hidden-layer ReLU networks and the Hessian there (Choromanska et al. §5.1).

Choromanska et al. §5.1 compute "the eigenvalues of the Hessian of the loss function at each solution" of
SGD and the normalized index (the fraction of negative eigenvalues, ``|λ| < 0.001`` counted as zero). An
index describes a *critical point*; the end of an SGD run is one only up to its gradient, which the paper
does not report. :func:`refine_critical_point` therefore continues the training from SGD's end towards a
point where the full-batch gradient norm is below a tolerance: first full-batch L-BFGS (a descent method:
it stops near a saddle only as SGD would, where the gradient becomes small), then a polish that converges
to a nearby critical point of any index (a descent method would slide off a saddle and bias the index
towards 0): Levenberg–Marquardt on the equation ``∇L(θ) = 0``, i.e. Gauss–Newton on ``½‖∇L(θ)‖²`` whose
Jacobian is the Hessian ``H``:

    δ = −(H² + μ I)⁻¹ H g = −V diag(λ_i / (λ_i² + μ)) Vᵀ g,    H = V diag(λ) Vᵀ,  g = ∇L(θ),

accepted when it lowers ``‖∇L‖`` (then μ ← μ/10), else retried with μ ← 10 μ from the same eigenbasis.
For ``|λ_i| ≫ √μ`` this is Newton's step ``−g_i/λ_i``, which converges to the nearby critical point
whatever its index; flat directions (``|λ_i| ≪ √μ``) are left alone. It reports ``‖∇L‖`` at the point
where the eigenvalues are taken, how far the point moved and how much the loss changed, so that a reader
(and the claim's guard) can tell a critical point from a point on a slope.

The Hessian of the mean cross entropy of ``f(x) = W₂ [ReLU(W₁ [x; 1]); 1]`` is computed in closed form
(:func:`mlp1_hessian`), several times faster than ``d`` Hessian–vector products and checked against the
float64 autograd Hessian in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _two_linear_layers(model: nn.Module) -> tuple[nn.Linear, nn.Linear]:
    """The two ``Linear`` layers of a ``[Flatten] → Linear → ReLU → Linear`` network; ``ValueError`` for
    any other architecture (the closed-form Hessian holds for that one only)."""
    body = getattr(model, "net", model)
    layers = [m for m in body.children()] if isinstance(body, nn.Sequential) else []
    if layers and isinstance(layers[0], nn.Flatten):
        layers = layers[1:]
    kinds = [type(m) for m in layers]
    if kinds != [nn.Linear, nn.ReLU, nn.Linear] or layers[0].bias is None or layers[2].bias is None:
        raise ValueError(
            f"Invalid model: {type(model).__name__} is not a one-hidden-layer ReLU network "
            "([Flatten] → Linear → ReLU → Linear, with biases), the only architecture of mlp1_hessian"
        )
    return layers[0], layers[2]


def mlp1_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, chunk: int = 2048) -> torch.Tensor:
    """The Hessian of ``L(θ) = (1/N) Σ_n CE(f(x_n; θ), y_n)`` for ``f = W₂ [ReLU(W₁ x̃); 1]``, ``x̃ = [x; 1]``,
    over the parameters in ``named_parameters`` order (W₁, b₁, W₂, b₂), in closed form.

    With ``z = W₁ x̃``, ``m_j = 1[z_j > 0]`` (ReLU's derivative, 0 at the kink as autograd has it),
    ``h̃ = [ReLU(z); 1]``, ``p = softmax(f)``, ``S = diag(p) − p pᵀ`` and the residual ``r = p − e_y``:
    the second derivatives of ReLU vanish almost everywhere, so ``H = (1/N) Σ_n (J_nᵀ S_n J_n + B_n)``
    with the Jacobian ``∂f_c/∂W₁[j,i] = W₂[c,j] m_j x̃_i``, ``∂f_c/∂W₂[c',k] = δ_{cc'} h̃_k`` and the only
    non-zero second derivative of the logits ``∂²f_c/∂W₂[c,j] ∂W₁[j,i] = m_j x̃_i``, whence the blocks

        W₁W₁: Σ_n A_n ⊗ x̃_n x̃_nᵀ,   A_n = diag(m_n) W₂ᵀ S_n W₂ diag(m_n)   (W₂ without its bias column),
        W₁W₂: Σ_n m_nj (S_n W₂)_{cj} x̃_ni h̃_nk + δ_{jk} Σ_n r_nc m_nj x̃_ni,
        W₂W₂: Σ_n S_n ⊗ h̃_n h̃_nᵀ,

    each a sum of Kronecker products formed as one matrix product over ``chunk`` samples at a time. The
    cost is ``O(N d²)`` multiply-adds against ``O(N d² · 8)`` for ``d`` Hessian–vector products.
    """
    first, second = _two_linear_layers(model)
    n1, n0 = first.weight.shape
    classes = second.weight.shape[0]
    dtype = first.weight.dtype
    w1a = torch.cat([first.weight, first.bias[:, None]], 1).detach()  # (n1, n0 + 1)
    w2a = torch.cat([second.weight, second.bias[:, None]], 1).detach()  # (C, n1 + 1)
    w2 = w2a[:, :n1]
    x = x.flatten(1).to(dtype)
    if x.shape[1] != n0 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(
            f"Invalid x, y: shapes {tuple(x.shape)}, {tuple(y.shape)} (expected (N, {n0}) and (N,), N > 0)"
        )
    n0a, n1a = n0 + 1, n1 + 1
    h11 = torch.zeros(n1 * n1, n0a * n0a, dtype=dtype)
    h12 = torch.zeros(classes * n1 * n1a, n0a, dtype=dtype)
    res = torch.zeros(classes * n1, n0a, dtype=dtype)
    h22 = torch.zeros(classes * classes, n1a * n1a, dtype=dtype)
    for start in range(0, x.shape[0], chunk):
        xa = F.pad(x[start : start + chunk], (0, 1), value=1.0)  # (b, n0 + 1)
        yb = y[start : start + chunk]
        b = xa.shape[0]
        z = xa @ w1a.T
        m = (z > 0).to(dtype)
        ha = F.pad(torch.relu(z), (0, 1), value=1.0)  # (b, n1 + 1)
        p = torch.softmax(ha @ w2a.T, -1)
        s = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # (b, C, C)
        r = p - F.one_hot(yb, classes).to(dtype)
        sw = (s @ w2) * m[:, None, :]  # (b, C, n1): m_nj (S_n W₂)_{cj}
        a = (w2.T @ sw) * m[:, :, None]  # (b, n1, n1): A_n
        h11 += a.reshape(b, -1).T @ (xa[:, :, None] * xa[:, None, :]).reshape(b, -1)
        h12 += (sw[:, :, :, None] * ha[:, None, None, :]).reshape(b, -1).T @ xa
        res += (r[:, :, None] * m[:, None, :]).reshape(b, -1).T @ xa
        h22 += s.reshape(b, -1).T @ (ha[:, :, None] * ha[:, None, :]).reshape(b, -1)
    n = x.shape[0]
    d1, d2 = n1 * n0a, classes * n1a
    b11 = h11.view(n1, n1, n0a, n0a).permute(0, 2, 1, 3).reshape(d1, d1)
    b12 = h12.view(classes, n1, n1a, n0a)  # [c, j, k, i]
    diag = torch.arange(n1)
    b12[:, diag, diag, :] += res.view(classes, n1, n0a)  # δ_{jk}: the logits' second derivative
    b12 = b12.permute(1, 3, 0, 2).reshape(d1, d2)  # [(j, i), (c, k)]
    b22 = h22.view(classes, classes, n1a, n1a).permute(0, 2, 1, 3).reshape(d2, d2)
    augmented = torch.cat([torch.cat([b11, b12], 1), torch.cat([b12.T, b22], 1)]) / n
    order = _module_order(n1, n0, classes)
    return augmented[order][:, order]


def _module_order(n1: int, n0: int, classes: int) -> torch.Tensor:
    """Positions in the augmented layout (``[W₁ | b₁]`` row-major, then ``[W₂ | b₂]`` row-major) of the
    parameters in ``named_parameters`` order (W₁, b₁, W₂, b₂)."""
    n0a, n1a, d1 = n0 + 1, n1 + 1, n1 * (n0 + 1)
    j, i = torch.meshgrid(torch.arange(n1), torch.arange(n0), indexing="ij")
    c, k = torch.meshgrid(torch.arange(classes), torch.arange(n1), indexing="ij")
    return torch.cat(
        [
            (j * n0a + i).reshape(-1),
            torch.arange(n1) * n0a + n0,
            d1 + (c * n1a + k).reshape(-1),
            d1 + torch.arange(classes) * n1a + n1,
        ]
    )


@dataclass(frozen=True)
class CriticalPoint:
    """The end of :func:`refine_critical_point`.

    Attributes:
        eigenvalues: ``(d,)`` ascending eigenvalues of the Hessian at the final point.
        eigenvalues_start: the same at the starting point (SGD's end, where the paper takes them).
        grad_norm: ``‖∇L‖`` at the final point (where the eigenvalues are taken).
        grad_norm_start: ``‖∇L‖`` at the starting point (SGD's end).
        loss, loss_start: the loss at the final and the starting point.
        distance: ``‖θ_final − θ_start‖``; relative_distance: the same over ``‖θ_start‖``.
        lbfgs_iterations: L-BFGS iterations taken.
        hessians: Hessians computed by the polish (one per step, the final one included).
        converged: ``grad_norm ≤ tol``.
    """

    eigenvalues: torch.Tensor
    eigenvalues_start: torch.Tensor
    grad_norm: float
    grad_norm_start: float
    loss: float
    loss_start: float
    distance: float
    relative_distance: float
    lbfgs_iterations: int
    hessians: int
    converged: bool


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _assign(model: nn.Module, flat: torch.Tensor) -> None:
    with torch.no_grad():
        start = 0
        for p in model.parameters():
            p.copy_(flat[start : start + p.numel()].view_as(p))
            start += p.numel()


def _loss_and_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
    model.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return float(loss.detach()), torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def _lbfgs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, iterations: int, tol: float) -> int:
    """Full-batch L-BFGS (strong Wolfe line search) until ``‖∇L‖ ≤ tol`` or ``iterations``; returns the
    iterations taken."""
    optimizer = torch.optim.LBFGS(
        model.parameters(), lr=1.0, max_iter=iterations, max_eval=2 * iterations, tolerance_grad=tol / 10,
        tolerance_change=0.0, history_size=50, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return int(optimizer.state[optimizer._params[0]].get("n_iter", 0))


def levenberg_marquardt(
    theta: torch.Tensor,
    loss_and_grad: Callable[[torch.Tensor], tuple[float, torch.Tensor]],
    hessian: Callable[[torch.Tensor], torch.Tensor],
    *,
    tol: float,
    max_hessians: int,
    max_retries: int = 30,
) -> tuple[torch.Tensor, float, torch.Tensor, torch.Tensor, int]:
    """Levenberg–Marquardt on ``∇L(θ) = 0`` from ``theta`` (module docstring) until ``‖∇L‖ ≤ tol`` or
    ``max_hessians`` Hessians; a step is kept only when it lowers ``‖∇L‖``. Returns ``(θ, L(θ), ∇L(θ),
    eigenvalues of ∇²L(θ), Hessians computed)`` at the final point.
    """
    loss, g = loss_and_grad(theta)
    mu, hessians = None, 0
    while True:
        h = hessian(theta)
        hessians += 1
        if float(g.norm()) <= tol or hessians >= max_hessians:
            return theta, loss, g, torch.linalg.eigvalsh(h), hessians
        lam, vec = torch.linalg.eigh(h)
        coeff = vec.T @ g
        if mu is None:
            mu = 1e-6 * float(lam.abs().max()) ** 2 or 1e-30
        for _ in range(max_retries):
            candidate = theta - vec @ (lam / (lam**2 + mu) * coeff)
            new_loss, new_g = loss_and_grad(candidate)
            if math.isfinite(new_loss) and float(new_g.norm()) < float(g.norm()):
                theta, loss, g = candidate, new_loss, new_g
                mu = max(mu / 10, 1e-30)
                break
            mu *= 10
        else:  # no step lowers ‖∇L‖: stay at the best point found
            return theta, loss, g, lam, hessians


def refine_critical_point(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    tol: float,
    lbfgs_iterations: int,
    max_hessians: int,
) -> CriticalPoint:
    """From the model's parameters, full-batch L-BFGS for at most ``lbfgs_iterations`` iterations, then
    :func:`levenberg_marquardt` with at most ``max_hessians`` Hessians (:func:`mlp1_hessian`), each phase
    stopping once ``‖∇L‖ ≤ tol``; in float64. The model is left at the final point.

    ``model`` must be a one-hidden-layer ReLU network (:func:`mlp1_hessian`) in float64.
    """
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"Invalid tol: {tol!r} (must be finite and > 0)")
    for name, value, low in (("lbfgs_iterations", lbfgs_iterations, 0), ("max_hessians", max_hessians, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"Invalid {name}: {value!r} (must be an int ≥ {low})")
    if any(p.dtype != torch.float64 for p in model.parameters()):
        raise ValueError("Invalid model: refine_critical_point needs float64 parameters (call .double())")
    x = x.flatten(1).to(torch.float64)
    start = _flat(model)
    loss_start, g = _loss_and_grad(model, x, y)
    grad_start = float(g.norm())
    eigenvalues_start = torch.linalg.eigvalsh(mlp1_hessian(model, x, y))
    iterations = _lbfgs(model, x, y, lbfgs_iterations, tol) if lbfgs_iterations and grad_start > tol else 0

    def loss_and_grad(theta: torch.Tensor) -> tuple[float, torch.Tensor]:
        _assign(model, theta)
        return _loss_and_grad(model, x, y)

    def hessian(theta: torch.Tensor) -> torch.Tensor:
        _assign(model, theta)
        return mlp1_hessian(model, x, y)

    theta, loss, g, eigenvalues, hessians = levenberg_marquardt(
        _flat(model), loss_and_grad, hessian, tol=tol, max_hessians=max_hessians
    )
    _assign(model, theta)
    distance = float((theta - start).norm())
    return CriticalPoint(
        eigenvalues=eigenvalues,
        eigenvalues_start=eigenvalues_start,
        grad_norm=float(g.norm()),
        grad_norm_start=grad_start,
        loss=loss,
        loss_start=loss_start,
        distance=distance,
        relative_distance=distance / max(float(start.norm()), 1e-300),
        lbfgs_iterations=iterations,
        hessians=hessians,
        converged=float(g.norm()) <= tol,
    )
