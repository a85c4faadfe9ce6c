"""Extreme eigenpairs of a symmetric operator by (block) Lanczos with full re-orthogonalization.

Lanczos builds an orthonormal basis ``V_m = [v_1, …, v_m]`` of the Krylov space
``K_m(A, V_0) = span{V_0, A V_0, …, A^{j} V_0}`` by orthogonalizing each new product ``A v_j`` against
*every* earlier basis vector (twice, classical Gram–Schmidt; this full re-orthogonalization removes the
spurious copies of converged eigenvalues that plain three-term Lanczos produces in floating point). The
Rayleigh–Ritz step diagonalizes the projected matrix

    T_m = V_mᵀ A V_m = S Θ Sᵀ,

whose eigenvalues ``θ_i`` (Ritz values) approximate the extreme eigenvalues of ``A`` with Ritz vectors
``y_i = V_m s_i``. The residual ``r_i = ‖A y_i − θ_i y_i‖`` bounds the error: some eigenvalue of ``A`` lies
within ``r_i`` of ``θ_i`` (Krylov–Weinstein; Parlett, *The Symmetric Eigenvalue Problem*, Thm. 4.5.1), and
within ``r_i² / gap_i`` when no other eigenvalue lies within ``gap_i`` of ``θ_i`` (Parlett Thm. 11.7.1).
``T_m`` and the residuals are computed from the stored products ``A V_m``, so they are exact up to rounding.

Convergence is judged for each wanted pair against its own eigenvalue: the pair has converged when

    r_i ≤ max(tol · |θ_i|, atol),

so an eigenvalue of ``A`` lies within ``tol · |θ_i|`` of ``θ_i`` (relative accuracy ``tol``), or within
``atol`` for an eigenvalue too close to zero for relative accuracy (``atol`` defaults to ``eps · max|θ|``,
the rounding level of the products themselves). A test relative to the largest Ritz value instead would,
with one large outlier (λ₁ ≈ 2700 over a bulk near 2, float32), accept residuals larger than the bulk
eigenvalues themselves. ``error_bounds`` adds the quadratic estimate ``min(r_i, r_i² / gap_i)`` with the gap
measured to the other Ritz values (an estimate: an eigenvalue not yet found can lie closer). As with every
Krylov method, ``converged`` certifies each returned value, not that no eigenvalue was missed: an
eigenvalue whose eigenvector is (nearly) orthogonal to the start block, or a repeated one beyond
``block_size`` copies, is found late or not at all.

A single start vector finds one copy of each eigenvalue: the Krylov space of one vector meets each
eigenspace in one direction only. ``block_size = b`` starts from ``b`` vectors and resolves multiplicities
up to ``b``. When the Krylov space becomes invariant (a product lies in the span of the basis), the basis
is continued with a fresh random vector orthogonal to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from deeplandscape.analysis.linear_operator import SymmetricOperator, as_operator

WHICH = ("LA", "SA", "LM", "SM")


@dataclass(frozen=True)
class LanczosResult:
    """k eigenpairs of a symmetric operator.

    Attributes:
        eigenvalues: ``(k,)`` Ritz values, ordered as ``which`` asks (``LA``: descending, ``SA``: ascending,
            ``LM``: by descending ``|λ|``, ``SM``: by ascending ``|λ|``).
        eigenvectors: ``(d, k)``, unit-norm columns, column ``i`` belongs to ``eigenvalues[i]``.
        residuals: ``(k,)`` ``‖A y_i − θ_i y_i‖`` (absolute); an eigenvalue of ``A`` lies within it.
        converged: ``(k,)`` bool, ``residual ≤ max(tol · |θ_i|, atol)`` (module docstring).
        error_bounds: ``(k,)`` ``min(r_i, r_i² / gap_i) + eps·|θ_i|``, the gap measured to the other Ritz
            values (an estimate, module docstring).
        tolerances: ``(k,)`` ``max(tol · |θ_i|, atol)``, the accuracy ``converged`` certifies.
        num_matvecs: operator applications used (for a HessianOperator: full-data HVPs).
        basis_size: dimension of the final search space.
        which: the part of the spectrum requested.
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    converged: Tensor
    error_bounds: Tensor
    tolerances: Tensor
    num_matvecs: int
    basis_size: int
    which: str


