"""Batched projected gradient descent on the sphere(s), from many starting configurations at once.

Thesis §2.4.1 and AnnealSGD paper §5.1 (Sagun et al. §3.1.1, step 2): from σ⁰ uniform on S^{n−1}(√n),

    g^t = P_{σ^t} ∇H(σ^t)                      (gradient projected on the tangent plane)
    σ^{t+1} = √n (σ^t − η g^t) / ‖σ^t − η g^t‖ (step, then re-projection onto the sphere)

stopping a configuration once ‖g^t‖ ≤ tol (paper: η = 0.1, tol = 1e-4). All B configurations advance
together as one matrix product; a configuration that has stopped is dropped from the batch and costs no
further compute.

``method="sgd"`` is Sagun et al. §3.2.1: for a :class:`SplitPSpinGlass` H = Σ_q H_q, step t follows
the projected gradient of one summand only (q = t mod P, or a seeded random q); convergence is checked
on the full gradient every P steps. With a constant step SGD hovers rather than converges, so it usually
runs to ``max_steps``: compare methods at equal step × steps / P, as in Sagun Fig. 7.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from deeplandscape.spinglass.base import SphericalHamiltonian, check_size, resolve_seed
from deeplandscape.spinglass.geometry import project_tangent, retract


@dataclass(frozen=True)
class DescentResult:
    """Final state of a batched descent.

    Attributes:
        sigma: final configurations (B, dim).
        energy: H at the final configurations (B,).
        energy_per_spin: H/n (B,), the normalized energy of the papers' figures.
        grad_norm: ‖Riemannian gradient‖ at the final configurations (B,).
        steps: updates applied to each configuration (B,).
        converged: whether ‖Riemannian gradient‖ ≤ tol was reached (B,).
        trajectory: H/n every ``record_every`` steps (T, B), a stopped configuration keeping its last
            value; None unless requested.
        trajectory_steps: the step numbers of the rows of ``trajectory`` (T,).
        wall_seconds: time spent in the loop.
        gradient_evaluations: configuration-gradients computed in total (a stopped configuration costs
            none), the work measure for throughput figures.
    """

    sigma: Tensor
    energy: Tensor
    energy_per_spin: Tensor
    grad_norm: Tensor
    steps: Tensor
    converged: Tensor
    trajectory: Tensor | None
    trajectory_steps: Tensor | None
    wall_seconds: float
    gradient_evaluations: int

    @property
    def converged_fraction(self) -> float:
        return self.converged.float().mean().item()


def descend(
    hamiltonian: SphericalHamiltonian,
    sigma0: Tensor,
    *,
    lr: float = 0.1,
    tol: float = 1e-4,
    max_steps: int = 10_000,
    method: str = "gd",
    order: str = "cyclic",
    record_every: int = 0,
    seed: int | None = None,
) -> DescentResult:
    """Projected gradient descent on the sphere from each row of ``sigma0`` (Thesis §2.4.1).

    Args:
        hamiltonian: a :class:`SphericalHamiltonian` (``method="sgd"`` needs a :class:`SplitPSpinGlass`).
        sigma0: starting configurations (B, dim) on the sphere(s).
        lr: the step η > 0.
        tol: stop a configuration when ‖P_σ ∇H(σ)‖ ≤ tol (≥ 0).
        max_steps: at most this many updates per configuration.
        method: "gd" (full gradient) or "sgd" (one summand per step, Sagun §3.2.1).
        order: for "sgd", "cyclic" (q = t mod P, as in the paper) or "random" (q drawn with ``seed``).
        record_every: if > 0, record H/n every that many steps (and at step 0 and the end).
        seed: for ``order="random"``.

    Raises:
        ValueError: on an invalid argument or configuration.
        FloatingPointError: when a configuration becomes NaN/Inf, naming the step (lower ``lr``).
    """
    sigma = hamiltonian.check_configuration(sigma0, "sigma0")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"Invalid lr: {lr!r} (must be a finite number > 0)")
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"Invalid tol: {tol!r} (must be a finite number ≥ 0)")
    check_size("max_steps", max_steps, 1)
    check_size("record_every", record_every, 0)
    if method not in ("gd", "sgd"):
        raise ValueError(f"Invalid method: {method!r} (must be 'gd' or 'sgd')")
    if order not in ("cyclic", "random"):
        raise ValueError(f"Invalid order: {order!r} (must be 'cyclic' or 'random')")
    parts = getattr(hamiltonian, "parts", None)
    if method == "sgd" and parts is None:
        raise ValueError(
            f"Invalid method: 'sgd' needs a Hamiltonian written as a sum (SplitPSpinGlass), "
            f"got {type(hamiltonian).__name__}"
        )
    check_every = parts if method == "sgd" else 1
    generator = torch.Generator().manual_seed(resolve_seed(seed)) if order == "random" else None

    k, n = hamiltonian.num_spheres, hamiltonian.n
    batch = sigma.shape[0]
    device = sigma.device
    final = sigma.clone()
    steps = torch.full((batch,), max_steps, dtype=torch.long, device=device)
    converged = torch.zeros(batch, dtype=torch.bool, device=device)
    active = torch.arange(batch, device=device)
    x = sigma.clone()
    last_energy = torch.zeros(batch, dtype=sigma.dtype, device=device)
    rows: list[Tensor] = []
    row_steps: list[int] = []
    evaluations = 0

    start = time.perf_counter()
    for t in range(max_steps + 1):
        check = t % check_every == 0 or t == max_steps
        if method == "gd" or check:
            energy, grad = hamiltonian._energy_and_grad(x)
            evaluations += x.shape[0]
            g = project_tangent(x, grad, k)
            gnorm = g.norm(dim=1)
            if not torch.isfinite(gnorm).all():
                raise FloatingPointError(f"non-finite gradient at step {t} of descent (lr={lr}); lower lr")
            if record_every and (t % record_every == 0 or t == max_steps):
                last_energy[active] = energy / n
                rows.append(last_energy.clone())
                row_steps.append(t)
            done = gnorm <= tol
            if t == max_steps or done.all():
                final[active] = x
                steps[active[done]] = t
                converged[active[done]] = True
                break
            if done.any():
                final[active[done]] = x[done]
                steps[active[done]] = t
                converged[active[done]] = True
                keep = ~done
                x, g, active = x[keep], g[keep], active[keep]
        if method == "sgd":
            part = t % parts if generator is None else int(torch.randint(parts, (1,), generator=generator))
            _, grad = hamiltonian.component_energy_and_grad(x, part)
            evaluations += x.shape[0]
            g = project_tangent(x, grad, k)
        x = retract(x - lr * g, k)
    wall = time.perf_counter() - start

    energy, grad = hamiltonian._energy_and_grad(final)
    grad_norm = project_tangent(final, grad, k).norm(dim=1)
    if not torch.isfinite(energy).all():
        raise FloatingPointError(f"non-finite energy at the end of descent (lr={lr}); lower lr")
    return DescentResult(
        sigma=final,
        energy=energy,
        energy_per_spin=energy / n,
        grad_norm=grad_norm,
        steps=steps,
        converged=converged,
        trajectory=torch.stack(rows) if rows else None,
        trajectory_steps=torch.tensor(row_steps) if rows else None,
        wall_seconds=wall,
        gradient_evaluations=evaluations,
    )
