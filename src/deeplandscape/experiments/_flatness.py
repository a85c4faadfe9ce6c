"""The width of a solution as the Thesis defines it, and a scale-invariant sharpness beside it.

**Local Entropy (the Thesis's measure).** Thesis Def. 4.20: "the width of a region x ∈ Ω for the energy
landscape f(x) is defined to be the negative Local Entropy, i.e., it is simply −f_γ(x)", with (eq. (4.11),
Def. 3.3 normalized by the Gaussian's mass, β = 1 as in Def. 3.3)

    f_γ(x) = −log E_{y ~ N(x, γ I)} [ e^{−f(y)} ],        excess  f_γ(x) − f(x) ≥ 0,

and the robust width γ* for a tolerance ε: the largest γ with f_γ(x) − f(x) ≤ ε for all 0 ≤ γ ≤ γ*
(eq. (4.38)). "Smaller the eigenvalues λ_i, smaller the Local Entropy and wider the minimum" (§4.5.3). Both
are estimated by :func:`deeplandscape.analysis.local_entropy` (Langevin chains with thermodynamic
integration) on a grid of scopes γ, on the mean loss of a fixed subset of the training set in evaluation
mode. The Thesis stresses that this measure "is quite different from a localized measure of the width, say
the Hessian" (Remark 4.21). The chains start from the Gaussian factor N(x, γI) (exactly the s = 0 law), and
with the comparisons' short chains in d ~ 10⁵–10⁶ dimensions they move little from there: the estimate then
lies between f_γ(x) and its Jensen upper bound E_{N(x,γI)}[f(y)], the two agreeing while the excess is
small. The runs that explain a width verdict repeat it with four times the samples and longer chains.

**Scale-invariant sharpness (ours, beside the Thesis's measure).** The top Hessian eigenvalue of a network
with batch normalization is not invariant to the reparametrizations that leave the network's function
unchanged (Dinh et al. 2017): a layer followed by batch norm computes the same function at cW for every
c > 0, while its Hessian block scales as 1/c². Solutions with smaller weights then look sharper. We report
the *adaptive sharpness* of Kwon et al. (2021) in its second-order form,

    λ_max(T H T),    T = diag(|x|),

the top eigenvalue of the Hessian in the coordinates x_i = |x_i| u_i. For every positive diagonal rescaling
D that leaves the loss unchanged, f(Dx) = f(x) (a batch-normalized layer scaled by c; a ReLU unit's incoming
weights and bias scaled by c and its outgoing weights by 1/c), the Hessian at Dx is D⁻¹ H D⁻¹ and
T_{Dx} = D T_x, so T H T — and its spectrum — is the same at x and at Dx. We chose it over λ_max with each
batch-norm-preceded layer normalized because it is invariant to all of these rescalings at once (also the
ReLU ones of the layers without batch norm, e.g. the last), needs no knowledge of the architecture, and is
the sharpness that SAM's adaptive variant (ASAM) minimizes. Kwon et al. add a small η to |x| for the
biases; we do not, which keeps the invariance exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from deeplandscape.analysis import HessianOperator, lanczos, local_entropy, robust_width_from_estimates

Batch = tuple[Tensor, Tensor]


class AdaptiveHessian:
    """T H T with T = diag(|x|) at the point x of a :class:`~deeplandscape.analysis.HessianOperator`: the
    symmetric operator of the second-order adaptive sharpness (module docstring)."""

    def __init__(self, hessian: HessianOperator) -> None:
        self.hessian = hessian
        self.scale = hessian.parameters.detach().abs()
        self.dim, self.dtype, self.device = hessian.dim, hessian.dtype, hessian.device

    def matvec(self, vector: Tensor) -> Tensor:
        return self.scale * self.hessian.matvec(self.scale * vector)


@dataclass(frozen=True)
class Width:
    """Local Entropy of one solution on a grid of scopes (Thesis Def. 4.20, eq. (4.11), (4.38)).

    ``loss``: f(x); ``local_entropy``, ``excess``, ``standard_error``: f_γ(x), f_γ(x) − f(x) and the
    Monte-Carlo standard error, one per γ of ``gammas``; ``gamma_star``: the robust width for ``epsilon``
    on the grid (0 when the smallest γ already exceeds ε; the largest γ when none does).
    """

    gammas: tuple[float, ...]
    loss: float
    local_entropy: tuple[float, ...]
    excess: tuple[float, ...]
    standard_error: tuple[float, ...]
    epsilon: float
    gamma_star: float


@dataclass(frozen=True)
class WidthSettings:
    """How Local Entropy is estimated (:func:`deeplandscape.analysis.local_entropy_energy`)."""

    gammas: tuple[float, ...]
    epsilon: float
    chains: int = 2
    steps: int = 10
    burnin: int = 5
    nodes: int = 2


def width(
    model: nn.Module,
    batch: Batch,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    settings: WidthSettings,
    *,
    seed: int,
) -> Width:
    """Local Entropy f_γ(x) at every γ of ``settings.gammas`` and the robust width γ* of ``model`` at its
    current weights, on the mean loss of ``batch`` in evaluation mode (the model is left unchanged)."""
    estimates = [
        local_entropy(
            model, loss_fn, batch, float(g), n_chains=settings.chains, n_steps=settings.steps,
            burnin=settings.burnin, n_nodes=settings.nodes, seed=seed,
        )
        for g in settings.gammas
    ]  # fmt: skip
    robust = robust_width_from_estimates(estimates, settings.epsilon)
    gamma_star = robust.gamma_star if np.isfinite(robust.upper) else float(settings.gammas[-1])
    return Width(
        gammas=tuple(float(g) for g in settings.gammas),
        loss=estimates[0].loss,
        local_entropy=tuple(e.value for e in estimates),
        excess=tuple(e.excess for e in estimates),
        standard_error=tuple(e.standard_error for e in estimates),
        epsilon=settings.epsilon,
        gamma_star=float(gamma_star),
    )


def adaptive_sharpness(hessian: HessianOperator, *, seed: int, max_basis: int = 80) -> float:
    """λ_max(T H T), T = diag(|x|) (Lanczos, relative residual ≤ 1e-3): the scale-invariant sharpness."""
    op = AdaptiveHessian(hessian)
    top = lanczos(op, 1, which="LA", tol=1e-3, max_basis=min(op.dim, max_basis), seed=seed)
    return float(top.eigenvalues[0])


def grid_label(gammas: Sequence[float]) -> str:
    return ", ".join(f"{g:g}" for g in gammas)