def _apply(op: SymmetricOperator, block: Tensor) -> Tensor:
    """``A`` applied to the rows of ``block`` (rows are vectors); batched when the operator has ``matmat``."""
    matmat = getattr(op, "matmat", None)
    if block.shape[0] > 1 and callable(matmat):
        product = matmat(block.T).T
    else:
        product = torch.stack([op.matvec(row) for row in block])
    if not bool(torch.isfinite(product).all()):
        raise ValueError("Invalid operator: its product with a vector has NaN or Inf")
    return product


def _orthogonalize(
    block: Tensor,
    basis: Tensor,
    generator: torch.Generator,
    dim: int,
    tol: float,
    reference: list[float] | None = None,
) -> Tensor | None:
    """Orthonormalize the rows of ``block`` against the rows of ``basis`` and each other.

    A row whose norm after orthogonalization is at most ``tol`` times its reference norm (``reference[i]``,
    by default its own norm before orthogonalization) lies in the span already and is replaced by a random
    vector, orthonormalized the same way. Returns ``None`` when the basis already spans ``R^d``.
    """
    rows: list[Tensor] = []
    for i, row in enumerate(block):
        w = row
        norm0 = float(w.norm()) if reference is None else reference[i]
        for attempt in range(4):
            for _ in range(2):  # CGS2: twice is enough (Giraud et al. 2005)
                if basis.shape[0]:
                    w = w - (basis @ w) @ basis
                for r in rows:
                    w = w - (r @ w) * r
            norm = float(w.norm())
            if norm > tol * norm0 and norm > 0:
                rows.append(w / norm)
                break
            if basis.shape[0] + len(rows) >= dim:
                break
            if attempt == 3:
                raise RuntimeError("Lanczos could not extend the basis with a random vector")
            w = torch.randn(dim, generator=generator, dtype=block.dtype).to(block.device)
            norm0 = float(w.norm())
        if basis.shape[0] + len(rows) >= dim:
            break
    return torch.stack(rows) if rows else None


def _error_bounds(theta: Tensor, wanted: Tensor, residuals: Tensor) -> Tensor:
    """``min(r_i, r_i² / gap_i) + eps·|θ_i|``, ``gap_i`` the distance from ``θ_i`` to the nearest other Ritz
    value, ``eps·|θ_i|`` the rounding of ``θ_i`` itself."""
    rounding = torch.finfo(theta.dtype).eps * theta[wanted].abs()
    if theta.numel() < 2:
        return residuals + rounding
    distance = (theta[wanted, None] - theta[None, :]).abs()
    distance[torch.arange(wanted.numel()), wanted] = float("inf")
    gap = distance.min(dim=1).values
    return torch.minimum(residuals, residuals**2 / gap) + rounding


def _select(theta: Tensor, k: int, which: str) -> Tensor:
    """Indices of the k wanted Ritz values, in the reporting order of ``which``."""
    if which == "LA":
        return torch.argsort(theta, descending=True)[:k]
    if which == "SA":
        return torch.argsort(theta)[:k]
    if which == "LM":
        return torch.argsort(theta.abs(), descending=True)[:k]
    return torch.argsort(theta.abs())[:k]


