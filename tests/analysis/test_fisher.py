import pytest
import torch

from deeplandscape.analysis.fisher import fisher_diagonal
from deeplandscape.analysis.noise import diffusion_matrix
from deeplandscape.analysis.per_sample import per_sample_gradients

from ._curvature_cases import (
    CE,
    assert_unchanged,
    busy_model,
    cnn,
    cnn_data,
    single_thread,  # noqa: F401
    snapshot,
)


def test_fisher_diagonal_is_second_minus_squared_first_moment():
    """diag I = E[g²] − (E g)² (Thesis §3.3.1), here with unequal batches merged."""
    model, data = cnn(), cnn_data()
    g = per_sample_gradients(model, CE, data).gradients
    expected = (g**2).mean(dim=0) - g.mean(dim=0) ** 2
    fisher = fisher_diagonal(model, CE, data, chunk_size=2)
    torch.testing.assert_close(fisher.diagonal, expected, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(fisher.diagonal, diffusion_matrix(g).matrix.diagonal(), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(fisher.mean_gradient, g.mean(dim=0), rtol=1e-12, atol=1e-15)
    assert fisher.num_samples == 11
    assert fisher.per_parameter["0.weight"].shape == model[0].weight.shape
    torch.testing.assert_close(
        fisher.per_parameter["0.weight"].reshape(-1), expected[: model[0].weight.numel()]
    )


def test_fisher_leaves_model_unchanged():
    model = busy_model()
    before = snapshot(model)
    data = (torch.randn(4, 2, 6, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 0]))
    fisher_diagonal(model, CE, data)
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="Invalid train"):
        fisher_diagonal(model, CE, data, train=True)
    assert_unchanged(model, before)
