import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape.analysis.slices import (
    filter_normalize,
    interpolate,
    loss_line,
    loss_plane,
    random_direction,
)

from ._unchanged import assert_unchanged, busy_data, busy_model, snapshot


def _regression(seed: int = 0):
    """Bias-free linear regression with MSE: the loss is an exact quadratic in the weights."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(20, 4, generator=g, dtype=torch.float64)
    y = torch.randn(20, 3, generator=g, dtype=torch.float64)
    model = nn.Linear(4, 3, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(3, 4, generator=g, dtype=torch.float64))
    return model, x, y


def test_filter_normalized_direction_norms_and_zeros():
    model = busy_model()
    d = random_direction(model, seed=5)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = dict(model.named_parameters())
    start = 0
    for name in names:
        p = params[name]
        part = d[start : start + p.numel()].view_as(p)
        start += p.numel()
        if p.dim() <= 1:  # conv bias, BatchNorm bias, linear bias
            assert torch.count_nonzero(part) == 0, name
        else:
            want = p.detach().reshape(p.shape[0], -1).norm(dim=1)
            got = part.reshape(p.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    assert start == d.numel()
    assert torch.equal(d, random_direction(model, seed=5))
    assert not torch.equal(d, random_direction(model, seed=6))


def test_filter_normalize_bias_bn_weight_copies_parameters_and_zero_filter_stays_zero():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).double()
    raw = torch.ones(3 * 2 + 2 + 2 + 2, dtype=torch.float64)
    raw[:3] = 0.0  # first filter of the Linear weight is zero
    out = filter_normalize(model, raw, bias_bn="weight")
    w = model[0].weight.detach()
    assert torch.count_nonzero(out[:3]) == 0
    torch.testing.assert_close(out[3:6].norm(), w[1].norm())
    torch.testing.assert_close(out[6:8], model[0].bias.detach())
    torch.testing.assert_close(out[8:10], model[1].weight.detach())
    torch.testing.assert_close(out[10:12], model[1].bias.detach())


def test_line_through_quadratic_matches_parabola():
    model, x, y = _regression()
    delta = random_direction(model, seed=1)
    alphas = np.linspace(-2, 2, 9)
    line = loss_line(model, nn.MSELoss(), [(x[:7], y[:7]), (x[7:], y[7:])], delta, alphas)
    r = x @ model.weight.detach().T - y
    e = x @ delta.view(3, 4).T
    want = [float(((r + a * e) ** 2).mean()) for a in alphas]
    np.testing.assert_allclose(line.losses, want, rtol=1e-12)
    assert line.n_evaluations == 9
    assert line.direction_norm == pytest.approx(float(delta.norm()))


def test_plane_through_quadratic_matches_closed_form():
    model, x, y = _regression(1)
    d1, d2 = random_direction(model, seed=1), random_direction(model, seed=2)
    plane = loss_plane(model, nn.MSELoss(), (x, y), d1, d2, [-1.0, 0.0, 0.5], [0.0, 2.0])
    r = x @ model.weight.detach().T - y
    e1, e2 = x @ d1.view(3, 4).T, x @ d2.view(3, 4).T
    for i, a in enumerate([-1.0, 0.0, 0.5]):
        for j, b in enumerate([0.0, 2.0]):
            assert plane.losses[i, j] == pytest.approx(float(((r + a * e1 + b * e2) ** 2).mean()), rel=1e-12)


def test_slice_along_hessian_eigenvector_has_the_eigenvalue_as_curvature():
    model, x, y = _regression(2)
    # H = 2/(N C) (I_C ⊗ XᵀX) for the mean-reduced MSE of a bias-free linear model
    n, c = x.shape[0], y.shape[1]
    hessian = torch.kron(torch.eye(c, dtype=torch.float64), 2.0 / (n * c) * x.T @ x)
    eigenvalues, eigenvectors = torch.linalg.eigh(hessian)
    v, lam = eigenvectors[:, -1], float(eigenvalues[-1])
    h = 0.5
    line = loss_line(model, nn.MSELoss(), (x, y), v, [-h, 0.0, h])
    curvature = (line.losses[0] - 2 * line.losses[1] + line.losses[2]) / h**2
    assert curvature == pytest.approx(lam, rel=1e-10)


def test_interpolation_endpoints_are_the_two_models_losses():
    data = busy_data()
    a, b = busy_model(), busy_model()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.3 * torch.randn_like(p))
        b[1].running_mean.add_(0.5)
    loss_fn = nn.CrossEntropyLoss()

    def own_loss(m):
        m.eval()
        with torch.no_grad():
            return sum(float(loss_fn(m(xb), yb)) * len(xb) for xb, yb in data) / sum(
                len(xb) for xb, _ in data
            )

    before_a, before_b = snapshot(a), snapshot(b)
    line = interpolate(a, b, loss_fn, data, [0.0, 0.5, 1.0])
    assert_unchanged(a, before_a)
    assert_unchanged(b, before_b)
    want_a, want_b = own_loss(busy_model()), own_loss(b)
    assert line.losses[0] == pytest.approx(want_a, rel=1e-12)
    assert line.losses[2] == pytest.approx(want_b, rel=1e-12)
    assert line.losses[1] != pytest.approx(want_a)


def test_slices_leave_the_model_bitwise_unchanged():
    model, data = busy_model(), busy_data()
    before = snapshot(model)
    d1 = random_direction(model, seed=0)
    d2 = random_direction(model, seed=1)
    loss_line(model, nn.CrossEntropyLoss(), data, d1, [-1.0, 1.0])
    loss_plane(model, nn.CrossEntropyLoss(), data, d1, d2, [-1.0, 1.0])
    loss_line(model, nn.CrossEntropyLoss(), data, d1, [0.5], train=True)
    assert_unchanged(model, before)


def test_slices_reject_bad_input():
    model, x, y = _regression()
    d = random_direction(model, seed=0)
    with pytest.raises(ValueError, match="direction: shape"):
        loss_line(model, nn.MSELoss(), (x, y), d[:-1])
    with pytest.raises(ValueError, match="alphas: contains NaN"):
        loss_line(model, nn.MSELoss(), (x, y), d, [0.0, float("nan")])
    with pytest.raises(ValueError, match="alphas: empty"):
        loss_line(model, nn.MSELoss(), (x, y), d, [])
    with pytest.raises(ValueError, match="bias_bn"):
        random_direction(model, seed=0, bias_bn="keep")
    with pytest.raises(ValueError, match="empty"):
        loss_line(model, nn.MSELoss(), [], d)
    with pytest.raises(ValueError, match=r"Non-finite loss .* alpha=1"):
        loss_line(model, lambda out, t: (out - t).pow(2).mean() / 0.0, (x, y), d, [1.0])
    with pytest.raises(ValueError, match="no trainable parameters"):
        random_direction(nn.ReLU(), seed=0)
    with pytest.raises(ValueError, match="3 targets"):
        loss_line(model, nn.MSELoss(), (x, y[:3]), d)
    with pytest.raises(ValueError, match="differ"):
        interpolate(model, nn.Linear(4, 2, bias=False).double(), nn.MSELoss(), (x, y))


def test_vectorized_evaluation_equals_the_loop():
    model, data = busy_model(), busy_data()
    d1, d2 = random_direction(model, seed=0), random_direction(model, seed=1)
    loss_fn = nn.CrossEntropyLoss()
    alphas = np.linspace(-1, 1, 7)
    fast = loss_plane(model, loss_fn, data, d1, d2, alphas, vectorize=True, chunk_size=5)
    slow = loss_plane(model, loss_fn, data, d1, d2, alphas, vectorize=False)
    np.testing.assert_allclose(fast.losses, slow.losses, rtol=1e-12)
    line = loss_line(model, loss_fn, data, d1, alphas, vectorize=True, chunk_size=3)
    np.testing.assert_allclose(line.losses, slow.losses[:, 3], rtol=1e-12)  # beta = 0 column
    with pytest.raises(ValueError, match="chunk_size: 0"):
        loss_line(model, loss_fn, data, d1, alphas, chunk_size=0)