def lanczos(
    operator: SymmetricOperator | Tensor,
    k: int = 1,
    *,
    which: str = "LA",
    tol: float | None = None,
    max_basis: int | None = None,
    block_size: int = 1,
    seed: int | torch.Generator = 0,
    atol: float | None = None,
) -> LanczosResult:
    """The ``k`` extreme eigenpairs of a symmetric operator (block Lanczos, full re-orthogonalization).

    See the module docstring for the method. Iterates until every wanted Ritz pair has
    ``‖A y − θ y‖ ≤ max(tol · |θ|, atol)`` or the basis reaches ``max_basis`` vectors (then the unconverged
    pairs are flagged in ``converged``; the basis reaching ``d`` makes them exact).

    Args:
        operator: a :class:`~deeplandscape.analysis.linear_operator.SymmetricOperator` (e.g. a
            :class:`~deeplandscape.analysis.hvp.HessianOperator`) or a dense symmetric ``(d, d)`` tensor.
        k: number of eigenpairs, ``1 ≤ k ≤ d``.
        which: ``"LA"`` largest algebraic, ``"SA"`` smallest algebraic, ``"LM"`` largest magnitude,
            ``"SM"`` smallest magnitude (interior for an indefinite operator: slow to converge).
        tol: residual tolerance relative to each eigenvalue; default ``sqrt(eps)`` of the operator's dtype.
        atol: absolute residual tolerance, for eigenvalues near zero; default ``eps · max|θ|`` (the
            rounding level of the products).
        max_basis: most basis vectors (= most products); default ``min(d, max(100, 20 k))``.
        block_size: start vectors; eigenvalues of multiplicity up to ``block_size`` are resolved.
        seed: seed or ``torch.Generator`` for the start block (drawn on the CPU, so the same seed gives
            the same start on every device).
    """
    op = as_operator(operator)
    dim = int(op.dim)
    if which not in WHICH:
        raise ValueError(f"Invalid which: {which!r}, expected one of {WHICH}")
    if not isinstance(k, int) or not 1 <= k <= dim:
        raise ValueError(f"Invalid k: {k}, expected an integer in [1, d={dim}]")
    if not isinstance(block_size, int) or not 1 <= block_size <= dim:
        raise ValueError(f"Invalid block_size: {block_size}, expected an integer in [1, d={dim}]")
    eps = torch.finfo(op.dtype).eps
    tol = math.sqrt(eps) if tol is None else float(tol)
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"Invalid tol: {tol}, expected a finite value > 0")
    if atol is not None and not (atol >= 0 and math.isfinite(atol)):
        raise ValueError(f"Invalid atol: {atol}, expected None or a finite value >= 0")
    max_basis = min(dim, max(100, 20 * k)) if max_basis is None else int(max_basis)
    if not k <= max_basis <= dim:
        raise ValueError(f"Invalid max_basis: {max_basis}, expected in [k={k}, d={dim}]")
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))

    basis = torch.empty(max_basis, dim, dtype=op.dtype, device=op.device)
    products = torch.empty(max_basis, dim, dtype=op.dtype, device=op.device)
    projected = torch.zeros(max_basis, max_basis, dtype=op.dtype, device=op.device)
    start = torch.randn(block_size, dim, generator=generator, dtype=op.dtype).to(op.device)
    pending = _orthogonalize(start, basis[:0], generator, dim, math.sqrt(eps))
    m = num_matvecs = 0
    while True:
        block = pending[: max_basis - m]
        b = block.shape[0]
        applied = _apply(op, block)
        num_matvecs += b
        basis[m : m + b] = block
        products[m : m + b] = applied
        column = basis[: m + b] @ applied.T
        projected[: m + b, m : m + b] = column
        projected[m : m + b, : m + b] = column.T
        m += b
        theta, s = torch.linalg.eigh((projected[:m, :m] + projected[:m, :m].T) / 2)
        # The part of the new products outside the basis: A V_m = V_m T_m + W e_mᵀ, so the residual of
        # the Ritz pair (θ_i, V_m s_i) is ‖W s_i[last block]‖ (the classical Lanczos estimate β_m |s_mi|).
        outside = applied
        for _ in range(2):
            outside = outside - (outside @ basis[:m].T) @ basis[:m]
        done = m >= max_basis or m >= dim
        if m >= k:
            wanted = _select(theta, k, which)
            estimate = (outside.T @ s[m - b : m, wanted]).norm(dim=0)
            floor = eps * float(theta.abs().max()) if atol is None else atol
            tolerances = torch.clamp(tol * theta[wanted].abs(), min=floor)
            if done or bool((estimate <= tolerances).all()):
                vectors = basis[:m].T @ s[:, wanted]
                residuals = (products[:m].T @ s[:, wanted] - vectors * theta[wanted]).norm(dim=0)
                converged = residuals <= tolerances
                if m >= dim:  # the basis spans R^d: Rayleigh–Ritz is exact up to rounding
                    converged = torch.ones_like(converged)
                if done or bool(converged.all()):
                    return LanczosResult(
                        eigenvalues=theta[wanted],
                        eigenvectors=vectors,
                        residuals=residuals,
                        converged=converged,
                        error_bounds=_error_bounds(theta, wanted, residuals),
                        tolerances=tolerances,
                        num_matvecs=num_matvecs,
                        basis_size=m,
                        which=which,
                    )
        pending = _orthogonalize(
            outside, basis[:m], generator, dim, math.sqrt(eps), reference=applied.norm(dim=1).tolist()
        )
        if pending is None:  # pragma: no cover - the basis spans R^d, handled by `done` above
            raise RuntimeError("Lanczos basis exhausted before convergence")


