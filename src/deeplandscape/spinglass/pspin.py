"""The spherical p-spin glass with an external field.

AnnealSGD paper eq. (3), (4), (7) and (15); Choromanska et al. eq. (2)/(11); Thesis §2.2:

    H(σ) = J · n^{−(p−1)/2} Σ_{i_1…i_p=1}^{n} J_{i_1…i_p} σ_{i_1}⋯σ_{i_p} − h·σ,   σ ∈ S^{n−1}(√n),

with disorder J_{i_1…i_p} i.i.d. N(0, 1) over all n^p ordered tuples, coupling constant J (``coupling``)
and field h_i i.i.d. N(0, ν²) (ν = ``field_std``). Without field, H(σ) is a centred Gaussian of variance
J²·n for every σ on the sphere. (The papers write −H on the left with the same right-hand side; the
disorder is symmetric in law, so the two conventions define the same random landscape. The field enters as
in eq. (7), −H̃ = −H + hᵀσ.)

Only the symmetrized couplings S = sym(J) are stored, once, packed by their distinct trailing indices
(about n^p/2 numbers for p = 3, see :mod:`.contraction`): Σ J σ^{⊗p} = Σ S σ^{⊗p}, and

    ∇H(σ)  = J n^{−(p−1)/2} · p · S σ^{⊗(p−1)} − h,
    ∇²H(σ) = J n^{−(p−1)/2} · p(p−1) · S σ^{⊗(p−2)},
    σ·∇H(σ) = p · (H(σ) + h·σ) − h·σ        (Euler's identity for the homogeneous part).
"""

from __future__ import annotations

import torch
from torch import Tensor

from deeplandscape.spinglass.base import SphericalHamiltonian, check_finite, check_size, resolve_seed
from deeplandscape.spinglass.contraction import (
    PackedSymmetric,
    contract_matrix,
    contract_vector,
    pack,
    symmetrize,
)


class PSpinGlass(SphericalHamiltonian):
    """Spherical p-spin glass H(σ) = J n^{−(p−1)/2} Σ J_{i_1…i_p} σ_{i_1}⋯σ_{i_p} − h·σ on S^{n−1}(√n).

    Args:
        n: number of spins (≥ 2).
        p: order of the interaction (≥ 2); p = 2 is the (trivial) spherical SK model, p = 3 the papers'.
        coupling: the constant J of AnnealSGD paper eq. (4).
        field_std: ν, the standard deviation of the i.i.d. Gaussian field h (eq. (7)); 0 for no field.
        seed: seeds the disorder and the field. The field is drawn after the disorder from the same stream
            as ν·z with z ~ N(0, I), so Hamiltonians that differ only in ``field_std`` share J and the
            direction of h. None draws a fresh seed, kept in ``self.seed``.
        dtype, device: of the stored couplings and of the configurations it accepts.

    Attributes:
        couplings: the symmetrized disorder S, shape (n,)*p (unpacked on access: n^p memory).
        packed: S as stored, a :class:`PackedSymmetric`.
        field: h, shape (n,).
        scale: J · n^{−(p−1)/2}.
    """

    num_spheres = 1

    def __init__(
        self,
        n: int,
        p: int,
        *,
        coupling: float = 1.0,
        field_std: float = 0.0,
        seed: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.n = check_size("n", n, 2)
        self.p = check_size("p", p, 2)
        self.coupling = check_finite("coupling", coupling)
        self.field_std = check_finite("field_std", field_std, nonnegative=True)
        if not dtype.is_floating_point:
            raise ValueError(f"Invalid dtype: {dtype} (must be a floating-point dtype)")
        self.dtype, self.device = dtype, torch.device(device)
        self.seed = resolve_seed(seed)
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.packed = self._draw_couplings(generator)
        z = torch.randn(n, generator=generator, dtype=dtype, device=self.device)
        self.field = self.field_std * z
        self.scale = self.coupling * float(n) ** (-(p - 1) / 2)

    def _draw_couplings(self, generator: torch.Generator) -> PackedSymmetric:
        shape = (self.n,) * self.p
        disorder = torch.randn(shape, generator=generator, dtype=self.dtype, device=self.device)
        return pack(symmetrize(disorder))

    @property
    def couplings(self) -> Tensor:
        """The symmetrized disorder S, shape (n,)*p, unpacked from storage."""
        return self.packed.unpack()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n={self.n}, p={self.p}, coupling={self.coupling}, "
            f"field_std={self.field_std}, seed={self.seed}, dtype={self.dtype}, device='{self.device}')"
        )

    @property
    def has_field(self) -> bool:
        return self.field_std > 0

    def _energy_and_grad(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        g = contract_vector(self.packed, sigma)  # S σ^{⊗(p−1)}
        energy = self.scale * (g * sigma).sum(1)
        grad = (self.scale * self.p) * g
        if self.has_field:
            energy = energy - sigma @ self.field
            grad = grad - self.field
        return energy, grad

    def _hessian(self, sigma: Tensor) -> Tensor:
        return (self.scale * self.p * (self.p - 1)) * contract_matrix(self.packed, sigma)
