"""Critical points of one-hidden-layer ReLU networks (deeplandscape.experiments._critical)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape import nets
from deeplandscape.analysis import exact_hessian
from deeplandscape.experiments._critical import levenberg_marquardt, mlp1_hessian, refine_critical_point


def _data(n, n0, classes, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, n0, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_closed_form_hessian_equals_the_autograd_hessian(shift):
    """Against analysis.exact_hessian (float64 autograd), in named_parameters order, with every unit active
    (shift 0: unit-cube weights) and with about half of them dead on each sample (shift 0.5), in chunks that
    do not divide the data."""
    model = nets.get("choromanska-10", seed=3, n1=4, in_features=12).double()
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(shift)
    x, y = _data(40, 12, 10, seed=0)
    ours = mlp1_hessian(model, x, y, chunk=7)
    oracle = exact_hessian(model, F.cross_entropy, (x, y)).matrix
    torch.testing.assert_close(ours, oracle, rtol=1e-10, atol=1e-13)


def test_closed_form_hessian_of_a_plain_sequential_and_refusals():
    model = nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 4)).double()
    x, y = _data(30, 5, 4, seed=1)
    oracle = exact_hessian(model, F.cross_entropy, (x, y)).matrix
    torch.testing.assert_close(mlp1_hessian(model, x, y), oracle, rtol=1e-10, atol=1e-13)
    for other in (
        nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 4)),
        nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 4, bias=False)),
        nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 4)),
    ):
        with pytest.raises(ValueError, match="one-hidden-layer ReLU"):
            mlp1_hessian(other.double(), x, y)
    with pytest.raises(ValueError, match="Invalid x, y"):
        mlp1_hessian(model, x[:, :4], y)


def _smooth_problem(seed):
    """A one-hidden-layer ReLU net whose units are active on every sample (inputs in [1, 2], positive
    first-layer weights and biases), on random labels: the loss is smooth near the start and has minima at
    finite weights (no classifier separates random labels)."""
    x, y = _data(200, 3, 3, seed=seed)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 3)).double()
    torch.manual_seed(seed)
    with torch.no_grad():
        model[0].weight.uniform_(0.5, 1.0)
        model[0].bias.fill_(1.0)
        nn.init.normal_(model[2].weight, std=0.5)
        nn.init.normal_(model[2].bias, std=0.5)
    return model, x + 1.0, y


def _measured(model, x, y):
    model.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    return float(loss.detach()), float(grad.norm()), exact_hessian(model, F.cross_entropy, (x, y)).eigenvalues


def test_refinement_reaches_the_tolerance_and_reports_honestly():
    """The refinement ends at ‖∇L‖ ≤ tol; the reported gradient norms, losses and eigenvalues are those of an
    independent autograd evaluation at the start and at the end point (float64)."""
    model, x, y = _smooth_problem(2)
    loss0, grad0, eig0 = _measured(model, x, y)
    point = refine_critical_point(model, x, y, tol=1e-9, lbfgs_iterations=200, max_hessians=20)
    loss1, grad1, eig1 = _measured(model, x, y)
    assert point.converged and point.grad_norm <= 1e-9 < grad0
    assert point.grad_norm == pytest.approx(grad1, rel=1e-6, abs=1e-15)
    assert point.grad_norm_start == pytest.approx(grad0, rel=1e-12)
    assert point.loss == pytest.approx(loss1, rel=1e-12) and point.loss_start == pytest.approx(
        loss0, rel=1e-12
    )
    assert point.loss < point.loss_start
    torch.testing.assert_close(point.eigenvalues, eig1, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(point.eigenvalues_start, eig0, rtol=1e-8, atol=1e-12)
    # Where the tolerance cannot be reached in the budget, the point is reported as not converged.
    model, x, y = _smooth_problem(2)
    short = refine_critical_point(model, x, y, tol=1e-9, lbfgs_iterations=1, max_hessians=1)
    assert not short.converged and short.grad_norm == pytest.approx(_measured(model, x, y)[1], rel=1e-6)


def test_levenberg_marquardt_converges_to_a_saddle_and_does_not_slide_off_it():
    """f(u, v) = u² − v² + v⁴/4 has a saddle at 0 (eigenvalues 2, −2) and minima at v = ±√2. From next to the
    saddle the polish converges to it — a descent method would slide off to a minimum and report index 0."""

    def loss_and_grad(t):
        u, v = t
        return float(u**2 - v**2 + v**4 / 4), torch.stack([2 * u, -2 * v + v**3])

    def hessian(t):
        return torch.diag(torch.stack([torch.tensor(2.0, dtype=t.dtype), -2 + 3 * t[1] ** 2]))

    start = torch.tensor([0.3, 0.2], dtype=torch.float64)
    theta, _, grad, eigenvalues, hessians = levenberg_marquardt(
        start, loss_and_grad, hessian, tol=1e-12, max_hessians=30
    )
    assert float(grad.norm()) <= 1e-12 and float(theta.abs().max()) < 1e-12
    torch.testing.assert_close(eigenvalues, torch.tensor([-2.0, 2.0], dtype=torch.float64))
    assert hessians < 30


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"tol": 0.0}, "tol"), ({"tol": float("nan")}, "tol"), ({"max_hessians": 0}, "max_hessians"),
     ({"lbfgs_iterations": -1}, "lbfgs_iterations")],
)  # fmt: skip
def test_refinement_refuses_bad_arguments(kw, match):
    x, y = _data(10, 3, 3, seed=5)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 3)).double()
    args = {"tol": 1e-6, "lbfgs_iterations": 5, "max_hessians": 2, **kw}
    with pytest.raises(ValueError, match=match):
        refine_critical_point(model, x, y, **args)
    with pytest.raises(ValueError, match="float64"):
        refine_critical_point(model.float(), x, y, tol=1e-6, lbfgs_iterations=5, max_hessians=2)
