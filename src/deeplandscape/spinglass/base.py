"""The interface every Hamiltonian on a product of spheres implements, and what follows from it.

A subclass supplies the Euclidean energy, gradient and Hessian of its polynomial (extended off the sphere
in the obvious way); this base class turns them into the quantities on the manifold
M = S^{n-1}(√n)^K (Absil, Mahony & Sepulchre, "Optimization Algorithms on Matrix Manifolds", §5.5):

    grad_M H(σ) = P_σ ∇H(σ),
    Hess_M H(σ) = P_σ ∇²H(σ) P_σ − Σ_k (σ_k·∇_k H(σ) / n) P_{σ_k},

the second term being the curvature of each sphere of radius √n (its Weingarten map is −(1/n)·I on the
tangent space). Configurations are validated once at the public entry points; the private ``_energy_and_grad``
and ``_hessian`` run unchecked inside the descent loop.
"""

from __future__ import annotations

import abc
import math
import random

import torch
from torch import Tensor

from deeplandscape.spinglass.geometry import blocks, project_tangent, tangent_basis, uniform_on_spheres


def resolve_seed(seed: int | None) -> int:
    """The seed to use: ``seed`` itself, or a fresh one drawn from the OS when ``seed`` is None."""
    if seed is None:
        return random.SystemRandom().randrange(2**63)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"Invalid seed: {seed!r} (must be a non-negative integer or None)")
    return seed


def check_size(name: str, value: int, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"Invalid {name}: {value!r} (must be an integer ≥ {minimum})")
    return value


def check_finite(name: str, value: float, *, nonnegative: bool = False) -> float:
    value = float(value)
    if not math.isfinite(value) or (nonnegative and value < 0):
        allowed = "a finite number ≥ 0" if nonnegative else "a finite number"
        raise ValueError(f"Invalid {name}: {value!r} (must be {allowed})")
    return value


