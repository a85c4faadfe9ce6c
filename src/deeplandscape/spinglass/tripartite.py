"""The tri-partite spin glass, a toy model of a three-layer restricted Boltzmann machine.

Sagun et al. §3.1.2:

    H̃(w) = J · (1/n) Σ_{ijk} x_{ijk} w¹_i w²_j w³_k,   w^a ∈ S^{n−1}(√n) for a = 1, 2, 3,

with x_{ijk} i.i.d. N(0, 1) (not symmetrized: each index belongs to its own layer). A configuration is
the concatenation (w¹, w², w³), shape (B, 3n), on the product of three spheres. Then

    ∂H/∂w¹_i = (J/n) Σ_{jk} x_{ijk} w²_j w³_k  (and likewise for w², w³),
    ∂²H/∂w¹_i∂w²_j = (J/n) Σ_k x_{ijk} w³_k,  the diagonal blocks of the Hessian being zero,

and Var H(w) = J²·n for every configuration, as for the p-spin glass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from deeplandscape.spinglass.base import SphericalHamiltonian, check_finite, check_size, resolve_seed


class TripartiteSpinGlass(SphericalHamiltonian):
    """H̃(w) = J n^{−1} Σ x_{ijk} w¹_i w²_j w³_k on S^{n−1}(√n)³ (Sagun et al. §3.1.2).

    Args:
        n: spins per layer (≥ 2).
        coupling: the constant J.
        seed: seeds the disorder (None draws a fresh one, kept in ``self.seed``).
        dtype, device: of the couplings and the configurations.
    """

    num_spheres = 3

    def __init__(
        self,
        n: int,
        *,
        coupling: float = 1.0,
        seed: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.n = check_size("n", n, 2)
        self.coupling = check_finite("coupling", coupling)
        if not dtype.is_floating_point:
            raise ValueError(f"Invalid dtype: {dtype} (must be a floating-point dtype)")
        self.dtype, self.device = dtype, torch.device(device)
        self.seed = resolve_seed(seed)
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.couplings = torch.randn((n, n, n), generator=generator, dtype=dtype, device=self.device)
        self.scale = self.coupling / n

    def __repr__(self) -> str:
        return (
            f"TripartiteSpinGlass(n={self.n}, coupling={self.coupling}, seed={self.seed}, "
            f"dtype={self.dtype}, device='{self.device}')"
        )

    def _split(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = self.n
        return sigma[:, :n], sigma[:, n : 2 * n], sigma[:, 2 * n :]

    def _partials(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """M_{b,ij} = Σ_k x_ijk w³_k and N_{b,jk} = Σ_i x_ijk w¹_i, each (B, n, n)."""
        n = self.n
        w1, _, w3 = self._split(sigma)
        m = (w3 @ self.couplings.reshape(n * n, n).T).view(-1, n, n)
        nn_ = (w1 @ self.couplings.reshape(n, n * n)).view(-1, n, n)
        return m, nn_

    def _energy_and_grad(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        w1, w2, _ = self._split(sigma)
        m, nn_ = self._partials(sigma)
        g1 = (m @ w2[:, :, None]).squeeze(-1)
        g2 = (m.transpose(1, 2) @ w1[:, :, None]).squeeze(-1)
        g3 = (nn_.transpose(1, 2) @ w2[:, :, None]).squeeze(-1)
        energy = self.scale * (g1 * w1).sum(1)
        return energy, self.scale * torch.cat([g1, g2, g3], dim=1)

    def _hessian(self, sigma: Tensor) -> Tensor:
        n = self.n
        _, w2, _ = self._split(sigma)
        m, nn_ = self._partials(sigma)
        a13 = torch.einsum("ijk,bj->bik", self.couplings, w2)
        hess = torch.zeros(sigma.shape[0], 3 * n, 3 * n, dtype=sigma.dtype, device=sigma.device)
        for (r, c), block in {(0, 1): m, (0, 2): a13, (1, 2): nn_}.items():
            hess[:, r * n : (r + 1) * n, c * n : (c + 1) * n] = block
            hess[:, c * n : (c + 1) * n, r * n : (r + 1) * n] = block.transpose(1, 2)
        return self.scale * hess
