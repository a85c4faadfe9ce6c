"""Simulated annealing of one-hidden-layer ReLU networks with weights in 3 values (Choromanska et al. §5.1).

Choromanska et al. §5.1 (supplementary §12.2, Fig. 6) train the one-hidden-layer networks of §5 "using
simulated annealing (SA) where 95% of parameters were assumed to be redundant": every weight takes "one of 3
values uniformly spaced in the interval [−1, 1]", i.e. ``w ∈ {−1, 0, 1}`` (log₂3 ≈ 1.58 bits against 32,
so ≈ 95% of the bits of a float32 weight are redundant). The network is

    f(x; W) = κ · W₂ [ReLU(W₁ [x; 1]); 1],    W₁ ∈ {−1, 0, 1}^{n1×(n0+1)},  W₂ ∈ {−1, 0, 1}^{C×(n1+1)},

with the biases as the last columns. By the positive homogeneity of ReLU a common scale of the weights
only multiplies the logits, so the classification (and its accuracy) does not depend on it; the single
constant ``κ > 0`` (the *logit scale*) only sets the softmax temperature of the cross entropy that SA
minimizes. The paper states neither κ, nor the move set, nor the schedule; here (our choices):

- energy: the mean training cross entropy ``L(W) = (1/N) Σ_n ℓ(f(x_n; W), y_n)`` on the whole subset;
- start: every weight uniform on {−1, 0, 1};
- move: one weight drawn uniformly among the d = n1(n0+1) + C(n1+1) weights, its value changed to one of
  the two other values, each with probability 1/2 (a symmetric proposal);
- acceptance (Metropolis): accept when ``u < exp(−ΔL/T)``, ``u ~ U[0, 1)`` (always when ΔL ≤ 0);
- schedule: geometric cooling ``T_k = T₀ (T_end/T₀)^{k/(K−1)}`` over the K proposals; by default T₀ makes
  the mean uphill step from the start accepted with probability 1/2 (``T₀ = mean(ΔL⁺)/ln 2``, estimated
  from 64 trial proposals per chain) and ``T_end = 10⁻³ T₀``.

Efficiency: each chain keeps its hidden pre-activations ``Z = W₁ [x; 1]`` (n1 × N), its logits (C × N) and
per-sample losses. A change δ of ``W₁[j, i]`` alters only row j of Z, ``z_j ← z_j + δ x_i``, and the logits
by the rank-one term ``κ (ReLU(z_j') − ReLU(z_j)) ⊗ W₂[:, j]``; a change of ``W₂[c, j]`` alters only the
logits of class c by ``κ δ h_j``. A proposal therefore costs O(N·C) instead of a forward pass,
O(N·n0·n1). E independent chains advance in lock step, one proposal each per step, in batched tensor
operations. The caches are recomputed from scratch every ``record_every`` proposals (no drift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

VALUES = (-1.0, 0.0, 1.0)  # Choromanska et al. §5.1: 3 values uniformly spaced in [−1, 1]


@dataclass(frozen=True)
class AnnealingResult:
    """E chains of simulated annealing of ternary one-hidden-layer networks.

    Attributes:
        w1: ``(E, n1, n0 + 1)`` first-layer weights in {−1, 0, 1} (last column: biases).
        w2: ``(E, C, n1 + 1)`` second-layer weights in {−1, 0, 1} (last column: biases).
        logit_scale: κ, ``f = κ W₂ [ReLU(W₁ [x; 1]); 1]``.
        initial_loss: ``(E,)`` training cross entropy at the random start.
        final_loss: ``(E,)`` training cross entropy at the end (recomputed from scratch).
        loss_curve: ``(R + 1, E)`` training loss at proposals ``0, record_every, 2·record_every, …, K``.
        curve_steps: ``(R + 1,)`` the proposal counts of ``loss_curve``'s rows.
        acceptance: ``(E,)`` fraction of the K proposals accepted.
        t_start, t_end: the first and last temperature.
        proposals: K, proposals per chain.
    """

    w1: torch.Tensor
    w2: torch.Tensor
    logit_scale: float
    initial_loss: torch.Tensor
    final_loss: torch.Tensor
    loss_curve: torch.Tensor
    curve_steps: torch.Tensor
    acceptance: torch.Tensor
    t_start: float
    t_end: float
    proposals: int


def _augment(x: torch.Tensor) -> torch.Tensor:
    """``[x; 1]`` as rows: ``(N, n0) → (n0 + 1, N)``."""
    return torch.cat([x.T, torch.ones(1, x.shape[0], dtype=x.dtype, device=x.device)])


def ternary_logits(w1: torch.Tensor, w2: torch.Tensor, x: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """``(E, N, C)`` logits ``κ W₂ [ReLU(W₁ [x; 1]); 1]`` of E networks on the inputs ``x`` ``(N, n0)``."""
    xa = _augment(x.to(w1.dtype))
    h = torch.relu(w1 @ xa)  # (E, n1, N)
    ha = torch.cat([h, torch.ones_like(h[:, :1])], dim=1)
    return logit_scale * (w2 @ ha).transpose(1, 2)


def default_logit_scale(in_features: int, n1: int) -> float:
    """κ = 4 / √((n0 + 1)(n1 + 1)): logits of order a few units for inputs in [0, 1] at a ternary start
    (our choice; it only sets the softmax temperature of the annealed loss, see the module docstring)."""
    return 4.0 / math.sqrt((in_features + 1) * (n1 + 1))


def _per_sample_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(E, N)`` cross entropies of ``(E, N, C)`` logits against shared labels ``y`` ``(N,)``."""
    return torch.logsumexp(logits, -1) - logits[:, torch.arange(y.shape[0]), y]


