"""Elastic-SGD (Thesis eq. (5.4), §4.3.3): degenerate case, an independent oracle, behaviour."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from deeplandscape.optim.distributed import DistributedElasticSGD
from deeplandscape.optim.elastic import ElasticSGD

from ._problems import (
    DT,
    backward,
    descend_quadratics,
    index_batches,
    make_mlp,
    max_diff,
    params_of,
    random_quadratics,
    regression_data,
    run_replicas,
)


@pytest.mark.parametrize("foreach", [False, True])
def test_rho_inf_is_independent_sgd(foreach):
    """ρ = ∞ removes the elastic term: every replica is torch.optim.SGD (Nesterov 0.9, weight decay)."""
    X, Y = regression_data()
    n, steps = 3, 25
    models = [make_mlp(a) for a in range(n)]
    refs = [make_mlp(a) for a in range(n)]
    opt = ElasticSGD(
        [m.parameters() for m in models], lr=0.05, rho=math.inf, weight_decay=1e-3, foreach=foreach
    )
    sgds = [
        torch.optim.SGD(r.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3) for r in refs
    ]
    streams = [index_batches(10 + a, steps) for a in range(n)]
    for t in range(steps):
        opt.zero_grad()
        for a in range(n):
            backward(models[a], X, Y, streams[a][t])
            sgds[a].zero_grad()
            backward(refs[a], X, Y, streams[a][t])
            sgds[a].step()
        opt.step()
        for m, r in zip(models, refs, strict=True):
            assert max_diff(params_of(m), params_of(r)) <= 1e-12
        mean = [sum(ts) / n for ts in zip(*[params_of(m) for m in models], strict=True)]
        assert max_diff(opt.master_weights(), mean) <= 1e-12


@pytest.mark.parametrize("master_lr", [None, 0.02])
def test_matches_oracle_of_eq_5_4(master_lr):
    """n = 3 replicas on different quadratics, eq. (5.4) written out, ρ_k scoped and clipped."""
    d, n, steps = 3, 3, 12
    A, b, x0 = random_quadratics(d, n, seed=1)
    eta, rho0, s, rmin = 0.1, 1.0, 0.1, 0.5

    xs = [v.clone() for v in x0]
    master = sum(x0) / n
    for k in range(steps):
        rho = max(rho0 * (1 - s) ** k, rmin)
        eta_p = rho / n if master_lr is None else master_lr
        new = [xs[a] - eta * (A[a] @ xs[a] - b[a] + (xs[a] - master) / rho) for a in range(n)]  # (5.4a)
        if master_lr is None:  # normalized η′ = ρ_k/n: the average of the updated replicas
            master = master - n * eta_p / rho * (master - sum(new) / n)
        else:  # (5.4b) as written, with the replicas before their update
            master = master - n * eta_p / rho * (master - sum(xs) / n)
        xs = new

    ps = [nn.Parameter(v.clone()) for v in x0]
    opt = ElasticSGD(
        [[p] for p in ps],
        lr=eta,
        rho=rho0,
        scoping=s,
        rho_min=rmin,
        master_lr=master_lr,
        momentum=0.0,
        nesterov=False,
    )
    descend_quadratics(opt, ps, A, b, steps)
    assert max_diff([p.detach() for p in ps], xs) <= 1e-12
    assert max_diff(opt.master_weights(), [master]) <= 1e-12
    assert opt.rho_at(11) == rmin and opt.rho_at(2) == rho0 * (1 - s) ** 2


def test_scoping_from_batches_per_epoch():
    opt = ElasticSGD([nn.Parameter(torch.zeros(2))], batches_per_epoch=4)
    assert opt.param_groups[0]["scoping"] == 1 / 8
    assert [opt.rho_at(k) for k in (0, 3, 100)] == [1.0, (1 - 1 / 8) ** 3, 0.1]


def _groups(m):
    ps = list(m.parameters())
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02, "rho": 0.5}]


def test_foreach_matches_single_tensor():
    X, Y = regression_data()
    n, steps = 2, 9
    streams = [index_batches(20 + a, steps) for a in range(n)]
    states = []
    for foreach in (False, True):
        models = [make_mlp(30 + a, (3, 6, 4, 1)) for a in range(n)]
        opt = ElasticSGD([_groups(m) for m in models], scoping=0.1, weight_decay=1e-3, foreach=foreach)
        run_replicas(models, opt, X, Y, streams, 0, steps)
        states.append(
            [t for m in models for p in m.parameters() for t in (p.detach(), *opt.state[p].values())]
        )
    assert len(states[0]) == len(states[1]) and max_diff(states[0], states[1]) <= 1e-12


def test_checkpoint_resume_is_bitwise():
    X, Y = regression_data()
    n, k, steps = 2, 6, 13
    streams = [index_batches(40 + a, steps) for a in range(n)]
    models = [make_mlp(50 + a, (3, 6, 4, 1)) for a in range(n)]
    opt = ElasticSGD([_groups(m) for m in models], scoping=0.1)
    run_replicas(models, opt, X, Y, streams, 0, steps)

    models_a = [make_mlp(50 + a, (3, 6, 4, 1)) for a in range(n)]
    opt_a = ElasticSGD([_groups(m) for m in models_a], scoping=0.1)
    run_replicas(models_a, opt_a, X, Y, streams, 0, k)
    buf = io.BytesIO()
    torch.save({"models": [m.state_dict() for m in models_a], "opt": opt_a.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    models_b = [make_mlp(90 + a, (3, 6, 4, 1)) for a in range(n)]
    for m, sd in zip(models_b, ckpt["models"], strict=True):
        m.load_state_dict(sd)
    opt_b = ElasticSGD([_groups(m) for m in models_b], scoping=0.1)
    opt_b.load_state_dict(ckpt["opt"])
    run_replicas(models_b, opt_b, X, Y, streams, k, steps)
    for m, mb in zip(models, models_b, strict=True):
        for p, q in zip(m.parameters(), mb.parameters(), strict=True):
            assert torch.equal(p, q)
            assert all(torch.equal(opt.state[p][key], opt_b.state[q][key]) for key in opt.state[p])


def test_converges_on_quadratic_with_defaults():
    """f(x) = ½(x − c)ᵀA(x − c) from (1.5, 1.5), n = 3, defaults with scoping: master within 1e-3 of c."""
    A = torch.tensor([[3.0, 0.5], [0.5, 1.0]], dtype=DT)
    c = torch.tensor([-0.5, 1.0], dtype=DT)
    ps = [nn.Parameter(torch.tensor([1.5, 1.5], dtype=DT)) for _ in range(3)]
    opt = ElasticSGD([[p] for p in ps], batches_per_epoch=10)
    for _ in range(300):
        for p in ps:
            p.grad = A @ (p.detach() - c)
        opt.step()
    assert (opt.master_weights()[0] - c).norm() < 1e-3


def test_halves_mlp_loss_on_blobs_with_defaults():
    """2-4-1 MLP, two Gaussian blobs, n = 3 replicas, defaults; budget 100 steps of batch 32."""
    g = torch.Generator().manual_seed(0)
    y = (torch.arange(200) % 2).to(DT)
    X = torch.stack([2 * y - 1, 2 * y - 1], 1) + torch.randn(200, 2, generator=g, dtype=DT)
    Y = y.unsqueeze(1)
    models = [make_mlp(a, (2, 4, 1)) for a in range(3)]
    opt = ElasticSGD([m.parameters() for m in models], batches_per_epoch=7)
    crit = nn.BCEWithLogitsLoss()

    def master_loss():
        with opt.reference_weights(), torch.no_grad():
            return crit(models[0](X), Y).item()

    start = master_loss()
    for _ in range(100):
        opt.zero_grad()
        for m in models:
            pick = torch.randint(0, 200, (32,), generator=g)
            crit(m(X[pick]), Y[pick]).backward()
        opt.step()
    assert master_loss() <= 0.5 * start


def test_nan_gradient_raises_and_leaves_state_unchanged():
    X, Y = regression_data()
    models = [make_mlp(a) for a in range(2)]
    opt = ElasticSGD([m.parameters() for m in models])
    run_replicas(models, opt, X, Y, [index_batches(1, 2), index_batches(2, 2)], 0, 2)
    before = [t.clone() for m in models for p in m.parameters() for t in (p.detach(), *opt.state[p].values())]
    opt.zero_grad()
    for m in models:
        backward(m, X, Y, torch.arange(8))
    list(models[1].parameters())[1].grad[0] = float("nan")
    with pytest.raises(FloatingPointError, match="replica 1"):
        opt.step()
    after = [t for m in models for p in m.parameters() for t in (p.detach(), *opt.state[p].values())]
    assert max_diff(before, after) == 0 and opt.steps == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lr", -1.0),
        ("rho", 0.0),
        ("rho", -2.0),
        ("rho_min", 5.0),
        ("scoping", 1.5),
        ("batches_per_epoch", -3),
        ("master_lr", -0.1),
        ("momentum", 1.0),
        ("weight_decay", float("nan")),
    ],
)
def test_invalid_hyperparameters(name, value):
    with pytest.raises(ValueError, match=f"Invalid {name}: "):
        ElasticSGD([nn.Parameter(torch.zeros(2))], **{name: value})


def test_mixed_master_updates_are_refused():
    ps = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="Invalid master_lr"):
        ElasticSGD([{"params": ps[:1]}, {"params": ps[1:], "master_lr": 0.1}])


def test_distributed_without_process_group_is_elastic_n1():
    X, Y = regression_data()
    m1, m2 = make_mlp(4), make_mlp(4)
    o1, o2 = ElasticSGD(m1.parameters()), DistributedElasticSGD(m2.parameters())
    run_replicas([m1], o1, X, Y, [index_batches(3, 6)], 0, 6)
    run_replicas([m2], o2, X, Y, [index_batches(3, 6)], 0, 6)
    assert max_diff(params_of(m1), params_of(m2)) == 0 and o2.collectives == 0


def test_param_group_knobs_are_validated():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="Invalid rho: 0"):
        ElasticSGD([{"params": [a]}, {"params": [b], "rho": 0.0}])
