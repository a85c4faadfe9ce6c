"""The p-spin glass as a sum of P independent sub-Hamiltonians, for stochastic gradient descent.

Sagun et al. §3.2.1, eq. (4):

    H(σ) = (1/N) Σ_{ijk} x_{ijk} σ_i σ_j σ_k = Σ_{q=1}^{P} ( (1/N) Σ_{ijk} x^q_{ijk} σ_i σ_j σ_k ),
    x^q_{ijk} ~ N(0, 1/P) i.i.d.,

so that Σ_q x^q has the law of the single disorder of eq. (1). Stochastic gradient descent with a
"mini-batch of size 1" steps along ∇H_q, one summand at a time. Written here for any p, with the field
(if any) split evenly, h/P per summand, so that the summands add up to H exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from deeplandscape.spinglass.base import check_size
from deeplandscape.spinglass.contraction import PackedSymmetric, contract_vector, pack, symmetrize
from deeplandscape.spinglass.pspin import PSpinGlass


class SplitPSpinGlass(PSpinGlass):
    """A :class:`PSpinGlass` whose disorder is the sum of ``parts`` independent N(0, 1/P) disorders.

    Everything a :class:`PSpinGlass` does uses the total couplings Σ_q S_q; in addition
    :meth:`component_energy_and_grad` evaluates one summand H_q. Memory: P + 1 packed coupling tensors
    (``components[q]`` holds summand q's).
    """

    def __init__(self, n: int, p: int, parts: int, **kwargs) -> None:
        self.parts = check_size("parts", parts, 1)
        super().__init__(n, p, **kwargs)

    def _draw_couplings(self, generator: torch.Generator) -> PackedSymmetric:
        shape = (self.n,) * self.p
        std = self.parts**-0.5
        self.components = [
            pack(
                symmetrize(
                    std * torch.randn(shape, generator=generator, dtype=self.dtype, device=self.device)
                )
            )
            for _ in range(self.parts)
        ]
        total = self.components[0]
        for part in self.components[1:]:
            total = total + part
        return total

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", parts={self.parts})"

    def component_energy_and_grad(self, sigma: Tensor, part: int) -> tuple[Tensor, Tensor]:
        """(H_q(σ), ∇H_q(σ)) of summand q = ``part`` for a batch of configurations."""
        if not 0 <= part < self.parts:
            raise ValueError(f"Invalid part: {part} (must be in [0, {self.parts}))")
        g = contract_vector(self.components[part], sigma)
        energy = self.scale * (g * sigma).sum(1)
        grad = (self.scale * self.p) * g
        if self.has_field:
            share = self.field / self.parts
            energy = energy - sigma @ share
            grad = grad - share
        return energy, grad