@dataclass(frozen=True)
class LanczosTridiagonal:
    """``T_m = V_mᵀ A V_m`` from ``m`` single-vector Lanczos steps started at a unit vector ``v_1``.

    Attributes:
        alpha: ``(m,)`` diagonal of ``T_m``.
        beta: ``(m − 1,)`` off-diagonal of ``T_m``.
        num_matvecs: ``m``.
        invariant: the Krylov space became invariant after ``m`` steps (then ``T_m`` is exact).
    """

    alpha: Tensor
    beta: Tensor
    num_matvecs: int
    invariant: bool

    def matrix(self) -> Tensor:
        """The dense ``(m, m)`` tridiagonal matrix."""
        return torch.diag(self.alpha) + torch.diag(self.beta, 1) + torch.diag(self.beta, -1)


def lanczos_tridiagonal(
    operator: SymmetricOperator | Tensor, start: Tensor, num_steps: int
) -> LanczosTridiagonal:
    """``num_steps`` steps of the three-term Lanczos recurrence with full re-orthogonalization.

    ``β_j v_{j+1} = A v_j − α_j v_j − β_{j−1} v_{j−1}`` with ``α_j = v_jᵀ A v_j`` and ``β_j = ‖·‖``, each new
    vector re-orthogonalized against all previous ones (twice). The eigen-decomposition ``T = Q Θ Qᵀ`` gives
    the Gauss quadrature ``v_1ᵀ f(A) v_1 ≈ Σ_i Q_{1i}² f(θ_i)`` used by stochastic Lanczos quadrature
    (Golub & Meurant 2010).

    The run stops early only when the Krylov space is exhausted: ``β_j ≤ 100 · eps · ‖A v_j‖``, i.e. the
    orthogonalization cancelled the product ``A v_j`` down to its rounding error. The test is relative to
    the product being orthogonalized, not to ``‖T‖``: with one large outlier eigenvalue (λ₁ ≈ 2700 over a
    bulk near 2, float32) a test against ``sqrt(eps) · max|α|`` stops after 3 steps although the bulk is far
    from resolved. A product cancelled only to somewhat above its rounding error continues the recurrence
    with that (nearly random) vector, which is harmless: ``T`` stays the projection of ``A`` on an orthonormal
    basis, and the new nodes are coupled to ``v_1`` only through the tiny ``β_j`` (weight ``O(β_j²)``).
    """
    op = as_operator(operator)
    dim = int(op.dim)
    if not isinstance(num_steps, int) or not 1 <= num_steps <= dim:
        raise ValueError(f"Invalid num_steps: {num_steps}, expected an integer in [1, d={dim}]")
    if not isinstance(start, Tensor) or start.shape != (dim,):
        shape = tuple(start.shape) if isinstance(start, Tensor) else type(start).__name__
        raise ValueError(f"Invalid start: shape {shape}, expected ({dim},)")
    norm = float(start.norm())
    if not (norm > 0 and math.isfinite(norm)):
        raise ValueError(f"Invalid start: norm {norm}, expected a finite non-zero vector")
    eps = torch.finfo(op.dtype).eps
    basis = torch.empty(num_steps, dim, dtype=op.dtype, device=op.device)
    basis[0] = start.to(dtype=op.dtype, device=op.device) / norm
    alpha, beta = [], []
    invariant = False
    for j in range(num_steps):
        w = _product(op, basis[j], j)
        alpha.append(float(basis[j] @ w))
        if j == num_steps - 1:
            break
        scale = float(w.norm())
        for _ in range(2):
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        b = float(w.norm())
        if b <= 100 * eps * scale:
            invariant = True
            break
        beta.append(b)
        basis[j + 1] = w / b
    return LanczosTridiagonal(
        alpha=torch.tensor(alpha, dtype=torch.float64),
        beta=torch.tensor(beta, dtype=torch.float64),
        num_matvecs=len(alpha),
        invariant=invariant,
    )


def _product(op: SymmetricOperator, vector: Tensor, step: int) -> Tensor:
    """``A v`` with a ``ValueError`` if it has a NaN/Inf (the operator, not the method, is at fault)."""
    product = op.matvec(vector)
    if not bool(torch.isfinite(product).all()):
        raise ValueError(f"Invalid operator: its product with a vector has NaN or Inf (Lanczos step {step})")
    return product