class SphericalHamiltonian(abc.ABC):
    """A random Hamiltonian on S^{n-1}(√n)^K, evaluated on batches of configurations of shape (B, K·n)."""

    n: int
    num_spheres: int
    seed: int
    dtype: torch.dtype
    device: torch.device

    @property
    def dim(self) -> int:
        """Number of coordinates of a configuration, K·n."""
        return self.num_spheres * self.n

    @property
    def manifold_dim(self) -> int:
        """Dimension of the manifold, K·(n − 1): the size of the Riemannian Hessian in a tangent basis."""
        return self.num_spheres * (self.n - 1)

    # -- what a subclass provides -------------------------------------------------------------------
    @abc.abstractmethod
    def _energy_and_grad(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """Energy (B,) and Euclidean gradient (B, dim) of a validated batch."""

    @abc.abstractmethod
    def _hessian(self, sigma: Tensor) -> Tensor:
        """Euclidean Hessian (B, dim, dim) of a validated batch."""

    # -- validation -----------------------------------------------------------------------------------
    def check_configuration(self, sigma: Tensor, name: str = "sigma") -> Tensor:
        """Return ``sigma`` as (B, dim) after checking shape, dtype, device and the sphere constraint.

        Each block must satisfy |‖σ_k‖²/n − 1| ≤ √eps of the dtype. Raises ``ValueError`` naming ``name``.
        """
        if not isinstance(sigma, Tensor):
            raise ValueError(f"Invalid {name}: expected a torch.Tensor, got {type(sigma).__name__}")
        if sigma.dim() == 1:
            sigma = sigma.unsqueeze(0)
        if sigma.dim() != 2 or sigma.shape[1] != self.dim or sigma.shape[0] == 0:
            raise ValueError(
                f"Invalid {name}: shape {tuple(sigma.shape)}, expected (B, {self.dim}) with B ≥ 1"
            )
        if sigma.dtype != self.dtype or sigma.device != self.device:
            raise ValueError(
                f"Invalid {name}: dtype/device {sigma.dtype}/{sigma.device}, the Hamiltonian uses "
                f"{self.dtype}/{self.device}"
            )
        if not torch.isfinite(sigma).all():
            raise ValueError(f"Invalid {name}: contains NaN or Inf")
        sq = blocks(sigma, self.num_spheres).pow(2).sum(-1) / self.n
        worst = (sq - 1).abs().max().item()
        if worst > math.sqrt(torch.finfo(self.dtype).eps):
            raise ValueError(
                f"Invalid {name}: not on the sphere of radius √n (largest |‖σ‖²/n − 1| = {worst:.3g}); "
                "use geometry.retract to project it"
            )
        return sigma

    # -- public evaluation ----------------------------------------------------------------------------
    def energy(self, sigma: Tensor) -> Tensor:
        """Total energy H(σ) of each configuration, shape (B,) (not divided by n)."""
        return self._energy_and_grad(self.check_configuration(sigma))[0]

    def grad(self, sigma: Tensor) -> Tensor:
        """Euclidean gradient ∇H(σ), shape (B, dim)."""
        return self._energy_and_grad(self.check_configuration(sigma))[1]

    def energy_and_grad(self, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """(H(σ), ∇H(σ)) from a single contraction of the couplings."""
        return self._energy_and_grad(self.check_configuration(sigma))

    def riemannian_grad(self, sigma: Tensor) -> Tensor:
        """grad_M H(σ) = P_σ ∇H(σ): the gradient projected on the tangent space, shape (B, dim)."""
        sigma = self.check_configuration(sigma)
        return project_tangent(sigma, self._energy_and_grad(sigma)[1], self.num_spheres)

    def hessian(self, sigma: Tensor) -> Tensor:
        """Euclidean Hessian ∇²H(σ), shape (B, dim, dim)."""
        return self._hessian(self.check_configuration(sigma))

    def riemannian_hessian(self, sigma: Tensor, basis: str = "ambient") -> Tensor:
        """Hessian on the manifold, Hess_M H(σ) = P ∇²H P − Σ_k (σ_k·∇_k H / n) P_k.

        ``basis="ambient"``: a (B, dim, dim) matrix acting on the tangent space, with each normal direction
        σ_k removed (so it has K zero eigenvalues along the normals). ``basis="tangent"``: the same operator
        written in an orthonormal basis of the tangent space (Householder), a (B, K(n−1), K(n−1)) matrix
        whose eigenvalues are exactly the Hessian's on the manifold.
        """
        if basis not in ("ambient", "tangent"):
            raise ValueError(f"Invalid basis: {basis!r} (must be 'ambient' or 'tangent')")
        sigma = self.check_configuration(sigma)
        _, grad = self._energy_and_grad(sigma)
        hess = self._hessian(sigma)
        k, n = self.num_spheres, self.n
        radial = (blocks(sigma, k) * blocks(grad, k)).sum(-1) / n  # (B, K): σ_k·∇_k H / n
        if basis == "tangent":
            basis_mat = self._tangent_frame(sigma)  # (B, dim, K(n−1))
            out = basis_mat.transpose(1, 2) @ hess @ basis_mat
            shift = radial.repeat_interleave(n - 1, dim=1)
            return out - torch.diag_embed(shift)
        proj = self._projector(sigma)
        shift = radial.repeat_interleave(n, dim=1)  # one value per coordinate of its block
        return proj @ hess @ proj - proj * shift[:, None, :]

    def _projector(self, sigma: Tensor) -> Tensor:
        """Block-diagonal tangent projector, (B, dim, dim)."""
        batch, k, n = sigma.shape[0], self.num_spheres, self.n
        proj = torch.zeros(batch, self.dim, self.dim, dtype=sigma.dtype, device=sigma.device)
        s = blocks(sigma, k)
        eye = torch.eye(n, dtype=sigma.dtype, device=sigma.device)
        for b in range(k):
            sl = slice(b * n, (b + 1) * n)
            proj[:, sl, sl] = eye - s[:, b, :, None] * s[:, b, None, :] / n
        return proj

    def _tangent_frame(self, sigma: Tensor) -> Tensor:
        """Block-diagonal orthonormal tangent basis, (B, dim, K(n−1))."""
        batch, k, n = sigma.shape[0], self.num_spheres, self.n
        frame = torch.zeros(batch, self.dim, k * (n - 1), dtype=sigma.dtype, device=sigma.device)
        s = blocks(sigma, k)
        for b in range(k):
            frame[:, b * n : (b + 1) * n, b * (n - 1) : (b + 1) * (n - 1)] = tangent_basis(s[:, b])
        return frame

    # -- sampling --------------------------------------------------------------------------------------
    def random_configurations(self, batch: int, seed: int | None = None) -> Tensor:
        """``batch`` configurations uniform on the manifold (normalized Gaussians), shape (B, dim)."""
        generator = torch.Generator(device=self.device).manual_seed(resolve_seed(seed))
        return uniform_on_spheres(
            batch, self.n, self.num_spheres, generator=generator, dtype=self.dtype, device=self.device
        )
