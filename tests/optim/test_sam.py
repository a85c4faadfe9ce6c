"""SAM / ASAM: closed forms on a quadratic, reduction to the base optimizer at ρ = 0, torch.optim plumbing."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import deeplandscape.optim as dlo

from ._problems import batches, bce, blobs, small_mlp

DT = torch.float64


def _spd(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, n, generator=g, dtype=DT)
    return q @ q.T / n + 0.5 * torch.eye(n, dtype=DT)


def _quad_loss(a: torch.Tensor, parts: list[torch.Tensor]) -> torch.Tensor:
    """f(w) = ½ wᵀ A w, w the concatenation of ``parts``."""
    w = torch.cat(parts)
    return 0.5 * w @ (a @ w)


def _sam_step_on_quadratic(opt, a, parts, closure_zeroes=False):
    """An ordinary loop step: backward at w, then step(closure) doing forward/backward."""
    opt.zero_grad()
    _quad_loss(a, parts).backward()

    def closure():
        if closure_zeroes:
            opt.zero_grad()
        loss = _quad_loss(a, parts)
        loss.backward()
        return loss

    return opt.step(closure)


def _data(steps=12):
    x, y = blobs(100, seed=5)
    return batches(x.double(), y.double(), batch_size=10, steps=steps, seed=6)


def _train_sam(model, opt, data):
    for xb, yb in data:
        opt.zero_grad()
        bce(model, xb, yb).backward()
        opt.step(lambda xb=xb, yb=yb: bce(model, xb, yb).backward())


def _train_base(model, opt, data):
    for xb, yb in data:
        opt.zero_grad()
        bce(model, xb, yb).backward()
        opt.step()


def _save_load(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize(
    ("base", "kw"),
    [
        (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
        (torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-3)),
    ],
)
@pytest.mark.parametrize("adaptive", [False, True])
def test_rho_zero_is_the_base_optimizer(base, kw, adaptive):
    data = _data(10)
    sam_model, base_model = small_mlp(seed=1), small_mlp(seed=1)
    _train_sam(sam_model, dlo.SAM(sam_model.parameters(), base, rho=0.0, adaptive=adaptive, **kw), data)
    _train_base(base_model, base(base_model.parameters(), **kw), data)
    moved = False
    start = small_mlp(seed=1).parameters()
    for a, b, p0 in zip(sam_model.parameters(), base_model.parameters(), start, strict=True):
        assert (a - b).abs().max().item() <= 1e-12
        moved |= not torch.equal(b, p0)
    assert moved


@pytest.mark.parametrize("foreach", [False, True])
def test_sgd_step_on_a_quadratic_matches_the_closed_form(foreach):
    """w' = w − η A (w + ρ Aw/‖Aw‖) (SAM paper eq. (2)–(3)); step returns f(w + ε̂)."""
    n, lr, rho = 7, 0.1, 0.3
    a = _spd(n, seed=0)
    w = torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=DT)
    p = nn.Parameter(w.clone())
    opt = dlo.SAM([p], rho=rho, lr=lr, foreach=foreach)
    for _ in range(3):
        g = a @ w
        e = rho * g / g.norm()
        expected_loss = 0.5 * (w + e) @ a @ (w + e)
        w = w - lr * a @ (w + e)
        loss = _sam_step_on_quadratic(opt, a, [p])
        assert (p.detach() - w).abs().max().item() <= 1e-12
        assert abs(loss.item() - expected_loss.item()) <= 1e-12


@pytest.mark.parametrize("foreach", [False, True])
def test_adaptive_step_on_a_quadratic_matches_the_closed_form(foreach):
    """ASAM: ε̂ = ρ T²g/‖Tg‖ with T = diag(|w|) (Kwon et al. §3)."""
    n, lr, rho = 6, 0.05, 0.5
    a = _spd(n, seed=2)
    w = torch.randn(n, generator=torch.Generator().manual_seed(3), dtype=DT)
    p = nn.Parameter(w.clone())
    opt = dlo.SAM([p], rho=rho, adaptive=True, lr=lr, foreach=foreach)
    for _ in range(3):
        g = a @ w
        t = torch.diag(w.abs())
        e = rho * t @ t @ g / (t @ g).norm()
        w = w - lr * a @ (w + e)
        _sam_step_on_quadratic(opt, a, [p])
        assert (p.detach() - w).abs().max().item() <= 1e-12
    # ASAM's perturbation differs from SAM's: the closed forms are not the same map.
    g = a @ w
    assert (rho * g / g.norm() - rho * w * w * g / (w * g).norm()).abs().max().item() > 1e-3


