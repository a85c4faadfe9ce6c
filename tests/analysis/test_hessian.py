"""Closed-form Hessians: linear regression (MSE), logistic regression, softmax cross-entropy."""

import pytest
import torch
from torch import nn

from deeplandscape.analysis.hessian import exact_hessian
from deeplandscape.analysis.hvp import HessianOperator
from deeplandscape.analysis.lanczos import lanczos
from deeplandscape.analysis.slq import spectral_density
from deeplandscape.analysis.spectrum import spectrum_statistics
from deeplandscape.analysis.trace import hutchinson_trace

from ._curvature_cases import single_thread  # noqa: F401

N, P, C = 40, 6, 3


def _inputs(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, P, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2.0, P).double()


def _linear(out: int) -> nn.Module:
    torch.manual_seed(7)
    return nn.Linear(P, out, bias=False).double()


def test_linear_regression_mse_closed_form():
    """L = (1/(N C)) Σ_n ‖W x_n − y_n‖²  ⇒  H = 2/(N C) · (I_C ⊗ XᵀX) for W flattened row-major."""
    x = _inputs()
    y = torch.randn(N, C, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    model, data = _linear(C), [(x[:15], y[:15]), (x[15:], y[15:])]
    closed = 2.0 / (N * C) * torch.kron(torch.eye(C, dtype=torch.float64), x.T @ x)
    mse = nn.MSELoss()
    for mode in ("forward", "reverse"):
        exact = exact_hessian(model, mse, data, mode=mode).matrix
        torch.testing.assert_close(exact, closed, rtol=1e-12, atol=1e-14)

    op = HessianOperator(model, mse, data)
    mu = torch.linalg.eigvalsh(2.0 / (N * C) * x.T @ x).flip(0)  # each with multiplicity C
    top = lanczos(op, k=2 * C, which="LA", block_size=C)
    torch.testing.assert_close(top.eigenvalues, mu[:2].repeat_interleave(C), rtol=1e-10, atol=0.0)
    assert bool(top.converged.all())
    bottom = lanczos(op, k=C, which="SA", block_size=C)
    torch.testing.assert_close(bottom.eigenvalues, mu[-1:].repeat(C), rtol=1e-10, atol=0.0)

    trace = 2.0 / N * torch.trace(x.T @ x)
    est = hutchinson_trace(op, num_probes=60, seed=3)
    assert abs(est.trace - float(trace)) <= 3 * est.std_error

    stats = spectrum_statistics(torch.linalg.eigvalsh(closed))
    assert stats.index == 0 and stats.normalized_index == 0.0
    assert stats.arithmetic_mean == pytest.approx(float(trace) / (C * P), rel=1e-12)

    density = spectral_density(op, num_probes=3, num_steps=P * C, seed=0)
    mass, _ = density.mass(float(mu[-1]) * (1 - 1e-9), float(mu[0]) * (1 + 1e-9))
    assert mass == pytest.approx(1.0, abs=1e-12)
    assert float(torch.trapezoid(density.density, density.grid)) == pytest.approx(1.0, abs=1e-3)
    assert density.num_matvecs <= 3 * P * C
    # The quadrature with m ≥ #distinct eigenvalues integrates λ exactly: E_v[vᵀHv]/d = tr H / d.
    first, _ = density.moment(1)
    assert first == pytest.approx(float(trace) / (C * P), rel=0.2)


def test_logistic_regression_closed_form():
    """L = mean BCE(σ(w·x_n), y_n)  ⇒  H = (1/N) Xᵀ diag(σ_n (1 − σ_n)) X."""
    x = _inputs(2)
    y = torch.randint(0, 2, (N, 1), generator=torch.Generator().manual_seed(3)).double()
    model = _linear(1)
    data = [(x[:9], y[:9]), (x[9:], y[9:])]
    bce = nn.BCEWithLogitsLoss()
    s = torch.sigmoid(x @ model.weight.detach().T).squeeze(1)
    closed = x.T @ torch.diag(s * (1 - s)) @ x / N
    torch.testing.assert_close(exact_hessian(model, bce, data).matrix, closed, rtol=1e-12, atol=1e-14)
    exact = torch.linalg.eigvalsh(closed)
    op = HessianOperator(model, bce, data)
    top = lanczos(op, k=3, which="LA")
    torch.testing.assert_close(top.eigenvalues, exact.flip(0)[:3], rtol=1e-10, atol=0.0)
    est = hutchinson_trace(op, num_probes=40, seed=5)
    assert abs(est.trace - float(torch.trace(closed))) <= 3 * est.std_error
    stats = spectrum_statistics(exact, threshold=0.0)
    assert stats.index == 0 and stats.fraction_near_zero == 0.0
    assert stats.harmonic_mean == pytest.approx(float(P / (1 / exact).sum()), rel=1e-12)


def test_softmax_cross_entropy_of_linear_model_has_null_space_of_input_dimension():
    """H = (1/N) Σ_n (diag s_n − s_n s_nᵀ) ⊗ x_n x_nᵀ: every (1_C ⊗ u) is in the null space, dim ≥ P."""
    x = _inputs(4)
    y = torch.randint(0, C, (N,), generator=torch.Generator().manual_seed(5))
    model, data = _linear(C), [(x, y)]
    ce = nn.CrossEntropyLoss()
    s = torch.softmax(x @ model.weight.detach().T, dim=1)
    closed = sum(
        torch.kron(torch.diag(s[n]) - torch.outer(s[n], s[n]), torch.outer(x[n], x[n])) for n in range(N)
    )
    closed = closed / N
    exact = exact_hessian(model, ce, data)
    torch.testing.assert_close(exact.matrix, closed, rtol=1e-12, atol=1e-14)
    u = torch.randn(P, dtype=torch.float64)
    null = torch.kron(torch.ones(C, dtype=torch.float64), u)
    op = HessianOperator(model, ce, data)
    assert op.matvec(null).abs().max() < 1e-14
    stats = spectrum_statistics(exact.eigenvalues, threshold=1e-10)
    assert stats.num_near_zero >= P and stats.index == 0
    assert stats.fraction_near_zero == pytest.approx(P / (P * C))  # exactly P for generic data
    assert stats.harmonic_mean != stats.harmonic_mean  # NaN: the spectrum is not positive
    smallest = lanczos(op, k=P, which="SM", block_size=P, max_basis=P * C)
    assert smallest.eigenvalues.abs().max() < 1e-12
