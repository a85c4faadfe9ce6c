import math

import pytest
import torch
from torch import nn

from deeplandscape.analysis.hvp import HessianOperator
from deeplandscape.analysis.trace import hutchinson_trace

from ._curvature_cases import (
    assert_unchanged,
    busy_model,
    cnn,
    cnn_data,
    oracle_hessian,
    single_thread,  # noqa: F401
    snapshot,
)


def test_hutchinson_within_three_standard_errors_of_exact_trace():
    model, data = cnn(), cnn_data()
    exact = oracle_hessian(model, nn.CrossEntropyLoss(), data)
    op = HessianOperator(model, nn.CrossEntropyLoss(), data)
    est = hutchinson_trace(op, num_probes=100, seed=0)
    assert est.num_matvecs == 100 == op.num_matvecs
    assert abs(est.trace - float(torch.trace(exact))) <= 3 * est.std_error
    # The standard error estimates the true one: Var(zᵀAz) = 2 (‖A‖_F² − Σ A_ii²) for Rademacher z.
    true_se = math.sqrt(2 * (float((exact**2).sum()) - float((exact.diagonal() ** 2).sum())) / 100)
    assert est.std_error == pytest.approx(true_se, rel=0.3)
    again = hutchinson_trace(op, num_probes=100, seed=0)
    assert again.trace == est.trace  # same seed, same numbers


def test_diagonal_matrix_trace_is_exact_and_model_unchanged():
    d = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
    est = hutchinson_trace(d, num_probes=5)
    assert est.trace == pytest.approx(55.0, abs=1e-12) and est.std_error == pytest.approx(0.0, abs=1e-12)
    model = busy_model()
    before = snapshot(model)
    data = (torch.randn(4, 2, 6, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 0]))
    hutchinson_trace(HessianOperator(model, nn.CrossEntropyLoss(), data), num_probes=3)
    assert_unchanged(model, before)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="Invalid num_probes: 0"):
        hutchinson_trace(torch.eye(2), num_probes=0)
    assert math.isnan(hutchinson_trace(torch.eye(2), num_probes=1).std_error)