def test_groups_with_different_rho_share_one_global_norm():
    """Two groups (ρ1 = 0.2 plain, ρ2 = 0.7 adaptive, different lr): ‖·‖ runs over both groups."""
    a = _spd(7, seed=4)
    w = torch.randn(7, generator=torch.Generator().manual_seed(5), dtype=DT)
    p1, p2 = nn.Parameter(w[:3].clone()), nn.Parameter(w[3:].clone())
    opt = dlo.SAM(
        [{"params": [p1], "rho": 0.2, "lr": 0.1}, {"params": [p2], "rho": 0.7, "adaptive": True}], lr=0.05
    )
    for _ in range(2):
        g = a @ w
        g1, g2, w2 = g[:3], g[3:], w[3:]
        norm = torch.cat([g1, w2 * g2]).norm()
        e = torch.cat([0.2 * g1, 0.7 * w2 * w2 * g2]) / norm
        step = torch.cat([0.1 * torch.ones(3, dtype=DT), 0.05 * torch.ones(4, dtype=DT)])
        w = w - step * (a @ (w + e))
        _sam_step_on_quadratic(opt, a, [p1, p2])
        assert (torch.cat([p1.detach(), p2.detach()]) - w).abs().max().item() <= 1e-12
    assert [g["step"] for g in opt.param_groups] == [2, 2]


def test_closure_that_zeroes_or_not_gives_the_same_step_and_two_gradient_evaluations():
    a = _spd(5, seed=6)
    w0 = torch.randn(5, generator=torch.Generator().manual_seed(7), dtype=DT)
    results = []
    for closure_zeroes in (False, True):
        p = nn.Parameter(w0.clone())
        opt = dlo.SAM([p], rho=0.1, lr=0.1, momentum=0.9)
        calls = 0

        def counted(parts):
            nonlocal calls
            calls += 1
            return _quad_loss(a, parts)

        for _ in range(3):
            opt.zero_grad()
            counted([p]).backward()

            def closure(p=p, opt=opt, closure_zeroes=closure_zeroes):
                if closure_zeroes:
                    opt.zero_grad()
                loss = counted([p])
                loss.backward()
                return loss

            opt.step(closure)
        assert calls == 3 * dlo.SAM.gradient_evaluations_per_step
        results.append(p.detach().clone())
    assert torch.equal(results[0], results[1])


def test_first_and_second_step_equal_step_with_a_closure():
    a = _spd(5, seed=8)
    w0 = torch.randn(5, generator=torch.Generator().manual_seed(9), dtype=DT)
    p, q = nn.Parameter(w0.clone()), nn.Parameter(w0.clone())
    opt_p = dlo.SAM([p], rho=0.2, adaptive=True, lr=0.1, momentum=0.5)
    opt_q = dlo.SAM([q], rho=0.2, adaptive=True, lr=0.1, momentum=0.5)
    for _ in range(3):
        _sam_step_on_quadratic(opt_p, a, [p])
        opt_q.zero_grad()
        _quad_loss(a, [q]).backward()
        opt_q.first_step(zero_grad=True)
        assert not torch.equal(q.detach(), p.detach())  # at w + ε̂
        _quad_loss(a, [q]).backward()
        opt_q.second_step()
        assert torch.equal(q.detach(), p.detach())
    with pytest.raises(RuntimeError, match="not perturbed"):
        opt_q.second_step()
    _quad_loss(a, [q]).backward()
    opt_q.first_step()
    with pytest.raises(RuntimeError, match="already perturbed"):
        opt_q.first_step()


