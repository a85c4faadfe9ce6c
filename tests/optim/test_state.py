"""torch.optim behaviour of every optimizer: state_dict resume, schedulers, param groups, paths, errors."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

import deeplandscape.optim as dlo

from ._problems import EVERY, NAMES, OURS, batches, blobs, small_mlp, train

# Non-degenerate settings with every random source switched on and short cycles (L = 3).
SETTINGS = {
    "anneal-sgd": dict(lr=0.05, momentum=0.9, nesterov=True, J=0.01, tau0=20.0),
    "gradient-noise": dict(lr=0.05, momentum=0.9, eta=0.01),
    "sgld": dict(lr=0.05, temperature=1e-3, weight_decay=1e-3),
    "entropy-sgd": dict(lr=0.5, inner_lr=0.05, L=3, gamma=1.0, scoping=0.1, noise=1e-3, weight_decay=1e-3),
    "entropy-adam": dict(lr=0.01, inner_lr=0.05, L=3, gamma=1.0, scoping=0.1, noise=1e-3),
    "hj": dict(lr=0.5, inner_lr=0.05, L=3, gamma=1.0),
    "heat": dict(lr=0.05, L=3, gamma=1e-3, weight_decay=1e-3),
}


def _data(steps=20):
    x, y = blobs(100, seed=5)
    return batches(x.double(), y.double(), batch_size=10, steps=steps, seed=6)


def _make(name, params, seed=0, **kw):
    return dlo.get(name)(params, seed=seed, **{**SETTINGS[name], **kw})


def _save_load(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_resume_is_bit_for_bit(name):
    data = _data(20)
    model = small_mlp(seed=2)
    opt = _make(name, model.parameters())
    train(model, opt, data)
    expected = [p.detach().clone() for p in model.parameters()]

    model = small_mlp(seed=2)
    opt = _make(name, model.parameters())
    train(model, opt, data[:7])  # mid-cycle for L = 3
    checkpoint = _save_load({"model": model.state_dict(), "opt": opt.state_dict()})

    fresh = small_mlp(seed=9)
    fresh_opt = _make(name, fresh.parameters(), seed=123)  # another seed: the checkpoint must override it
    fresh.load_state_dict(checkpoint["model"])
    fresh_opt.load_state_dict(checkpoint["opt"])
    train(fresh, fresh_opt, data[7:])
    for a, b in zip(fresh.parameters(), expected, strict=True):
        assert torch.equal(a.detach(), b)
    if hasattr(opt, "reference_weights"):
        with fresh_opt.reference_weights():
            resumed_x = [p.detach().clone() for p in fresh.parameters()]
        model = small_mlp(seed=2)
        opt = _make(name, model.parameters())
        train(model, opt, data)
        with opt.reference_weights():
            for a, p in zip(resumed_x, model.parameters(), strict=True):
                assert torch.equal(a, p.detach())


@pytest.mark.parametrize("name", NAMES)
def test_foreach_path_matches_single_tensor_path(name):
    data = _data(12)
    models = [small_mlp(seed=3), small_mlp(seed=3)]
    for model, foreach in zip(models, [False, True], strict=True):
        train(model, _make(name, model.parameters(), foreach=foreach), data)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert (a - b).abs().max().item() <= 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_lr_scheduler_changes_the_step(name):
    """LambdaLR(0.5) on lr gives exactly the run built with half the lr, and not the run with the full lr."""
    data = _data(9)
    lr = SETTINGS[name]["lr"]
    runs = []
    for scheduled, lr0 in [(True, lr), (False, lr / 2), (False, lr)]:
        model = small_mlp(seed=4)
        opt = _make(name, model.parameters(), lr=lr0)
        if scheduled:
            torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.5)
            assert opt.param_groups[0]["lr"] == lr / 2
        train(model, opt, data)
        with opt.reference_weights() if hasattr(opt, "reference_weights") else _nullcontext():
            runs.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2], strict=True))


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("name", NAMES)
def test_param_group_with_zero_lr_does_not_move(name):
    model = small_mlp(seed=5)
    frozen = list(model[0].parameters())
    others = [p for p in model.parameters() if all(p is not q for q in frozen)]
    kw = {"p": 3} if name == "anneal-sgd" else {}
    before = [p.detach().clone() for p in frozen]
    moved_before = [p.detach().clone() for p in others]
    opt = dlo.get(name)(
        [{"params": frozen, "lr": 0.0}, {"params": others}], seed=0, **{**SETTINGS[name], **kw}
    )
    train(model, opt, _data(9))  # 3 full cycles for L = 3
    ctx = opt.reference_weights() if hasattr(opt, "reference_weights") else _nullcontext()
    with ctx:
        for p, b in zip(frozen, before, strict=True):
            assert torch.equal(p.detach(), b)
        assert any(not torch.equal(p.detach(), b) for p, b in zip(others, moved_before, strict=True))
    if name != "heat":  # at the end of a cycle the inner iterate is back at x
        for p, b in zip(frozen, before, strict=True):
            assert torch.equal(p.detach(), b)


EXPECTED_STATE = {
    "anneal-sgd": {"field"},
    "gradient-noise": set(),
    "sgld": set(),
    "entropy-sgd": {"reference", "average", "inner_momentum"},  # no outer momentum by default
    "entropy-adam": {"reference", "average", "inner_momentum", "exp_avg", "exp_avg_sq"},
    "hj": {"reference", "inner_momentum"},  # α = 0: z is y, no buffer
    "heat": {"reference", "grad_sum", "grads", "outer_momentum", "point"},
}


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_is_complete_and_weights_only_loadable(name):
    model = small_mlp(seed=6)
    opt = _make(name, model.parameters())
    train(model, opt, _data(4))  # past one outer update for L = 3
    sd = _save_load(opt.state_dict())
    assert set(sd["rng"]["states"]) == ({"cpu"} if name != "hj" else set())  # HJ draws no random numbers
    assert sd["param_groups"][0]["lr"] == SETTINGS[name]["lr"]
    assert sd["param_groups"][0]["step"] == 4
    for i in range(len(list(model.parameters()))):
        assert set(sd["state"].get(i, {})) == EXPECTED_STATE[name]
    if name in ("anneal-sgd", "gradient-noise"):
        assert all("momentum_buffer" in st for st in sd["base_state"].values())


def test_anneal_sgd_with_adam_base_resumes_bit_for_bit():
    data = _data(12)

    def make(model, seed=0):
        return dlo.AnnealSGD(model.parameters(), torch.optim.Adam, lr=1e-2, J=0.01, tau0=5.0, seed=seed)

    model = small_mlp(seed=2)
    train(model, make(model), data)
    fresh, half = small_mlp(seed=2), small_mlp(seed=2)
    opt = make(half)
    train(half, opt, data[:5])
    ckpt = _save_load({"model": half.state_dict(), "opt": opt.state_dict()})
    fresh.load_state_dict(ckpt["model"])
    fresh_opt = make(fresh, seed=7)
    fresh_opt.load_state_dict(ckpt["opt"])
    assert fresh_opt.base.param_groups[0] is fresh_opt.param_groups[0]  # still one set of knobs
    train(fresh, fresh_opt, data[5:])
    for a, b in zip(fresh.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_step_returns_the_closure_loss(name):
    model = small_mlp(seed=7)
    opt = _make(name, model.parameters())
    xb, yb = _data(1)[0]

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(model(xb), yb)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0


@pytest.mark.parametrize("name", [n for n in NAMES if n != "heat"])
def test_parameters_without_grad_are_skipped(name):
    model = small_mlp(seed=8)
    unused = nn.Parameter(torch.ones(3, dtype=torch.float64))
    kw = {"p": 3} if name == "anneal-sgd" else {}
    opt = dlo.get(name)([*model.parameters(), unused], seed=0, **{**SETTINGS[name], **kw})
    train(model, opt, _data(6))
    assert torch.equal(unused.detach(), torch.ones(3, dtype=torch.float64))


def test_heat_leaves_parameters_that_do_not_require_grad_alone():
    model = small_mlp(seed=8)
    model[0].bias.requires_grad_(False)
    before = model[0].bias.detach().clone()
    opt = dlo.Heat(model.parameters(), **SETTINGS["heat"])
    train(model, opt, _data(6))
    assert torch.equal(model[0].bias.detach(), before)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_gradient_raises_and_leaves_state_unchanged(name, bad):
    model = small_mlp(seed=9)
    opt = _make(name, model.parameters())
    train(model, opt, _data(2))
    before_params = [p.detach().clone() for p in model.parameters()]
    before_state = _save_load(opt.state_dict())
    opt.zero_grad()
    xb, yb = _data(3)[2]
    nn.functional.binary_cross_entropy_with_logits(model(xb), yb).backward()
    model[2].weight.grad[0, 0] = bad
    with pytest.raises(FloatingPointError, match=r"parameter 2 of shape \(5, 6\)"):
        opt.step()
    for p, b in zip(model.parameters(), before_params, strict=True):
        assert torch.equal(p.detach(), b)
    after_state = opt.state_dict()
    assert _equal_nested(before_state, after_state)


def _equal_nested(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal_nested(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal_nested(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


W = [nn.Parameter(torch.zeros(2))]
INVALID = [
    (dlo.SGLD, dict(lr=-1.0), "lr"),
    (dlo.SGLD, dict(temperature=-1e-3), "temperature"),
    (dlo.SGLD, dict(weight_decay=float("nan")), "weight_decay"),
    (dlo.SGLD, dict(seed=-1), "seed"),
    (dlo.EntropySGD, dict(lr=-0.1), "lr"),
    (dlo.EntropySGD, dict(inner_lr=-0.1), "inner_lr"),
    (dlo.EntropySGD, dict(L=0), "L"),
    (dlo.EntropySGD, dict(L=2.5), "L"),
    (dlo.EntropySGD, dict(gamma=0.0), "gamma"),
    (dlo.EntropySGD, dict(gamma=-float("inf")), "gamma"),
    (dlo.EntropySGD, dict(scoping=1.0), "scoping"),
    (dlo.EntropySGD, dict(alpha=1.5), "alpha"),
    (dlo.EntropySGD, dict(noise=-1.0), "noise"),
    (dlo.EntropySGD, dict(momentum=1.0), "momentum"),
    (dlo.EntropySGD, dict(nesterov="yes"), "nesterov"),
    (dlo.EntropySGD, dict(weight_decay=-1.0), "weight_decay"),
    (dlo.EntropyAdam, dict(betas=(0.9, 1.0)), r"betas\[1\]"),
    (dlo.EntropyAdam, dict(eps=-1.0), "eps"),
    (dlo.HJ, dict(L=-5), "L"),
    (dlo.Heat, dict(gamma=-1e-3), "gamma"),
    (dlo.Heat, dict(gamma=float("inf")), "gamma"),
    (dlo.Heat, dict(L=0), "L"),
    (dlo.AnnealSGD, dict(J=-1.0, p=3), "J"),
    (dlo.AnnealSGD, dict(tau0=0.0, p=3), "tau0"),
    (dlo.AnnealSGD, dict(schedule="cosine", p=3), "schedule"),
    (dlo.AnnealSGD, dict(scaling="other", p=3), "scaling"),
    (dlo.AnnealSGD, dict(p=2), "p"),
    (dlo.AnnealSGD, dict(), "p"),  # one 1-D tensor: no weight layer to count
    (dlo.AnnealSGD, dict(p=3, n=-4.0), "n"),
    (dlo.AnnealSGD, dict(p=3, n=1e6, scaling="minima", kappa=1e3), "kappa"),
    (dlo.AnnealSGD, dict(p=3, base=dict), "base"),
    (dlo.GradientNoise, dict(eta=-0.1), "eta"),
    (dlo.GradientNoise, dict(gamma=float("nan")), "gamma"),
]


@pytest.mark.parametrize(("cls", "kw", "name"), INVALID)
def test_invalid_hyperparameter_raises_naming_it(cls, kw, name):
    with pytest.raises(ValueError, match=rf"Invalid {name}: "):
        cls(W, **kw)


@pytest.mark.parametrize("cls", [dlo.SGLD, dlo.EntropySGD, dlo.EntropyAdam, dlo.HJ, dlo.Heat])
def test_invalid_hyperparameter_in_a_param_group_raises(cls):
    with pytest.raises(ValueError, match=r"Invalid lr: -1"):
        cls([{"params": W, "lr": -1.0}])
    opt = cls([nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match=r"Invalid lr: -1"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "lr": -1.0})


def test_reference_weights_swaps_in_x_and_restores_the_inner_iterate():
    model = small_mlp(seed=10)
    opt = _make("entropy-sgd", model.parameters())
    train(model, opt, _data(4))  # mid-cycle: y ≠ x
    inner = [p.detach().clone() for p in model.parameters()]
    with opt.reference_weights():
        for p in model.parameters():
            assert torch.equal(p.detach(), opt.state[p]["reference"])
        with pytest.raises(RuntimeError, match="reference_weights"):
            opt.step()
    for p, y in zip(model.parameters(), inner, strict=True):
        assert torch.equal(p.detach(), y)
    assert any(
        not torch.equal(y, opt.state[p]["reference"]) for p, y in zip(model.parameters(), inner, strict=True)
    )


def test_registry():
    for name in NAMES:
        assert name in dlo.available()
        assert issubclass(dlo.get(name), torch.optim.Optimizer)
    assert dlo.get("Entropy_SGD") is dlo.EntropySGD
    assert dlo.get("trivialized-sgd") is dlo.AnnealSGD
    with pytest.raises(ValueError, match="Invalid optimizer name: 'nope'"):
        dlo.get("nope")
    dlo.register("my-sgd", "torch.optim:SGD")
    assert dlo.get("my-sgd") is torch.optim.SGD
    with pytest.raises(ValueError, match="Invalid name"):
        dlo.register("my-sgd", "torch.optim:Adam")
    with pytest.raises(ValueError, match="Invalid target"):
        dlo.register("other", "torch.optim.SGD")
    with pytest.raises(ValueError, match=r"already registered for deeplandscape\.optim\.heat:Heat"):
        dlo.register("heat", "torch.optim:SGD")


def test_the_registry_is_derived_from_the_modules():
    """Every optimizer class the package exports is registered by its module's OPTIMIZERS (none is left out
    or listed by hand), and the test settings cover every one of them."""
    exported = {
        getattr(dlo, name)
        for name in dlo.__all__
        if isinstance(getattr(dlo, name), type) and issubclass(getattr(dlo, name), torch.optim.Optimizer)
    }
    declared = dlo.registry.declared()
    assert exported == set(declared.values())
    for name, cls in declared.items():
        assert dlo.get(name) is cls and name in dlo.available()
    assert {"sgd", "adam"} <= set(dlo.available())
    assert {name.split(":")[0] for name in EVERY} == set(OURS)


def test_recompute_batchnorm_gives_the_statistics_of_the_weights_in_the_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1)).double()
    data = [
        (torch.randn(16, 3, dtype=torch.float64), torch.zeros(16, 1, dtype=torch.float64)) for _ in range(5)
    ]
    opt = dlo.EntropySGD(model.parameters(), lr=0.5, inner_lr=0.05, L=3, gamma=1.0, seed=0)
    model.train()
    train(model, opt, [(x, y) for x, y in data[:4]], loss_fn=lambda m, x, y: (m(x) - y).pow(2).mean())
    model.eval()
    with opt.reference_weights():
        used = dlo.recompute_batchnorm(model, data)
        with torch.no_grad():
            feats = [model[0](x) for x, _ in data]
        # momentum=None: the running statistics are plain averages of the batch statistics
        mean = torch.stack([f.mean(0) for f in feats]).mean(0)
        var = torch.stack([f.var(0, unbiased=True) for f in feats]).mean(0)
        assert used == 5
        assert torch.allclose(model[1].running_mean, mean, atol=1e-12)
        assert torch.allclose(model[1].running_var, var, atol=1e-12)
    assert model[1].momentum == 0.1 and not model.training
    with pytest.raises(ValueError, match="Invalid num_batches: 0"):
        dlo.recompute_batchnorm(model, data, num_batches=0)
