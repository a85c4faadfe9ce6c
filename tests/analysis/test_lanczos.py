import pytest
import torch

from deeplandscape.analysis.hvp import HessianOperator
from deeplandscape.analysis.lanczos import lanczos, lanczos_tridiagonal
from deeplandscape.analysis.linear_operator import MatrixOperator, to_scipy

from ._curvature_cases import (
    CE,
    MODELS_AND_DATA,
    assert_unchanged,
    busy_batch,
    busy_model,
    oracle_hessian,
    single_thread,  # noqa: F401
    snapshot,
)
from ._spectra import CLUSTER_TOP, OUTLIER_TOP, eigenvalues_of, top_and_bulk, with_spectrum
from ._wishart import SPIKES, SpikedWishart, outlier


@pytest.mark.parametrize(("make_model", "make_data"), MODELS_AND_DATA)
@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
def test_lanczos_on_hvps_matches_dense_oracle_spectrum(make_model, make_data, which):
    model, data = make_model(), make_data()
    exact = torch.linalg.eigvalsh(oracle_hessian(model, CE, data))
    expected = {
        "LA": exact.flip(0)[:3],
        "SA": exact[:3],
        "LM": exact[torch.argsort(exact.abs(), descending=True)][:3],
    }[which]
    op = HessianOperator(model, CE, data)
    result = lanczos(op, k=3, which=which, tol=1e-10)
    torch.testing.assert_close(result.eigenvalues, expected, rtol=1e-8, atol=1e-10)
    assert bool(result.converged.all()) and result.num_matvecs == op.num_matvecs
    # Residuals are the true ‖H y − θ y‖ of the returned pairs.
    h = oracle_hessian(model, CE, data)
    true = (h @ result.eigenvectors - result.eigenvectors * result.eigenvalues).norm(dim=0)
    torch.testing.assert_close(result.residuals, true, rtol=1e-3, atol=1e-12)
    gram = result.eigenvectors.T @ result.eigenvectors
    torch.testing.assert_close(gram, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-10)


def test_spiked_wishart_outliers():
    op = SpikedWishart(d=2000, seed=0)
    result = lanczos(op, k=4, which="LA", seed=1)
    for value, theta in zip(result.eigenvalues[:3].tolist(), SPIKES, strict=True):
        assert value == pytest.approx(outlier(theta), abs=0.15)
    assert result.eigenvalues[3] < 4.15  # the bulk edge of Marchenko–Pastur is 4
    assert bool(result.converged.all())
    assert result.num_matvecs < 200


def test_multiplicity_needs_a_block_and_smallest_magnitude():
    q, _ = torch.linalg.qr(torch.randn(12, 12, dtype=torch.float64))
    values = torch.tensor([3.0, 3, 3, 2, 2, -1, 0.5, 0.1, 0.1, -0.05, 1, 1.5], dtype=torch.float64)
    a = q @ torch.diag(values) @ q.T
    block = lanczos(a, k=5, which="LA", block_size=3)
    torch.testing.assert_close(block.eigenvalues, torch.tensor([3.0, 3, 3, 2, 2], dtype=torch.float64))
    single = lanczos(MatrixOperator(a), k=3, which="SM")  # one start vector: one copy of 0.1
    torch.testing.assert_close(single.eigenvalues.abs(), torch.tensor([0.05, 0.1, 0.5], dtype=torch.float64))
    sm = lanczos(MatrixOperator(a), k=3, which="SM", block_size=2)
    torch.testing.assert_close(sm.eigenvalues.abs(), torch.tensor([0.05, 0.1, 0.1], dtype=torch.float64))
    assert sm.basis_size <= 12


def test_lanczos_tridiagonal_reproduces_krylov_projection():
    a = torch.randn(30, 30, dtype=torch.float64)
    a = a + a.T
    start = torch.randn(30, dtype=torch.float64)
    tri = lanczos_tridiagonal(a, start, 30)
    torch.testing.assert_close(
        torch.linalg.eigvalsh(tri.matrix()), torch.linalg.eigvalsh(a), rtol=1e-9, atol=1e-9
    )
    # An operator with 2 distinct eigenvalues has an invariant Krylov space after 2 steps.
    two = torch.diag(torch.tensor([1.0] * 10 + [2.0] * 10, dtype=torch.float64))
    tri = lanczos_tridiagonal(two, torch.ones(20, dtype=torch.float64), 10)
    assert tri.invariant and tri.num_matvecs == 2


