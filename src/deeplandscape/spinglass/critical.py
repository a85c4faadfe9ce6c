"""Critical points: their index, and the grouping of many descent endpoints into distinct minima.

The index of a critical point is the number of negative eigenvalues of the Hessian on the sphere
(AnnealSGD paper §4.1; Choromanska et al. §4); the normalized index divides it by the dimension of the
manifold, n − 1 (Choromanska §5.1, Fig. 4–5). Two endpoints belong to the same minimum when their overlap

    q(σ, σ′) = σ·σ′ / n ≥ 1 − ε

(on a product of spheres, the smallest overlap over the blocks counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from deeplandscape.spinglass.base import SphericalHamiltonian
from deeplandscape.spinglass.geometry import blocks


@dataclass(frozen=True)
class IndexResult:
    """Index of each configuration.

    Attributes:
        index: number of eigenvalues of the Riemannian Hessian below −``zero_tol`` (B,).
        normalized_index: index / K(n − 1) (B,).
        near_zero: number of eigenvalues with |λ| ≤ ``zero_tol`` (B,).
        eigenvalues: the Riemannian Hessian's eigenvalues in a tangent basis, ascending (B, K(n−1)).
        grad_norm: ‖Riemannian gradient‖ (B,): an index means little where this is not small.
    """

    index: Tensor
    normalized_index: Tensor
    near_zero: Tensor
    eigenvalues: Tensor
    grad_norm: Tensor

    @property
    def is_minimum(self) -> Tensor:
        """Index 0 (B,)."""
        return self.index == 0


def index(hamiltonian: SphericalHamiltonian, sigma: Tensor, *, zero_tol: float = 0.0) -> IndexResult:
    """Index of each configuration: eigenvalues of Hess_M H(σ) < −``zero_tol`` (eigenvalues in
    [−zero_tol, zero_tol] count as zero, the convention of Choromanska §5.1 with ``zero_tol=1e-3``)."""
    if not zero_tol >= 0:
        raise ValueError(f"Invalid zero_tol: {zero_tol!r} (must be ≥ 0)")
    sigma = hamiltonian.check_configuration(sigma)
    eig = torch.linalg.eigvalsh(hamiltonian.riemannian_hessian(sigma, basis="tangent"))
    count = (eig < -zero_tol).sum(1)
    return IndexResult(
        index=count,
        normalized_index=count.to(eig.dtype) / hamiltonian.manifold_dim,
        near_zero=(eig.abs() <= zero_tol).sum(1),
        eigenvalues=eig,
        grad_norm=hamiltonian.riemannian_grad(sigma).norm(dim=1),
    )


@dataclass(frozen=True)
class MinimaGroups:
    """Endpoints grouped into distinct minima.

    Attributes:
        labels: group of each endpoint (R,), numbered 0…M−1 in order of their representative.
        representatives: index into the endpoints of each group's representative (M,) (the lowest-energy
            endpoint of the group when energies were given, else the first).
        counts: endpoints per group (M,).
    """

    labels: Tensor
    representatives: Tensor
    counts: Tensor

    @property
    def num_minima(self) -> int:
        return int(self.representatives.numel())


def overlap(sigma: Tensor, other: Tensor, num_spheres: int = 1) -> Tensor:
    """q = σ·σ′/n for every pair: (R, dim) × (S, dim) → (R, S); the minimum over blocks for K > 1."""
    a, b = blocks(sigma, num_spheres), blocks(other, num_spheres)
    n = a.shape[-1]
    return torch.einsum("rkn,skn->rsk", a, b).amin(-1) / n


def group_minima(
    sigma: Tensor, *, eps: float = 0.01, energy: Tensor | None = None, num_spheres: int = 1
) -> MinimaGroups:
    """Group endpoints whose overlap is ≥ 1 − ``eps`` (greedy: each unassigned endpoint, lowest energy
    first, opens a group that takes every unassigned endpoint within the overlap). Cost O(M·R·n) for M
    groups."""
    if not 0 < eps < 2:
        raise ValueError(f"Invalid eps: {eps!r} (must be in (0, 2))")
    if sigma.dim() != 2 or sigma.shape[0] == 0:
        raise ValueError(f"Invalid sigma: shape {tuple(sigma.shape)}, expected (R, dim) with R ≥ 1")
    count = sigma.shape[0]
    if energy is not None and energy.shape != (count,):
        raise ValueError(f"Invalid energy: shape {tuple(energy.shape)}, expected ({count},)")
    order = torch.argsort(energy) if energy is not None else torch.arange(count)
    labels = torch.full((count,), -1, dtype=torch.long)
    reps = []
    unassigned = order.clone()
    while unassigned.numel():
        rep = unassigned[0]
        q = overlap(sigma[unassigned], sigma[rep : rep + 1], num_spheres).squeeze(1)
        members = unassigned[q >= 1 - eps]
        labels[members] = len(reps)
        reps.append(int(rep))
        unassigned = unassigned[q < 1 - eps]
    representatives = torch.tensor(reps, dtype=torch.long)
    return MinimaGroups(
        labels=labels,
        representatives=representatives,
        counts=torch.bincount(labels, minlength=len(reps)),
    )


def mean_cosine_distance(sigma: Tensor) -> float:
    """Mean of 1 − cos(σ_a, σ_b) over all pairs a ≠ b of endpoints (AnnealSGD paper Fig. 2: 1.16 in
    the exponential regime, 0.02 in the trivial one). Computed in O(R·dim) from ‖Σ_a σ̂_a‖²."""
    count = sigma.shape[0]
    if count < 2:
        raise ValueError(f"Invalid sigma: mean_cosine_distance needs at least 2 endpoints, got {count}")
    unit = sigma.double() / sigma.double().norm(dim=1, keepdim=True)
    total = unit.sum(0)
    mean_cos = (total @ total - count) / (count * (count - 1))
    return float(1 - mean_cos)


@dataclass(frozen=True)
class NewtonResult:
    """Critical points found by Newton's method on the sphere.

    Attributes:
        sigma: final configurations (B, dim).
        grad_norm: ‖Riemannian gradient‖ at each (B,).
        converged: grad_norm ≤ tol (B,).
        iterations: Newton iterations run.
    """

    sigma: Tensor
    grad_norm: Tensor
    converged: Tensor
    iterations: int


def newton_critical_points(
    hamiltonian: SphericalHamiltonian,
    sigma: Tensor,
    *,
    tol: float = 1e-8,
    max_iterations: int = 50,
    max_step: float = 0.5,
) -> NewtonResult:
    """Newton's method on the manifold, which converges to the nearby critical point of *any* index:

        solve Hess_M H(σ) ξ = −grad_M H(σ) in a tangent basis, σ ← R_σ(ξ),

    with the step length capped at ``max_step``·√n (a trust region against the large steps near
    degenerate Hessians). Used to sample saddles of many indices (Choromanska §4's layered structure).
    """
    if not (tol > 0 and max_step > 0):
        raise ValueError(f"Invalid tol/max_step: {tol!r}/{max_step!r} (must be > 0)")
    from deeplandscape.spinglass.geometry import retract

    x = hamiltonian.check_configuration(sigma).clone()
    k, n = hamiltonian.num_spheres, hamiltonian.n
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007 (reported below)
        g = hamiltonian.riemannian_grad(x)
        if (g.norm(dim=1) <= tol).all():
            break
        frame = hamiltonian._tangent_frame(x)
        hess = hamiltonian.riemannian_hessian(x, basis="tangent")
        rhs = -(frame.transpose(1, 2) @ g[:, :, None])
        # gelsd (SVD), not the default gelsy: gelsy's first call in a process returns other bits than the
        # later ones for the same input, and the same seed must give the same critical points
        xi = torch.linalg.lstsq(hess, rhs, driver="gelsd").solution
        step = (frame @ xi).squeeze(-1)
        length = step.norm(dim=1, keepdim=True)
        cap = max_step * n**0.5
        step = step * torch.clamp(cap / length.clamp_min(1e-300), max=1.0)
        x = retract(x + step, k)
    grad_norm = hamiltonian.riemannian_grad(x).norm(dim=1)
    return NewtonResult(sigma=x, grad_norm=grad_norm, converged=grad_norm <= tol, iterations=iterations)
