"""The comparison protocol: batch order, effective epochs, tuned knobs, evaluation, Hessian."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape.experiments import _compare as C
from deeplandscape.experiments.entropy_sgd import EXPERIMENT as ENTROPY
from deeplandscape.experiments.spec import resolve_config
from deeplandscape.optim import SAM


def _tensors(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return C.Tensors(x, y, x[:10], y[:10], x[10:20], y[10:20])


def test_batch_order_is_seeded_and_covers_each_epoch_once():
    a = C.batch_order(10, 4, seed=3)
    b = C.batch_order(10, 4, seed=3)
    first = [next(a) for _ in range(6)]
    assert all(torch.equal(u, next(b)) for u in first)
    epoch = torch.cat(first[:3])  # batches of 4, 4, 2
    assert sorted(epoch.tolist()) == list(range(10))
    assert sorted(torch.cat(first[3:]).tolist()) == list(range(10))


@pytest.mark.parametrize("optimizer", ["sgd", "sam"])
def test_train_counts_effective_epochs_in_gradient_evaluations(optimizer):
    d = _tensors()
    model = nn.Linear(6, 3).double()
    calls = []
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    else:
        opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    curves = C.train(
        C.single_model_step(model, opt), lambda: C.evaluate(model, d), d,
        epochs=2.0, batch_size=8, seed=0, evaluations=4,
    )  # fmt: skip
    training_samples = sum(calls) - 5 * (len(d.y) + 10 + 10)  # minus the 5 evaluations' forward passes
    np.testing.assert_allclose(curves.effective_epochs[-1], training_samples / len(d.y))
    assert curves.effective_epochs[-1] >= 2.0
    assert np.all(np.diff(curves.effective_epochs) > 0) and curves.effective_epochs[0] == 0
    steps = 12 if optimizer == "sgd" else 6  # SAM: two gradients per step, half the steps
    assert training_samples == steps * 8 * (1 if optimizer == "sgd" else 2)


def test_evaluate_matches_a_direct_computation():
    d = _tensors()
    model = nn.Linear(6, 3).double()
    got = C.evaluate(model, d)
    with torch.no_grad():
        out = model(d.x)
        assert got["train_loss"] == pytest.approx(float(F.cross_entropy(out, d.y)), rel=1e-12)
        assert got["train_error"] == pytest.approx(100 * float((out.argmax(1) != d.y).double().mean()))
        assert got["test_error"] == pytest.approx(
            100 * float((model(d.x_test).argmax(1) != d.y_test).double().mean())
        )


def test_evaluate_recomputes_batchnorm_on_the_training_set():
    d = _tensors()
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).double()
    C.evaluate(model, d)
    with torch.no_grad():
        h = model[0](d.x)
    np.testing.assert_allclose(model[1].running_mean.numpy(), h.mean(0).numpy(), atol=1e-12)


def test_hessian_at_solution_against_a_dense_float64_hessian():
    d = _tensors(n=40)
    model = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    params = dict(model.named_parameters())
    shapes = [(k, v.shape, v.numel()) for k, v in params.items()]

    def loss(flat):
        parts, i = {}, 0
        for k, shape, size in shapes:
            parts[k] = flat[i : i + size].reshape(shape)
            i += size
        return F.cross_entropy(torch.func.functional_call(model, parts, (d.x[:32],)), d.y[:32])

    flat = torch.cat([v.detach().flatten() for v in params.values()])
    dense = torch.autograd.functional.hessian(loss, flat)
    eig = torch.linalg.eigvalsh(dense)
    top, trace = C.hessian_at_solution(model, d, samples=32, probes=300, seed=0)
    assert top == pytest.approx(float(eig[-1]), rel=1e-3)
    # Hutchinson with Rademacher probes: std ≤ sqrt(2 Σ_{i≠j} H_ij² / probes); allow 4 standard deviations.
    off = dense - torch.diag(torch.diag(dense))
    bound = 4 * float(torch.sqrt(2 * (off**2).sum() / 300))
    assert abs(trace - float(eig.sum())) <= bound


def test_method_build_scales_the_tuned_knob_of_the_optimizer_or_its_base():
    params = [torch.zeros(3, requires_grad=True)]
    sgd = C.Method("SGD", "sgd", {"lr": 0.1, "momentum": 0.9}).build(params, 0.5, seed=0)
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.05)
    sam = C.Method("SAM", "sam", {"rho": 0.05}, base="sgd", base_kwargs={"lr": 0.1}).build(
        params, 2.0, seed=0
    )
    assert isinstance(sam, SAM) and sam.param_groups[0]["lr"] == pytest.approx(0.2)
    entropy = C.Method("E", "entropy-sgd", {"inner_lr": 0.1}, tune="inner_lr").build(params, 2.0, seed=0)
    assert entropy.param_groups[0]["inner_lr"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="tuned knob"):
        C.Method("Adam", "adam", {}).build(params, 1.0, seed=0)


def test_a_nan_loss_stops_training_with_an_error():
    d = _tensors()
    model = nn.Linear(6, 3).double()
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    step = C.single_model_step(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(FloatingPointError, match="training loss"):
        step(d.x[:8], d.y[:8])


def test_unknown_models_or_methods_are_rejected_before_any_work():
    with pytest.raises(ValueError, match="Invalid methods: 'sgd,foo': unknown 'foo'"):
        resolve_config(ENTROPY, "quick", 0, ["methods=sgd,foo"])
    with pytest.raises(ValueError, match="Invalid models: 'lenet,nonet': unknown 'nonet'"):
        resolve_config(ENTROPY, "quick", 0, ["models=lenet,nonet"])


def test_every_method_starts_from_the_same_network():
    config = resolve_config(
        ENTROPY, "quick", 0, ["train_subset=64", "epochs=0.5", "hessian_samples=16", "hessian_probes=1"]
    )
    d = C.load_images(config)
    a = C.run_method(config, "smallfc", C.Method("SGD", "sgd", {"lr": 0.1}), d=d)
    b = C.run_method(config, "smallfc", C.Method("Adam", "adam", {"lr": 1e-3}), d=d)
    for key in ("train_loss", "val_error", "test_error"):
        assert a.arrays[key][:, 0] == pytest.approx(b.arrays[key][:, 0], rel=1e-6)
    assert not np.allclose(a.arrays["train_loss"][:, -1], b.arrays["train_loss"][:, -1])


def test_entropy_momentum_follows_the_scale_and_touches_only_entropy_sgd_and_hj():
    from deeplandscape.experiments import relaxation

    for scale, expected in (("quick", 0.0), ("default", 0.0), ("paper", 0.9)):
        config = resolve_config(relaxation.EXPERIMENT, scale, 0)
        for key in ("entropy-sgd", "hj"):
            method = C.with_entropy_momentum(relaxation.METHODS[key], config)
            assert method.kwargs["momentum"] == expected
            optimizer = method.build(nn.Linear(2, 1).parameters(), 1.0, 0)
            assert optimizer.param_groups[0]["momentum"] == expected
        for key in ("sgd", "heat", "sam"):
            assert C.with_entropy_momentum(relaxation.METHODS[key], config) is relaxation.METHODS[key]
