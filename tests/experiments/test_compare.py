"""The comparison protocol: batch order, effective epochs, tuned knobs, step-size drops, evaluation, the
width at the solution (Hessian, adaptive sharpness, Local Entropy), each method's own updates and the
budget guards."""

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
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5, eps=1e-12), nn.ReLU(), nn.Linear(5, 3)).double()
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
    # a knob the method does not give: the optimizer's (or its base's) own default, scaled
    default = C.Method("E", "entropy-sgd", tune="inner_lr").build(params, 2.0, seed=0)
    assert default.param_groups[0]["inner_lr"] == pytest.approx(2 * 0.1)
    adam = C.Method("Adam", "adam").build(params, 0.5, seed=0)
    assert adam.param_groups[0]["lr"] == pytest.approx(
        0.5 * torch.optim.Adam([torch.zeros(1)]).defaults["lr"]
    )
    with pytest.raises(ValueError, match="tuned knob 'nope'"):
        C.Method("Adam", "adam", {}, tune="nope").build(params, 1.0, seed=0)


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


@pytest.mark.parametrize(("drops", "factor"), [((0.4,), 0.1), ((0.3, 0.6, 0.9), 0.2)])
def test_step_size_drops_at_fractions_of_the_run(drops, factor):
    """lr_t = lr_0 · factor^(number of milestones round(f·T) ≤ t), checked step by step."""
    params = [torch.zeros(2, requires_grad=True)]
    method = C.Method("SGD", "sgd", {"lr": 0.5}, drops=drops, drop_factor=factor)
    optimizer = method.build(params, 1.0, seed=0)
    total = 250
    scheduler = method.scheduler(optimizer, total)
    milestones = [round(f * total) for f in drops]
    for t in range(total):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(
            0.5 * factor ** sum(m <= t for m in milestones)
        )
        params[0].grad = torch.ones(2)
        optimizer.step()
        scheduler.step()
    assert C.Method("SGD", "sgd").scheduler(optimizer, total) is None
    for bad in ((0.5, 0.4), (0.0,), (1.0,)):
        with pytest.raises(ValueError, match="Invalid drops"):
            C.Method("SGD", "sgd", drops=bad)
    with pytest.raises(ValueError, match="Invalid drop_factor"):
        C.Method("SGD", "sgd", drops=(0.5,), drop_factor=1.0)


@pytest.mark.parametrize(("n", "batch", "epochs", "k"), [(48, 8, 2.0, 1), (50, 8, 1.5, 1), (48, 8, 2.0, 2)])
def test_planned_steps_are_the_steps_the_training_loop_takes(n, batch, epochs, k):
    d = _tensors(n)
    model = nn.Linear(6, 3).double()
    if k == 1:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    else:
        opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    steps = [0]
    opt.register_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
    C.train(C.single_model_step(model, opt), lambda: {**C.evaluate(model, d)}, d, epochs=epochs,
            batch_size=batch, seed=0, evaluations=1)  # fmt: skip
    assert C.planned_steps(epochs, n, batch, k) == steps[0]


def _digits_config(**overrides):
    config = resolve_config(
        ENTROPY, "quick", 0, ["train_subset=64", "epochs=1", "batch_size=8", "hessian_samples=8",
                              "hessian_probes=1", "width_samples=8", "width_gammas=0.001", "seeds=2",
                              *[f"{k}={v}" for k, v in overrides.items()]],
    )  # fmt: skip
    return config, C.load_images(config)