class TernaryChains:
    """The state of E ternary networks on fixed data, with O(N·C) single-weight moves (module docstring).

    Cached per chain: ``z = W₁ [x; 1]`` ``(n1, N)``, ``h = [ReLU(z); 1]`` ``(n1 + 1, N)``, the logits
    ``(C, N)`` and the per-sample losses ``ℓ_n`` ``(N,)``. A move changes the logits by the rank-one term
    ``κ u ⊗ v``: for a move δ of ``W₁[j, i]``, ``u = ReLU(z_j + δ x_i) − ReLU(z_j)`` and ``v = W₂[:, j]``;
    for a move δ of ``W₂[c, j]``, ``u = δ h_j`` and ``v = e_c``. :meth:`propose` evaluates one move per
    chain and returns ``ΔL = (1/N) Σ_n (ℓ_n' − ℓ_n)``; :meth:`accept` applies it where asked.
    """

    def __init__(self, w1: torch.Tensor, w2: torch.Tensor, x: torch.Tensor, y: torch.Tensor, kappa: float):
        self.w1, self.w2, self.kappa = w1, w2, kappa
        self.E, self.n1, n0p1 = w1.shape
        self.C, self.N = w2.shape[1], x.shape[0]
        self.d1 = self.n1 * n0p1
        self.d = self.d1 + self.C * (self.n1 + 1)
        self.xa = _augment(x.to(w1.dtype))  # (n0 + 1, N), last row ones
        self.y = y.to(torch.long)
        self.y_rows = self.y.expand(self.E, -1)  # (E, N)
        self.rows = torch.arange(self.E)
        self.eye = torch.eye(self.C, dtype=w1.dtype)
        self.recompute()

    def recompute(self) -> None:
        """All caches from the weights (no accumulated rounding)."""
        self.z = self.w1 @ self.xa  # (E, n1, N)
        self.h = torch.cat([torch.relu(self.z), torch.ones_like(self.z[:, :1])], dim=1)
        self.logits = self.kappa * (self.w2 @ self.h)  # (E, C, N): reductions over C are faster strided
        self.target = torch.gather(self.logits, 1, self.y_rows[:, None])[:, 0]  # (E, N) logit of the label
        self.ps = torch.logsumexp(self.logits, 1) - self.target

    def loss(self) -> torch.Tensor:
        """``(E,)`` mean cross entropy of each chain's current weights (from the caches)."""
        return self.ps.mean(1)

    def propose(self, idx: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Evaluate one move per chain: flat weight index ``idx`` ``(E,)`` in ``[0, d)`` (W₁ then W₂, each
        row major, biases last in each row) and ``r`` ``(E,)`` in {0, 1}: the new value is the next
        (r = 0) or the one after (r = 1) in the cycle −1 → 0 → 1 → −1. Returns ``ΔL`` ``(E,)``; the move
        is kept for :meth:`accept`.
        """
        w1, w2, rows, n0p1 = self.w1, self.w2, self.rows, self.xa.shape[0]
        first = idx < self.d1
        i1 = torch.where(first, idx, 0)
        j, i = i1 // n0p1, i1 % n0p1
        i2 = torch.where(first, 0, idx - self.d1)
        c, k = i2 // (self.n1 + 1), i2 % (self.n1 + 1)
        old = torch.where(first, w1[rows, j, i], w2[rows, c, k])
        new = torch.remainder(old + 2 + r.to(old.dtype), 3) - 1  # one of the two other values of {−1, 0, 1}
        delta = new - old
        z_new = self.z[rows, j] + delta[:, None] * self.xa[i]  # (E, N), used only by first-layer moves
        h_j, h_k = self.h[rows, j], self.h[rows, k]
        u = torch.where(first[:, None], torch.relu(z_new) - h_j, delta[:, None] * h_k)
        v = torch.where(first[:, None], w2[rows, :, j], self.eye[c])  # (E, C)
        new_logits = torch.addcmul(self.logits, v[:, :, None], u[:, None, :], value=self.kappa)
        new_target = torch.addcmul(self.target, u, torch.gather(v, 1, self.y_rows), value=self.kappa)
        new_ps = torch.logsumexp(new_logits, 1) - new_target
        self._move = (first, j, i, c, k, new, z_new, new_logits, new_target, new_ps)
        return (new_ps - self.ps).mean(1)

    def accept(self, mask: torch.Tensor) -> None:
        """Apply the last proposed move in the chains where ``mask`` ``(E,)`` is true."""
        first, j, i, c, k, new, z_new, new_logits, new_target, new_ps = self._move
        a1, a2 = (mask & first).nonzero()[:, 0], (mask & ~first).nonzero()[:, 0]
        if a1.numel():
            self.w1[a1, j[a1], i[a1]] = new[a1]
            self.z[a1, j[a1]] = z_new[a1]
            self.h[a1, j[a1]] = torch.relu(z_new[a1])
        if a2.numel():
            self.w2[a2, c[a2], k[a2]] = new[a2]
        sel = mask.nonzero()[:, 0]
        self.logits[sel] = new_logits[sel]
        self.target[sel] = new_target[sel]
        self.ps[sel] = new_ps[sel]


def anneal_ternary_mlp(
    x: torch.Tensor,
    y: torch.Tensor,
    n1: int,
    *,
    chains: int,
    proposals: int,
    classes: int = 10,
    logit_scale: float | None = None,
    t_start: float | None = None,
    t_end_ratio: float = 1e-3,
    record_every: int = 1000,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> AnnealingResult:
    """Simulated annealing of ``chains`` independent ternary networks (module docstring) on ``(x, y)``.

    Args:
        x: ``(N, n0)`` inputs; y: ``(N,)`` labels in ``[0, classes)``.
        n1: hidden units.
        chains: E, independent chains (networks), advanced together.
        proposals: K, single-weight proposals per chain.
        logit_scale: κ; ``None`` gives :func:`default_logit_scale`.
        t_start: T₀; ``None`` chooses it from the start (module docstring).
        t_end_ratio: ``T_end / T₀``, in (0, 1].
        record_every: proposals between recorded losses (and from-scratch recomputations of the caches).
        seed: seeds the start and every proposal.
        dtype: of the cached activations (the weights are exact in any float type).
    """
    for name, v in (("n1", n1), ("chains", chains), ("proposals", proposals), ("record_every", record_every)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"Invalid {name}: {v!r} (must be a positive int)")
    if x.dim() != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(
            f"Invalid x, y: shapes {tuple(x.shape)}, {tuple(y.shape)} (expected (N, n0) and (N,), N > 0)"
        )
    if int(y.min()) < 0 or int(y.max()) >= classes:
        raise ValueError(
            f"Invalid y: labels in [{int(y.min())}, {int(y.max())}] (must lie in [0, {classes}))"
        )
    if not 0.0 < t_end_ratio <= 1.0:
        raise ValueError(f"Invalid t_end_ratio: {t_end_ratio!r} (must lie in (0, 1])")
    if t_start is not None and not (math.isfinite(t_start) and t_start > 0):
        raise ValueError(f"Invalid t_start: {t_start!r} (must be finite and > 0)")
    n0 = x.shape[1]
    kappa = default_logit_scale(n0, n1) if logit_scale is None else float(logit_scale)
    if not (math.isfinite(kappa) and kappa > 0):
        raise ValueError(f"Invalid logit_scale: {logit_scale!r} (must be finite and > 0)")
    E = chains
    gen = torch.Generator().manual_seed(seed)
    values = torch.tensor(VALUES, dtype=dtype)
    w1 = values[torch.randint(0, 3, (E, n1, n0 + 1), generator=gen)]
    w2 = values[torch.randint(0, 3, (E, classes, n1 + 1), generator=gen)]
    state = TernaryChains(w1, w2, x, y, kappa)
    d = state.d
    initial = state.loss().clone()
    if t_start is None:  # mean uphill ΔL of 64 trial proposals per chain from the start, accepted w.p. 1/2
        trials = torch.stack(
            [
                state.propose(
                    torch.randint(0, d, (E,), generator=gen), torch.randint(0, 2, (E,), generator=gen)
                )
                for _ in range(64)
            ]
        )
        positive = trials[trials > 0]
        t_start = float(positive.mean()) / math.log(2) if positive.numel() else 1e-3
    t_end = t_start * t_end_ratio
    log_ratio = math.log(t_end_ratio)
    curve, steps_at = [initial], [0]
    accepted = torch.zeros(E, dtype=torch.long)
    k_done = 0
    while k_done < proposals:
        n = min(1024, proposals - k_done, record_every - k_done % record_every)
        idx_b = torch.randint(0, d, (n, E), generator=gen)
        r_b = torch.randint(0, 2, (n, E), generator=gen)
        u_b = torch.rand(n, E, generator=gen, dtype=torch.float64)
        frac = torch.arange(k_done, k_done + n, dtype=torch.float64) / max(proposals - 1, 1)
        temps = t_start * torch.exp(frac * log_ratio)
        for s in range(n):
            dl = state.propose(idx_b[s], r_b[s])
            acc = (dl <= 0) | (u_b[s] < torch.exp(-dl.double() / temps[s]))
            if bool(acc.any()):
                accepted += acc
                state.accept(acc)
        k_done += n
        if k_done % record_every == 0 or k_done == proposals:
            state.recompute()
            curve.append(state.loss().clone())
            steps_at.append(k_done)
    return AnnealingResult(
        w1=state.w1,
        w2=state.w2,
        logit_scale=kappa,
        initial_loss=initial,
        final_loss=state.loss().clone(),
        loss_curve=torch.stack(curve),
        curve_steps=torch.tensor(steps_at),
        acceptance=accepted.double() / proposals,
        t_start=t_start,
        t_end=t_end,
        proposals=proposals,
    )


def calibrated_loss(
    logits_train: torch.Tensor, y_train: torch.Tensor, logits_test: torch.Tensor, y_test: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per network, the multiplier ``a`` of the logits on a grid (10^−1.5 … 10^1.5, 61 points) that
    minimizes the training cross entropy, and the test cross entropy at that ``a`` (so that a test loss of
    ternary networks does not depend on the arbitrary κ). Returns ``(a, test_loss)``, each ``(E,)``.
    """
    grid = torch.logspace(-1.5, 1.5, 61, dtype=logits_train.dtype)
    train = torch.stack([_per_sample_loss(a * logits_train, y_train).mean(1) for a in grid])  # (A, E)
    best = train.argmin(0)
    a = grid[best]
    test = F.cross_entropy(
        (a[:, None, None] * logits_test).transpose(1, 2),
        y_test.expand(logits_test.shape[0], -1),
        reduction="none",
    ).mean(1)
    return a, test