def test_lanczos_leaves_model_unchanged_and_scipy_export_agrees():
    model = busy_model()
    data = [busy_batch()]
    before = snapshot(model)
    op = HessianOperator(model, CE, data)
    result = lanczos(op, k=2)
    assert_unchanged(model, before)
    lin = to_scipy(op)
    y = result.eigenvectors[:, 0].numpy()
    assert abs(float(y @ lin.matvec(y)) - float(result.eigenvalues[0])) < 1e-10


def test_bad_input_errors():
    a = torch.eye(4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"Invalid k: 5, expected an integer in \[1, d=4\]"):
        lanczos(a, k=5)
    with pytest.raises(ValueError, match="Invalid k: 0"):
        lanczos(a, k=0)
    with pytest.raises(ValueError, match="Invalid which: 'BE'"):
        lanczos(a, k=1, which="BE")
    with pytest.raises(ValueError, match="Invalid block_size"):
        lanczos(a, k=1, block_size=0)
    with pytest.raises(ValueError, match="Invalid max_basis"):
        lanczos(a, k=3, max_basis=2)
    with pytest.raises(ValueError, match="Invalid tol"):
        lanczos(a, k=1, tol=0.0)
    with pytest.raises(ValueError, match="not symmetric"):
        lanczos(torch.triu(torch.ones(3, 3, dtype=torch.float64)), k=1)
    with pytest.raises(ValueError, match="Invalid matrix"):
        lanczos(torch.ones(3, 2), k=1)
    with pytest.raises(ValueError, match="Invalid operator"):
        lanczos(object(), k=1)
    with pytest.raises(ValueError, match="Invalid num_steps"):
        lanczos_tridiagonal(a, torch.ones(4, dtype=torch.float64), 5)
    with pytest.raises(ValueError, match="Invalid start"):
        lanczos_tridiagonal(a, torch.ones(3, dtype=torch.float64), 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("top", "low", "high"), [(OUTLIER_TOP, 0.0, 1.95), (CLUSTER_TOP, 0.0, 0.9)])
def test_converged_eigenvalues_are_within_their_tolerance_of_the_true_ones(dtype, top, low, high):
    """One outlier over a bulk (λ₁ = 2732, then 2.09, 2.03, 2.02, 2.00), and a cluster 1e-3 apart: a value
    flagged converged is within max(tol·|θ_i|, atol) of the true i-th eigenvalue (plus the rounding
    eps·‖A‖ of the products), in float32 as in float64; here every pair converges."""
    a = with_spectrum(top_and_bulk(top, 300, low, high), dtype)
    exact = eigenvalues_of(a)  # of the matrix as stored, float32 rounding included
    eps = torch.finfo(dtype).eps
    for max_basis in (5, 10, None):  # a short run must flag what it did not reach
        result = lanczos(a, k=5, which="LA", max_basis=max_basis)
        assert result.eigenvalues.dtype == dtype
        error = (result.eigenvalues.double() - exact[:5]).abs()
        allowed = result.tolerances.double() + eps * float(exact.abs().max())
        assert bool((error[result.converged] <= allowed[result.converged]).all()), (max_basis, error)
        assert bool((result.error_bounds.double() >= 0).all())
    assert bool(result.converged.all())
    relative = torch.finfo(dtype).eps ** 0.5 * result.eigenvalues.abs()
    assert bool((result.tolerances <= relative * 1.0001).all())  # relative to each λ, not to max|λ|


def test_non_finite_operators_are_value_errors_at_every_entry_point():
    from deeplandscape.analysis.slq import spectral_density
    from deeplandscape.analysis.trace import hutchinson_trace

    a = torch.eye(4, dtype=torch.float64)
    a[1, 2] = a[2, 1] = float("nan")

    class NaNOperator:
        dim, dtype, device = 4, torch.float64, torch.device("cpu")

        def matvec(self, v: torch.Tensor) -> torch.Tensor:
            return v * float("inf")

    for entry in (
        MatrixOperator,
        lambda op: lanczos(op, k=1),
        lambda op: spectral_density(op, num_steps=3),
        lambda op: hutchinson_trace(op, num_probes=2),
        lambda op: lanczos_tridiagonal(op, torch.ones(4, dtype=torch.float64), 3),
    ):
        with pytest.raises(ValueError, match=r"Invalid matrix: entry \(1, 2\) is nan"):
            entry(a)
        if entry is not MatrixOperator:
            with pytest.raises(ValueError, match=r"Invalid operator: .*(NaN or Inf|expected finite)"):
                entry(NaNOperator())
    with pytest.raises(ValueError, match=r"Invalid start: norm 0\.0"):
        lanczos_tridiagonal(torch.eye(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), 2)
