"""Geometry of (products of) spheres of radius √n: projections, retraction, tangent bases, sampling.

A configuration lives on M = S^{n-1}(√n)^K, the product of K spheres (K = 1 for the p-spin glass,
K = 3 for the tri-partite model of Sagun et al. §3.1.2), stored as a (B, K·n) tensor whose k-th block of n
entries lies on the k-th sphere. For a point σ of one sphere and an ambient vector v,

    P_σ v = v − (σ·v / n) σ                         (projection on the tangent space),
    R_σ(v) = √n (σ + v) / ‖σ + v‖                   (retraction: step, then re-projection),

which is the update of projected gradient descent in Thesis §2.4.1 and Sagun §3.1.1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def blocks(x: Tensor, num_spheres: int) -> Tensor:
    """View a (B, K·n) tensor as (B, K, n)."""
    return x.view(x.shape[0], num_spheres, x.shape[1] // num_spheres)


def project_tangent(sigma: Tensor, v: Tensor, num_spheres: int = 1) -> Tensor:
    """P_σ v, block by block: remove from v its component along σ on each sphere."""
    s, w = blocks(sigma, num_spheres), blocks(v, num_spheres)
    n = s.shape[-1]
    return (w - ((s * w).sum(-1, keepdim=True) / n) * s).reshape(v.shape)


def retract(x: Tensor, num_spheres: int = 1) -> Tensor:
    """Scale every block of x back onto its sphere of radius √n (returns a new tensor)."""
    b = blocks(x, num_spheres)
    n = b.shape[-1]
    return (b * (math.sqrt(n) / b.norm(dim=-1, keepdim=True))).reshape(x.shape)


def uniform_on_spheres(
    batch: int,
    n: int,
    num_spheres: int = 1,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``batch`` points uniform on S^{n-1}(√n)^K: normalized standard Gaussians, shape (B, K·n)."""
    if batch < 1:
        raise ValueError(f"Invalid batch: {batch} (must be ≥ 1)")
    z = torch.randn(batch, num_spheres * n, generator=generator, dtype=dtype, device=device)
    return retract(z, num_spheres)


def tangent_basis(sigma: Tensor) -> Tensor:
    """An orthonormal basis of the tangent space of S^{n-1}(√n) at each row of ``sigma`` (B, n).

    Uses the Householder reflection Q = I − 2uuᵀ with u ∝ σ̂ − e_n, which maps e_n to σ̂ = σ/‖σ‖; its first
    n − 1 columns are orthonormal and orthogonal to σ. Returns (B, n, n − 1).
    """
    batch, n = sigma.shape
    unit = sigma / sigma.norm(dim=1, keepdim=True)
    e_last = torch.zeros_like(unit)
    e_last[:, -1] = 1.0
    # Reflect about σ̂ + e_n instead when σ̂ ≈ e_n, where σ̂ − e_n would cancel: Q e_n = −σ̂ still spans
    # the same normal line.
    flip = unit[:, -1] > 0
    u = torch.where(flip[:, None], unit + e_last, unit - e_last)
    u = u / u.norm(dim=1, keepdim=True)
    eye = torch.eye(n, dtype=sigma.dtype, device=sigma.device).expand(batch, n, n)
    q = eye - 2.0 * u[:, :, None] * u[:, None, :]
    return q[:, :, : n - 1]
