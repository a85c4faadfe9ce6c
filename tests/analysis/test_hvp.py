import copy

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch
from torch import nn

from deeplandscape.analysis.hessian import exact_hessian
from deeplandscape.analysis.hvp import HessianOperator, hessian_vector_product

from ._curvature_cases import (
    CE,
    MODELS_AND_DATA,
    assert_unchanged,
    busy_batch,
    busy_model,
    mlp,
    mlp_data,
    oracle_hessian,
    single_thread,  # noqa: F401
    snapshot,
)


@pytest.mark.parametrize("mode", ["auto", "double", "forward", "reverse"])
@pytest.mark.parametrize(("make_model", "make_data"), MODELS_AND_DATA)
def test_hvp_and_exact_hessian_match_torch_func_hessian(make_model, make_data, mode):
    model, data = make_model(), make_data()
    oracle = oracle_hessian(model, CE, data)
    op = HessianOperator(model, CE, data, mode=mode)
    assert op.dim == oracle.shape[0]
    v = torch.randn(op.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(op.matvec(v), oracle @ v, rtol=1e-10, atol=1e-12)
    vs = torch.randn(op.dim, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(op.matmat(vs, chunk_size=2), oracle @ vs, rtol=1e-10, atol=1e-12)
    assert op.num_matvecs == 6
    exact = exact_hessian(model, CE, data, eigenvectors=True, mode=mode)
    torch.testing.assert_close(exact.matrix, oracle, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(exact.eigenvalues, torch.linalg.eigvalsh(oracle), rtol=1e-9, atol=1e-11)
    v0 = exact.eigenvectors[:, -1]
    torch.testing.assert_close(oracle @ v0, exact.eigenvalues[-1] * v0, rtol=1e-8, atol=1e-10)
    assert exact.num_hvps == op.dim and exact.asymmetry < 1e-12


def test_batch_split_does_not_change_the_hessian():
    model, data = mlp(), mlp_data()
    whole = (torch.cat([x for x, _ in data]), torch.cat([y for _, y in data]))
    a = exact_hessian(model, CE, data).matrix
    b = exact_hessian(model, CE, whole).matrix
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_train_mode_hvp_matches_finite_differences_of_autograd_gradient():
    """BatchNorm in train mode (batch statistics): an independent central-difference oracle."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3)).double()
    data = mlp_data()
    data = [(x[:, :4], y) for x, y in data]
    v = torch.randn(sum(p.numel() for p in model.parameters()), dtype=torch.float64)

    def grad_at(flat):
        m = copy.deepcopy(model).train()
        torch.nn.utils.vector_to_parameters(flat, m.parameters())
        loss = sum(x.shape[0] / 13 * CE(m(x), y) for x, y in data)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(m.parameters()))])

    x0 = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    eps = 1e-5
    fd = (grad_at(x0 + eps * v) - grad_at(x0 - eps * v)) / (2 * eps)
    for mode in ("auto", "double", "forward", "reverse"):
        op = HessianOperator(model, CE, data, train=True, mode=mode)
        torch.testing.assert_close(op.matvec(v), fd, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(op.matmat(v[:, None])[:, 0], fd, rtol=1e-6, atol=1e-7)
    eval_hv = HessianOperator(model, CE, data).matvec(v)
    assert (eval_hv - fd).abs().max() > 1e-3  # eval mode is a different function


def test_hessian_vector_product_accepts_parameter_dict_and_scipy_export():
    model, data = mlp(), mlp_data()
    oracle = oracle_hessian(model, CE, data)
    op = HessianOperator(model, CE, data)
    v = torch.randn(op.dim, dtype=torch.float64)
    result = hessian_vector_product(model, CE, data, op.unflatten(v))
    torch.testing.assert_close(result.product, oracle @ v, rtol=1e-10, atol=1e-12)
    assert result.num_hvps == 1
    lin = op.to_scipy()
    assert lin.shape == (op.dim, op.dim) and lin.dtype == np.float64
    np.testing.assert_allclose(lin.matvec(v.numpy()), (oracle @ v).numpy(), rtol=1e-10, atol=1e-12)
    top = sla.eigsh(lin, k=2, which="LA", return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(top), torch.linalg.eigvalsh(oracle)[-2:].numpy(), rtol=1e-8)


def test_loss_and_gradient_match_autograd():
    model, data = mlp(), mlp_data()
    loss = sum(x.shape[0] / 13 * CE(model(x), y) for x, y in data)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    value, grad = HessianOperator(model, CE, data).loss_and_gradient()
    torch.testing.assert_close(value, loss.detach())
    torch.testing.assert_close(grad, torch.cat([g.reshape(-1) for g in grads]))


def test_hvp_and_exact_hessian_leave_model_bitwise_unchanged():
    model = busy_model()
    data = [busy_batch()]
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"Invalid train: True with Dropout \(module 4\)"):
        HessianOperator(model, CE, data, train=True)  # a random loss has no fixed Hessian
    for train in (False, True):
        model[4].p = 0.0 if train else 0.3  # train mode: BatchNorm's batch statistics, no dropout
        before = snapshot(model)
        op = HessianOperator(model, CE, data, train=train)
        op.matvec(torch.ones(op.dim, dtype=torch.float64))
        op.matmat(torch.ones(op.dim, 2, dtype=torch.float64))
        op.loss_and_gradient()
        assert_unchanged(model, before)
    exact_hessian(model, CE, data)
    assert_unchanged(model, before)
    frozen = model[1].weight.numel()
    assert op.dim == sum(p.numel() for p in model.parameters()) - frozen


def test_bad_input_errors():
    model, data = mlp(), mlp_data()
    with pytest.raises(ValueError, match="no trainable parameters"):
        HessianOperator(nn.ReLU(), CE, data)
    with pytest.raises(ValueError, match="empty"):
        HessianOperator(model, CE, [])
    with pytest.raises(ValueError, match="7 inputs but 6 targets"):
        HessianOperator(model, CE, [(data[0][0], data[0][1][:6])])
    op = HessianOperator(model, CE, data)
    with pytest.raises(ValueError, match=rf"Invalid vector: shape \(3,\), expected \({op.dim},\)"):
        op.matvec(torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="Invalid vectors"):
        op.matmat(torch.ones(op.dim, dtype=torch.float64))
    with pytest.raises(ValueError, match="expected a scalar"):
        HessianOperator(model, nn.CrossEntropyLoss(reduction="none"), data).matvec(
            torch.ones(op.dim).double()
        )
    bad = [data[0], (data[1][0].clone().fill_(float("nan")), data[1][1])]
    before = snapshot(model)
    with pytest.raises(ValueError, match="Non-finite loss = nan on batch 1"):
        HessianOperator(model, CE, bad).matvec(torch.ones(op.dim, dtype=torch.float64))
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="Invalid mode: 'mixed'"):
        HessianOperator(model, CE, data, mode="mixed")
    with pytest.raises(ValueError, match="max_params=10"):
        exact_hessian(model, CE, data, max_params=10)
    with pytest.raises(ValueError, match="Invalid vector: no entries"):
        hessian_vector_product(model, CE, data, {"0.weight": torch.zeros(6, 5)})


def test_eager_forward_matvec_equals_torch_func_forward_and_reverse():
    """matvec (dual parameters through an eager backward) = vmapped torch.func jvp-of-grad (matmat) =
    reverse-over-reverse: a CNN with BatchNorm, Dropout and a frozen weight (eval mode), an MLP with
    BatchNorm in train mode (batch statistics), and MSE's float targets; also under ``torch.no_grad()``."""
    g = torch.Generator().manual_seed(21)
    torch.manual_seed(22)
    bn_mlp = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 3)).double()
    regression = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (6,), generator=g)
    cases = [
        (busy_model(), CE, [busy_batch()], False),
        (bn_mlp, CE, [(x, y)], True),
        (regression, nn.MSELoss(), [(x, torch.randn(6, 2, generator=g, dtype=torch.float64))], False),
    ]
    for model, loss_fn, data, train in cases:
        before = snapshot(model)
        forward = HessianOperator(model, loss_fn, data, train=train, mode="forward")
        reverse = HessianOperator(model, loss_fn, data, train=train, mode="reverse")
        double = HessianOperator(model, loss_fn, data, train=train, mode="double")
        v = torch.randn(forward.dim, generator=g, dtype=torch.float64)
        with torch.no_grad():
            hv = forward.matvec(v)
        torch.testing.assert_close(hv, forward.matmat(v[:, None])[:, 0], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(hv, reverse.matvec(v), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(hv, double.matvec(v), rtol=1e-10, atol=1e-12)
        assert_unchanged(model, before)