def test_zero_gradient_gives_no_perturbation():
    """At the minimum w = 0 of ½wᵀAw, ‖g‖ = 0: ε̂ = 0, no NaN, and the step is the base step (w stays 0).

    In ASAM, g ≠ 0 only where w = 0 also gives ‖T g‖ = 0."""
    a = _spd(4, seed=10)
    p = nn.Parameter(torch.zeros(4, dtype=DT))
    opt = dlo.SAM([p], rho=0.1, lr=0.1)
    loss = _sam_step_on_quadratic(opt, a, [p])
    assert torch.equal(p.detach(), torch.zeros(4, dtype=DT)) and loss.item() == 0.0

    # ASAM: f(w) = bᵀw + ½‖w‖² at w = 0 has g = b ≠ 0 but |w| ⊙ g = 0.
    b = torch.tensor([1.0, 2.0, 0.0, 0.0], dtype=DT)
    w = nn.Parameter(torch.zeros(4, dtype=DT))
    opt = dlo.SAM([w], rho=0.5, adaptive=True, lr=0.1)
    opt.zero_grad()
    (b @ w + 0.5 * w @ w).backward()
    opt.step(lambda: (b @ w + 0.5 * w @ w).backward())
    assert torch.equal(w.detach(), -0.1 * b)  # the SGD step at w = 0


@pytest.mark.parametrize("adaptive", [False, True])
def test_foreach_path_matches_single_tensor_path(adaptive):
    data = _data(10)
    models = [small_mlp(seed=3), small_mlp(seed=3)]
    for model, foreach in zip(models, [False, True], strict=True):
        opt = dlo.SAM(model.parameters(), rho=0.1, adaptive=adaptive, lr=0.1, momentum=0.9, foreach=foreach)
        _train_sam(model, opt, data)
    moved = False
    start = small_mlp(seed=3).parameters()
    for a, b, p0 in zip(models[0].parameters(), models[1].parameters(), start, strict=True):
        assert (a - b).abs().max().item() <= 1e-12
        moved |= not torch.equal(a, p0)
    assert moved


@pytest.mark.parametrize(
    ("base", "kw"),
    [(torch.optim.SGD, dict(lr=0.1, momentum=0.9)), (torch.optim.Adam, dict(lr=1e-2))],
)
def test_state_dict_round_trip_continues_bit_for_bit(base, kw):
    data = _data(12)

    def make(model):
        return dlo.SAM(model.parameters(), base, rho=0.1, adaptive=True, **kw)

    full = small_mlp(seed=2)
    _train_sam(full, make(full), data)

    half = small_mlp(seed=2)
    opt = make(half)
    _train_sam(half, opt, data[:5])
    ckpt = _save_load({"model": half.state_dict(), "opt": opt.state_dict()})
    assert ckpt["opt"]["param_groups"][0]["rho"] == 0.1 and ckpt["opt"]["param_groups"][0]["step"] == 5
    assert ckpt["opt"]["base_state"]  # momentum buffers / Adam moments travel with the checkpoint

    fresh = small_mlp(seed=9)
    fresh.load_state_dict(ckpt["model"])
    fresh_opt = dlo.SAM(fresh.parameters(), base, rho=0.5, **kw)  # the checkpoint's knobs must win
    fresh_opt.load_state_dict(ckpt["opt"])
    assert fresh_opt.base.param_groups[0] is fresh_opt.param_groups[0]
    assert fresh_opt.param_groups[0]["rho"] == 0.1 and fresh_opt.param_groups[0]["adaptive"] is True
    _train_sam(fresh, fresh_opt, data[5:])
    for a, b in zip(fresh.parameters(), full.parameters(), strict=True):
        assert torch.equal(a, b)


def test_lr_scheduler_acts_on_the_shared_groups():
    """LambdaLR(0.5) gives exactly the run built with half the lr."""
    data = _data(6)
    runs = []
    for scheduled, lr in [(True, 0.2), (False, 0.1)]:
        model = small_mlp(seed=4)
        opt = dlo.SAM(model.parameters(), rho=0.1, lr=lr, momentum=0.9)
        if scheduled:
            torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 0.5)
            assert opt.base.param_groups[0]["lr"] == 0.1
        _train_sam(model, opt, data)
        runs.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