def test_runs_record_their_own_updates_and_the_field():
    """64 samples in batches of 8, one effective epoch: 8 steps; Entropy-SGD with L = 4 makes 2 outer updates,
    SAM (two gradients per step) 4 steps; AnnealSGD's field at the end is e^(−8/2τ0) of its start."""
    from deeplandscape.experiments import anneal

    config, d = _digits_config()
    expected = {
        "E": (C.Method("E", "entropy-sgd", {"L": 4}, tune="inner_lr"), 2),
        "S": (C.Method("S", "sam", {"rho": 0.05}, base="sgd", base_kwargs={"lr": 0.1}), 4),
        "G": (C.Method("G", "sgd", {"lr": 0.1}), 8),
    }
    for method, updates in expected.values():
        r = C.run_method(config, "smallfc", method, d=d)
        np.testing.assert_array_equal(r.arrays["extra_own_updates"][:, -1], updates)
        assert C.run_rows([r])[0]["own_updates"] == updates
    method = anneal.AnnealMethod("A", "anneal-sgd", {"J": 1e-3, "tau0": 5.0, "p": 3}, base="adam",
                                 base_kwargs={"lr": 1e-3})  # fmt: skip
    r = C.run_method(config, "smallfc", method, d=d)
    np.testing.assert_allclose(r.arrays["extra_field_fraction"][:, -1], np.exp(-8 / (2 * 5.0)), rtol=1e-12)


# ---------------------------------------------------------------------------------------------- guards

# Every method of the four comparisons with the least number of its own updates it must complete.
GUARDED = {"entropy-sgd": 100, "hj": 100, "entropy-adam": 100, "heat": C.HEAT_THESIS_UPDATES, "sgd": 100,
           "adam": 100, "sam": 100, "sgld": 100, "gradient-noise": 100, "anneal-sgd": 100}  # fmt: skip


@pytest.mark.parametrize("optimizer", sorted(GUARDED))
def test_budget_guard_per_method(tmp_path, optimizer):
    from deeplandscape.experiments import _verdicts as V

    from . import _synthetic as syn

    assert C.minimum_updates(optimizer).minimum == GUARDED[optimizer]
    row = {"field_fraction_end": 0.005} if optimizer == "anneal-sgd" else {}
    for updates, guarded in ((GUARDED[optimizer] - 1, True), (GUARDED[optimizer], False)):
        run = syn.run(tmp_path, {("lenet", "M"): syn.method(optimizer, updates=updates, row=row)})
        verdict = V.case_verdict(
            lambda _, run=run: V.guard(run, "lenet", "M") and V.lower_error(run, "lenet", "M", "M")
        )
        assert (verdict.warnings != ()) == guarded, (optimizer, updates)
        if guarded:
            assert f"completed {updates} {C.minimum_updates(optimizer).unit}" in verdict.reason


def test_annealsgd_field_guard(tmp_path):
    from deeplandscape.experiments import _verdicts as V

    from . import _synthetic as syn

    for fraction, guarded in ((0.02, True), (C.FIELD_LIMIT, False)):
        run = syn.run(
            tmp_path, {("lenet", "A"): syn.method("anneal-sgd", row={"field_fraction_end": fraction})}
        )
        verdict = V.case_verdict(
            lambda _, run=run: V.guard(run, "lenet", "A") and V.lower_error(run, "lenet", "A", "A")
        )
        assert (verdict.warnings != ()) == guarded, fraction


# ---------------------------------------------------------------------------------------------- width