def test_parameters_without_grad_are_skipped():
    model = small_mlp(seed=8)
    unused = nn.Parameter(torch.ones(3, dtype=DT))
    opt = dlo.SAM([*model.parameters(), unused], rho=0.1, lr=0.1, momentum=0.9, weight_decay=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    _train_sam(model, opt, _data(4))
    assert torch.equal(unused.detach(), torch.ones(3, dtype=DT))
    assert unused.grad is None
    assert all(not torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before, strict=True))


def test_missing_closure_raises():
    p = nn.Parameter(torch.ones(2, dtype=DT))
    opt = dlo.SAM([p], lr=0.1)
    (p * p).sum().backward()
    with pytest.raises(ValueError, match="Invalid closure: None"):
        opt.step()
    assert torch.equal(p.detach(), torch.ones(2, dtype=DT))


def test_step_without_a_gradient_at_w_raises():
    p = nn.Parameter(torch.ones(2, dtype=DT))
    opt = dlo.SAM([p], lr=0.1)
    with pytest.raises(RuntimeError, match="no parameter has a gradient"):
        opt.step(lambda: (p * p).sum().backward())


def test_failing_closure_restores_the_weights():
    p = nn.Parameter(torch.tensor([1.0, -2.0], dtype=DT))
    opt = dlo.SAM([p], rho=0.5, lr=0.1)
    (p * p).sum().backward()

    def closure():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        opt.step(closure)
    assert torch.equal(p.detach(), torch.tensor([1.0, -2.0], dtype=DT))
    assert opt.param_groups[0]["step"] == 0
    (p * p).sum().backward()
    opt.first_step()  # not left perturbed: a new step can start
    opt.second_step()


@pytest.mark.parametrize("where", ["w", "w+e"])
def test_non_finite_gradient_raises_and_leaves_state_unchanged(where):
    p = nn.Parameter(torch.tensor([1.0, -2.0, 0.5], dtype=DT))
    opt = dlo.SAM([p], rho=0.1, lr=0.1, momentum=0.9)
    _sam_step_on_quadratic(opt, torch.eye(3, dtype=DT), [p])
    before_p, before_state = p.detach().clone(), _save_load(opt.state_dict())
    opt.zero_grad()
    (p * p).sum().backward()
    if where == "w":
        p.grad[1] = float("nan")

    def closure():
        (p * p).sum().backward()
        if where == "w+e":
            p.grad[2] = float("inf")

    with pytest.raises(FloatingPointError, match=r"param group 0, parameter 0"):
        opt.step(closure)
    assert torch.equal(p.detach(), before_p)
    after = opt.state_dict()
    assert after["param_groups"] == before_state["param_groups"]
    assert torch.equal(
        after["base_state"][0]["momentum_buffer"], before_state["base_state"][0]["momentum_buffer"]
    )


W = [nn.Parameter(torch.zeros(2))]


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        (dict(rho=-0.1), "rho"),
        (dict(rho=float("nan")), "rho"),
        (dict(rho=float("inf")), "rho"),
        (dict(adaptive="yes"), "adaptive"),
        (dict(base_optimizer=dict), "base_optimizer"),
        (dict(base_optimizer=torch.optim.Adadelta), "base_optimizer"),  # Adadelta's rho clashes with SAM's
        (dict(lr=-1.0), "lr"),  # a knob of the base optimizer, checked before it is built
        (dict(lr=float("nan")), "lr"),  # which torch lets through (nan < 0 is False)
    ],
)
def test_invalid_hyperparameter_raises_naming_it(kw, name):
    with pytest.raises(ValueError, match=rf"Invalid {name}: "):
        dlo.SAM(W, **kw)


def test_invalid_hyperparameter_in_a_param_group_raises():
    with pytest.raises(ValueError, match=r"Invalid rho: -1"):
        dlo.SAM([{"params": W, "rho": -1.0}])
    opt = dlo.SAM([nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match=r"Invalid adaptive: 2"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "adaptive": 2})
    assert len(opt.param_groups) == 1 and len(opt.base.param_groups) == 1
    opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "rho": 0.3})
    assert opt.base.param_groups[1] is opt.param_groups[1] and opt.param_groups[1]["lr"] == 1e-3


def test_registry():
    assert "sam" in dlo.available()
    assert dlo.get("SAM") is dlo.SAM