class _Quadratic(nn.Module):
    """A "network" whose loss (with :func:`_quadratic_loss`) is f(w) = ½ wᵀAw."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        return self.w.expand(len(x), -1)


def _quadratic_problem(d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
    lam = torch.logspace(1, -1, d, dtype=torch.float64)
    A = q @ torch.diag(lam) @ q.T
    w = torch.randn(d, generator=g, dtype=torch.float64)

    def loss(out, y):
        return 0.5 * out[0] @ A @ out[0]

    return _Quadratic(w), loss, A, w, lam, q


@pytest.mark.parametrize("gamma", [0.01, 0.1])
def test_local_entropy_excess_against_the_gaussian_closed_form(gamma):
    """f(y) = ½ yᵀAy: the Gaussian integral in the eigenbasis q_i of A gives
    −log E_(y~N(x,γI)) e^(−f(y)) − f(x) = ½ Σ log(1 + γλ_i) + ½ Σ λ_i (qᵢᵀx)² (1/(1 + γλ_i) − 1)."""
    from deeplandscape.experiments import _flatness

    model, loss, A, w, lam, q = _quadratic_problem()
    c = q.T @ w
    exact = float(
        0.5 * torch.log1p(gamma * lam).sum() + 0.5 * (lam * c**2 * (1 / (1 + gamma * lam) - 1)).sum()
    )
    batch = (torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3))
    precise = _flatness.WidthSettings((gamma,), 0.1, chains=8, steps=150, burnin=60, nodes=6)
    got = _flatness.width(model, batch, loss, precise, seed=1)
    assert got.loss == pytest.approx(float(0.5 * w @ A @ w), rel=1e-12)
    assert abs(got.excess[0] - exact) < 4 * got.standard_error[0] + 1e-3 * abs(exact)
    assert got.local_entropy[0] == pytest.approx(got.loss + got.excess[0], rel=1e-12)
    # the comparisons' own settings (2 chains, 2 nodes, 10 steps after 5): within 30%
    quick = _flatness.WidthSettings((gamma,), 0.1)
    assert _flatness.width(model, batch, loss, quick, seed=1).excess[0] == pytest.approx(exact, rel=0.3)


def test_robust_width_on_the_grid():
    """γ* is the largest grid γ whose excess (and every smaller one's) is ≤ ε (Thesis eq. (4.38))."""
    from deeplandscape.experiments import _flatness

    model, loss, *_ = _quadratic_problem()
    batch = (torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3))
    settings = _flatness.WidthSettings((1e-3, 1e-2, 1e-1, 1.0), 0.05, chains=4, steps=40, burnin=20)
    got = _flatness.width(model, batch, loss, settings, seed=0)
    below = [g for g, e in zip(got.gammas, got.excess, strict=True) if e <= 0.05]
    assert got.gamma_star == max(below) and all(e > 0.05 for e in got.excess[len(below) :])


def _dense_hessian(model, x, y):
    params = dict(model.named_parameters())
    names, shapes = list(params), [p.shape for p in params.values()]
    sizes = [p.numel() for p in params.values()]

    def f(flat):
        parts = dict(
            zip(names, [t.reshape(s) for t, s in zip(flat.split(sizes), shapes, strict=True)], strict=True)
        )
        return F.cross_entropy(torch.func.functional_call(model, parts, (x,)), y)

    flat = torch.cat([p.detach().flatten() for p in params.values()])
    return torch.autograd.functional.hessian(f, flat), flat


def test_adaptive_sharpness_against_a_dense_float64_computation():
    from deeplandscape.analysis import HessianOperator
    from deeplandscape.experiments import _flatness

    d = _tensors(n=40)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    dense, flat = _dense_hessian(model, d.x, d.y)
    t = torch.diag(flat.abs())
    exact = float(torch.linalg.eigvalsh(t @ dense @ t)[-1])
    got = _flatness.adaptive_sharpness(HessianOperator(model, F.cross_entropy, [(d.x, d.y)]), seed=0)
    assert got == pytest.approx(exact, rel=1e-3)


def test_adaptive_sharpness_is_invariant_to_rescaling_a_batch_normalized_layer():
    """Scaling the layer before batch norm by c leaves the function, and λ_max(T H T), unchanged, while
    λ_max(H) moves (its block scales as 1/c²); batch norm's ε is made negligible so that the invariance is
    exact."""
    from deeplandscape.analysis import HessianOperator
    from deeplandscape.experiments import _flatness

    d = _tensors(n=64)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5, eps=1e-12), nn.ReLU(), nn.Linear(5, 3)).double()
    with torch.no_grad():
        model(d.x)  # running statistics
    model.eval()
    values = []
    for c in (1.0, 0.25):
        scaled = __import__("copy").deepcopy(model)
        with torch.no_grad():
            scaled[0].weight.mul_(c)
            scaled[0].bias.mul_(c)
            scaled[1].running_mean.mul_(c)
            scaled[1].running_var.mul_(c**2)
            torch.testing.assert_close(scaled(d.x), model(d.x))
        op = HessianOperator(scaled, F.cross_entropy, [(d.x, d.y)])
        top = C.lanczos(op, 1, which="LA", tol=1e-6, max_basis=op.dim, seed=0).eigenvalues[0]
        values.append((_flatness.adaptive_sharpness(op, seed=0), float(top)))
    assert values[1][0] == pytest.approx(values[0][0], rel=1e-4)
    assert values[1][1] > 2 * values[0][1]  # the top direction lies partly in the scaled block
