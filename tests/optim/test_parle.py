"""Parle (Thesis eq. (5.8), §5.3.1–5.3.2, §5.5): degenerate cases, an independent oracle, behaviour."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from deeplandscape.optim.distributed import DistributedParle
from deeplandscape.optim.elastic import ElasticSGD
from deeplandscape.optim.parle import Parle, split_dataset

from ._problems import (
    DT,
    backward,
    beale,
    descend_quadratics,
    index_batches,
    make_mlp,
    max_diff,
    params_of,
    random_quadratics,
    regression_data,
    rosenbrock,
    run_replicas,
)

# ------------------------------------------------------------------------------------------------------
# Degenerate settings (Thesis §5.3.1)


@pytest.mark.parametrize("foreach", [False, True])
def test_n1_L1_gamma_rho_inf_is_sgd(foreach):
    """(i) n = 1, L = 1, γ = ρ = ∞ is SGD with lr = inner_lr, exact with α = 0, η′ = lr = 1, no noise.

    α = 0 makes z the last inner iterate and η′ = 1 makes x^a ← z, the SGD step; momentum is off (Parle's
    inner momentum restarts at every outer step, i.e. at every step when L = 1). The master, the average
    of the one replica, is the SGD iterate too.
    """
    X, Y = regression_data(noise=0.1)
    m_parle, m_sgd = make_mlp(0), make_mlp(0)
    opt = Parle(
        m_parle.parameters(),
        lr=1.0,
        inner_lr=0.05,
        L=1,
        gamma=math.inf,
        rho=math.inf,
        alpha=0.0,
        momentum=0.0,
        nesterov=False,
        weight_decay=1e-3,
        foreach=foreach,
    )
    sgd = torch.optim.SGD(m_sgd.parameters(), lr=0.05, weight_decay=1e-3)
    for idx in index_batches(1, 40):
        for m, o in ((m_parle, opt), (m_sgd, sgd)):
            o.zero_grad()
            backward(m, X, Y, idx)
            o.step()
        assert max_diff(params_of(m_parle), params_of(m_sgd)) <= 1e-12
        assert max_diff(opt.master_weights(), params_of(m_sgd)) <= 1e-12


def test_L1_gamma_inf_is_elastic_sgd():
    """(ii) L = 1, γ = ∞ is Elastic-SGD (eq. (5.4)), exact with α = 0, η′ = lr = 1, no momentum, no noise.

    Then x^a ← x^a − η0 ∇f − (x^a − x)/ρ_P: Elastic-SGD with lr η_E = η0 (Parle's inner_lr) and
    ρ_E = η0 ρ_P (also for ρ_min), the same scoping s, and the normalized master update x ← x̄.
    """
    n, eta0, rho_p, rho_min_p, s = 3, 0.05, 4.0, 1.5, 0.05
    X, Y = regression_data(noise=0.1)
    parle_models = [make_mlp(10 + a) for a in range(n)]
    elastic_models = [make_mlp(10 + a) for a in range(n)]
    parle = Parle(
        [m.parameters() for m in parle_models],
        lr=1.0,
        inner_lr=eta0,
        L=1,
        gamma=math.inf,
        rho=rho_p,
        rho_min=rho_min_p,
        scoping=s,
        alpha=0.0,
        momentum=0.0,
        nesterov=False,
    )
    elastic = ElasticSGD(
        [m.parameters() for m in elastic_models],
        lr=eta0,
        rho=eta0 * rho_p,
        rho_min=eta0 * rho_min_p,
        scoping=s,
        momentum=0.0,
        nesterov=False,
    )
    assert max_diff(parle.master_weights(), elastic.master_weights()) == 0
    streams = [index_batches(20 + a, 40) for a in range(n)]
    for t in range(40):
        for opt, models in ((parle, parle_models), (elastic, elastic_models)):
            opt.zero_grad()
            for a, m in enumerate(models):
                backward(m, X, Y, streams[a][t])
            opt.step()
        for mp, me in zip(parle_models, elastic_models, strict=True):
            assert max_diff(params_of(mp), params_of(me)) <= 1e-12
        assert max_diff(parle.master_weights(), elastic.master_weights()) <= 1e-12
    assert parle.rho_at(39) == rho_min_p  # the clip was reached within the run


@pytest.mark.parametrize("foreach", [False, True])
def test_n1_rho_inf_is_entropy_sgd(foreach):
    """(iii) n = 1, ρ = ∞ is Entropy-SGD with the scaled outer step (Thesis §3.2.3), for any α, η′, noise.

    Exact with the same knobs and seed, ``gamma_min=0`` (Entropy-SGD's scoping is not clipped) and Parle's
    momentum on the outer step too (Thesis Remark 5.3: on y^a and x^a).
    """
    from deeplandscape.optim.entropy import EntropySGD

    X, Y = regression_data(noise=0.1)
    m_parle, m_ent = make_mlp(3), make_mlp(3)
    knobs = dict(
        lr=0.7,
        inner_lr=0.05,
        L=4,
        gamma=0.5,
        scoping=0.05,
        alpha=0.25,
        noise=1e-3,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-3,
        seed=5,
        foreach=foreach,
    )
    parle = Parle(m_parle.parameters(), rho=math.inf, gamma_min=0.0, **knobs)
    ent = EntropySGD(m_ent.parameters(), outer_momentum=0.9, outer_nesterov=True, **knobs)
    for idx in index_batches(2, 27):
        for m, o in ((m_parle, parle), (m_ent, ent)):
            o.zero_grad()
            backward(m, X, Y, idx)
            o.step()
        assert max_diff(params_of(m_parle), params_of(m_ent)) <= 1e-12
    xs = [parle.state[p]["x"] for p in m_parle.parameters()]
    refs = [ent.state[p]["reference"] for p in m_ent.parameters()]
    assert max_diff(xs, refs) <= 1e-12


# ------------------------------------------------------------------------------------------------------
# Independent oracle of eq. (5.8) with scoping (5.10)


def test_matches_oracle_of_eq_5_8():
    """n = 2 replicas on different quadratics f_a(y) = ½yᵀA_a y − b_aᵀy, written out from eq. (5.8).

    The master averages the updated replicas (order discussed in the module docstring of parle.py).
    """
    d, n, L, steps = 4, 2, 3, 14
    A, b, x0 = random_quadratics(d, n, seed=0)
    eta, eta0, alpha, gamma0, rho0, s, gmin, rmin = 0.3, 0.1, 0.25, 3.0, 2.0, 0.2, 1.5, 1.2

    # oracle
    x = [v.clone() for v in x0]
    y = [v.clone() for v in x0]
    z = [v.clone() for v in x0]
    master = sum(x0) / n
    for k in range(steps):
        gam = max(gamma0 * (1 - s) ** (k // L), gmin)
        rho = max(rho0 * (1 - s) ** (k // L), rmin)
        for a in range(n):
            y[a] = y[a] - eta0 * (A[a] @ y[a] - b[a] + (y[a] - x[a]) / gam)  # (5.8a)
            z[a] = alpha * z[a] + (1 - alpha) * y[a]  # (5.8b)
        if (k + 1) % L == 0:
            eta1, eta2, eta3 = eta * gam, eta, rho / n  # §5.3.2
            new_x = [
                x[a] - eta1 / gam * (x[a] - z[a]) - eta2 / rho * (x[a] - master) for a in range(n)
            ]  # (5.8c)
            x = new_x
            master = master - eta3 * n / rho * (master - sum(x) / n)  # (5.8d), with the updated x^a
            y = [v.clone() for v in x]
            z = [v.clone() for v in x]

    ps = [nn.Parameter(v.clone()) for v in x0]
    opt = Parle(
        [[p] for p in ps],
        lr=eta,
        inner_lr=eta0,
        L=L,
        gamma=gamma0,
        rho=rho0,
        scoping=s,
        gamma_min=gmin,
        rho_min=rmin,
        alpha=alpha,
        momentum=0.0,
        nesterov=False,
    )
    descend_quadratics(opt, ps, A, b, steps)
    assert max_diff([p.detach() for p in ps], y) <= 1e-12
    assert max_diff([opt.state[p]["x"] for p in ps], x) <= 1e-12
    assert max_diff(opt.master_weights(), [master]) <= 1e-12
    assert opt.gamma_at(13) == max(gamma0 * (1 - s) ** 4, gmin)
    assert opt.rho_at(13) == rmin


def test_scoping_from_batches_per_epoch():
    """Eq. (5.10): γ_k = γ0(1 − 1/(2B))^⌊k/L⌋ clipped at 1, ρ_k = ρ0(1 − 1/(2B))^⌊k/L⌋ clipped at 0.1."""
    p = nn.Parameter(torch.zeros(2, dtype=DT))
    B = 10
    opt = Parle([p], batches_per_epoch=B)
    for k in [0, 24, 25, 26, 250, 5000, 10**5]:
        assert opt.gamma_at(k) == max(100.0 * (1 - 1 / (2 * B)) ** (k // 25), 1.0)
        assert opt.rho_at(k) == max(1.0 * (1 - 1 / (2 * B)) ** (k // 25), 0.1)
    assert opt.gamma_at(10**5) == 1.0 and opt.rho_at(10**5) == 0.1
    assert opt.param_groups[0]["scoping"] == 1 / (2 * B)
    assert [opt.is_outer_step(k) for k in (0, 23, 24, 25, 49)] == [False, False, True, False, True]


# ------------------------------------------------------------------------------------------------------
# foreach == single tensor; checkpoints; schedulers


def _two_group_replicas(seed0: int, n: int) -> list[nn.Module]:
    return [make_mlp(seed0 + a, (3, 6, 4, 1)) for a in range(n)]


def _groups(m: nn.Module) -> list[dict]:
    ps = list(m.parameters())
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": 0.05, "inner_lr": 0.02, "weight_decay": 1e-2}]


KNOBS = dict(
    lr=0.1, inner_lr=0.05, L=4, gamma=0.8, rho=0.5, scoping=0.1, gamma_min=0.3, rho_min=0.2, noise=1e-4
)


def test_foreach_matches_single_tensor():
    X, Y = regression_data(noise=0.1)
    n, steps = 2, 13
    streams = [index_batches(30 + a, steps) for a in range(n)]
    runs = []
    for foreach in (False, True):
        models = _two_group_replicas(40, n)
        opt = Parle([_groups(m) for m in models], foreach=foreach, seed=7, **KNOBS)
        run_replicas(models, opt, X, Y, streams, 0, steps)
        state = [t for m in models for p in m.parameters() for t in (p.detach(), *opt.state[p].values())]
        runs.append(state)
    assert len(runs[0]) == len(runs[1])
    assert max_diff(runs[0], runs[1]) <= 1e-12


def test_checkpoint_resume_is_bitwise():
    """Save after k steps (mid-cycle), load with weights_only=True into fresh objects, continue."""
    X, Y = regression_data(noise=0.1)
    n, k, steps = 2, 10, 21
    streams = [index_batches(50 + a, steps) for a in range(n)]

    models = _two_group_replicas(60, n)
    opt = Parle([_groups(m) for m in models], seed=3, **KNOBS)
    run_replicas(models, opt, X, Y, streams, 0, steps)

    models_a = _two_group_replicas(60, n)
    opt_a = Parle([_groups(m) for m in models_a], seed=3, **KNOBS)
    run_replicas(models_a, opt_a, X, Y, streams, 0, k)
    buf = io.BytesIO()
    torch.save({"models": [m.state_dict() for m in models_a], "opt": opt_a.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)

    models_b = _two_group_replicas(99, n)  # different initial weights: everything must come from ckpt
    for m, sd in zip(models_b, ckpt["models"], strict=True):
        m.load_state_dict(sd)
    opt_b = Parle([_groups(m) for m in models_b], seed=1, **KNOBS)
    opt_b.load_state_dict(ckpt["opt"])
    assert opt_b.steps == k
    run_replicas(models_b, opt_b, X, Y, streams, k, steps)
    for m, mb in zip(models, models_b, strict=True):
        for p, q in zip(m.parameters(), mb.parameters(), strict=True):
            assert torch.equal(p, q)
            assert opt.state[p].keys() == opt_b.state[q].keys()
            for key in opt.state[p]:
                assert torch.equal(opt.state[p][key], opt_b.state[q][key]), key


def test_lr_scheduler_changes_the_outer_step():
    """``lr`` is η of (5.8c): halving it with a scheduler equals constructing with lr/2, and differs."""
    X, Y = regression_data(noise=0.1)
    steps = 8
    streams = [index_batches(70, steps)]
    finals = []
    for lr, factor in ((0.2, 1.0), (0.4, 0.5), (0.4, 1.0)):
        models = [make_mlp(8)]
        opt = Parle(models[0].parameters(), lr=lr, inner_lr=0.05, L=2, gamma=1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _epoch, f=factor: f)
        run_replicas(models, opt, X, Y, streams, 0, steps)
        sched.step()
        finals.append(params_of(models[0]))
    assert max_diff(finals[0], finals[1]) == 0
    assert max_diff(finals[0], finals[2]) > 1e-6


# ------------------------------------------------------------------------------------------------------
# Convergence and landscape


def test_converges_on_quadratic_with_paper_defaults():
    """f(x) = ½(x − c)ᵀA(x − c) from (1.5, 1.5): the master reaches c within 1e-3 (n = 3, defaults)."""
    A = torch.tensor([[3.0, 0.5], [0.5, 1.0]], dtype=DT)
    c = torch.tensor([-0.5, 1.0], dtype=DT)
    ps = [nn.Parameter(torch.tensor([1.5, 1.5], dtype=DT)) for _ in range(3)]
    opt = Parle([[p] for p in ps], batches_per_epoch=10)
    for _ in range(2500):  # 100 outer steps; γ_k, ρ_k reach their clips 1 and 0.1
        for p in ps:
            p.grad = A @ (p.detach() - c)
        opt.step()
    assert (opt.master_weights()[0] - c).norm() < 1e-3


@pytest.mark.parametrize(
    ("name", "lr", "steps", "minimum"),
    [("rosenbrock", 0.05, 1500, (1.0, 1.0)), ("beale", 0.02, 1500, (3.0, 0.5))],
)
def test_degenerate_parle_converges_on_rosenbrock_and_beale(name, lr, steps, minimum):
    """Degenerate Parle (n = 1, L = 1, γ = ρ = ∞, α = 0, η′ = 1) from (1.5, 1.5) within 1e-3."""
    f = {"rosenbrock": rosenbrock, "beale": beale}[name]
    p = nn.Parameter(torch.tensor([1.5, 1.5], dtype=DT))
    opt = Parle(
        [p], lr=1.0, inner_lr=lr, L=1, gamma=math.inf, rho=math.inf, alpha=0.0, momentum=0.0, nesterov=False
    )
    for _ in range(steps):
        opt.zero_grad()
        f(p).backward()
        opt.step()
    assert (p.detach() - torch.tensor(minimum, dtype=DT)).norm() < 1e-3


def blobs(seed: int = 0, n: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % 2).to(DT)
    centers = torch.stack([2 * y - 1, 2 * y - 1], 1)
    return centers + torch.randn(n, 2, generator=g, dtype=DT), y.unsqueeze(1)


def test_halves_mlp_loss_on_blobs_with_defaults():
    """2-4-1 MLP, two Gaussian blobs, 3 replicas on disjoint splits, paper defaults; budget 300 steps.

    300 steps = 12 outer steps of L = 25, each replica drawing batches of 32 from its third of the data.
    """
    X, Y = blobs()
    n, bs = 3, 32
    models = [make_mlp(a, (2, 4, 1)) for a in range(n)]
    splits = [s.indices for s in split_dataset(torch.utils.data.TensorDataset(X, Y), n, seed=0)]
    B = math.ceil(len(X) / bs)
    opt = Parle([m.parameters() for m in models], batches_per_epoch=B)
    crit = nn.BCEWithLogitsLoss()

    def master_loss():
        with opt.reference_weights(), torch.no_grad():
            return crit(models[0](X), Y).item()

    start = master_loss()
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        opt.zero_grad()
        for m, idx in zip(models, splits, strict=True):
            pick = torch.tensor(idx)[torch.randint(0, len(idx), (bs,), generator=g)]
            crit(m(X[pick]), Y[pick]).backward()
        opt.step()
    assert master_loss() <= 0.5 * start


def test_prefers_the_wide_minimum():
    """1-D loss with a deep sharp minimum (x = 1) and a shallower wide one (x = −1), Thesis Fig. 3.2.

    40 starting points in [−2.5, 2.5] (one coordinate each), the same noisy gradients ∇f + 0.5 ξ.
    Measured with these seeds: SGD (lr 0.01, Nesterov 0.9) ends in the wide basin from 28/40 starts;
    Parle (n = 3, L = 25, γ = 1, ρ = 1, thermal noise 0.3, inner_lr 0.01, η = 0.1) from 40/40.
    """

    def f(x):
        return (
            -torch.exp(-((x - 1) ** 2) / (2 * 0.08**2))
            - 0.6 * torch.exp(-((x + 1) ** 2) / (2 * 0.7**2))
            + 0.05 * x**2
        )

    N, steps = 40, 1000
    x0 = torch.linspace(-2.5, 2.5, N, dtype=DT)

    def run(make_opt, n):
        g = torch.Generator().manual_seed(0)
        ps = [nn.Parameter(x0.clone()) for _ in range(n)]
        opt = make_opt(ps)
        for _ in range(steps):
            opt.zero_grad()
            for p in ps:
                f(p).sum().backward()
                p.grad.add_(0.5 * torch.randn(N, generator=g, dtype=DT))
            opt.step()
        return ps, opt

    ps, _ = run(lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, nesterov=True), 1)
    sgd_wide = int((ps[0].detach() < 0).sum())
    _, opt = run(lambda ps: Parle([[p] for p in ps], lr=0.1, inner_lr=0.01, gamma=1.0, noise=0.3, seed=0), 3)
    parle_wide = int((opt.master_weights()[0] < 0).sum())
    assert parle_wide >= sgd_wide + 8, (parle_wide, sgd_wide)
    assert parle_wide >= 36


# ------------------------------------------------------------------------------------------------------
# API contract


def test_reference_weights_swaps_master_and_restores():
    X, Y = regression_data(noise=0.1)
    models = [make_mlp(a) for a in range(2)]
    opt = Parle([m.parameters() for m in models], L=3, gamma=1.0)
    run_replicas(models, opt, X, Y, [index_batches(1, 5), index_batches(2, 5)], 0, 5)
    inner = params_of(models[1])
    with opt.reference_weights(replica=1):
        assert max_diff(params_of(models[1]), opt.master_weights()) == 0
        with pytest.raises(RuntimeError, match="reference_weights"):
            opt.step()
    assert max_diff(params_of(models[1]), inner) == 0
    with pytest.raises(ValueError, match="Invalid replica: 2"), opt.reference_weights(replica=2):
        pass


def test_closure_loss_is_returned():
    X, Y = regression_data(noise=0.1)
    m = make_mlp(0)
    opt = Parle(m.parameters())

    def closure():
        opt.zero_grad()
        return backward(m, X, Y, torch.arange(8))

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.item() > 0


def test_parameters_without_gradient_skip_the_inner_step():
    w, frozen = nn.Parameter(torch.ones(2, dtype=DT)), nn.Parameter(torch.ones(2, dtype=DT))
    other_w, other_frozen = nn.Parameter(torch.ones(2, dtype=DT)), nn.Parameter(-torch.ones(2, dtype=DT))
    opt = Parle([[w, frozen], [other_w, other_frozen]], L=2, momentum=0.0, nesterov=False, rho=0.5)
    for _ in range(1):
        w.grad, other_w.grad = torch.ones(2, dtype=DT), torch.ones(2, dtype=DT)
        opt.step()
    assert torch.equal(frozen.detach(), torch.ones(2, dtype=DT))  # no inner step without a gradient
    w.grad, other_w.grad = torch.ones(2, dtype=DT), torch.ones(2, dtype=DT)
    opt.step()  # outer step: the elastic pull moves frozen towards the master x_0 = 0
    expected = 1.0 - 0.1 * (1.0 - 0.0) / 0.5
    assert torch.allclose(frozen.detach(), torch.full((2,), expected, dtype=DT), rtol=0, atol=1e-15)
    assert torch.equal(opt.master_weights()[1], torch.zeros(2, dtype=DT))


def test_nan_gradient_raises_and_leaves_state_unchanged():
    X, Y = regression_data(noise=0.1)
    models = [make_mlp(a) for a in range(2)]
    opt = Parle([m.parameters() for m in models], L=2)
    run_replicas(models, opt, X, Y, [index_batches(1, 3), index_batches(2, 3)], 0, 3)
    before = [t.clone() for m in models for p in m.parameters() for t in (p.detach(), *opt.state[p].values())]
    opt.zero_grad()
    for m in models:
        backward(m, X, Y, torch.arange(8))
    next(models[1].parameters()).grad[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="replica 1"):
        opt.step()
    list(models[0].parameters())[-1].grad[0] = float("inf")
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        opt.step()
    after = [t for m in models for p in m.parameters() for t in (p.detach(), *opt.state[p].values())]
    assert max_diff(before, after) == 0 and opt.steps == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lr", -0.1),
        ("lr", float("nan")),
        ("inner_lr", -1.0),
        ("L", 0),
        ("L", 2.5),
        ("gamma", 0.0),
        ("gamma", -1.0),
        ("rho", 0.0),
        ("rho", float("nan")),
        ("scoping", 1.0),
        ("scoping", -0.1),
        ("batches_per_epoch", 0),
        ("gamma_min", 200.0),
        ("rho_min", 2.0),
        ("rho_min", -1.0),
        ("alpha", 1.0),
        ("alpha", -0.5),
        ("noise", -1e-3),
        ("momentum", 1.0),
        ("momentum", -0.1),
        ("weight_decay", -1.0),
        ("seed", -1),
    ],
)
def test_invalid_hyperparameters(name, value):
    p = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=f"Invalid {name}: "):
        Parle([p], **{name: value})


def test_invalid_structure():
    a = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))]
    b = [nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(4))]
    with pytest.raises(ValueError, match="Invalid params"):
        Parle([a, b])
    with pytest.raises(ValueError, match="Invalid params"):
        Parle([a, [b[0]]])
    with pytest.raises(ValueError, match="Invalid nesterov"):
        Parle(a, momentum=0.0)
    with pytest.raises(ValueError, match="Invalid scoping"):
        Parle(a, scoping=0.1, batches_per_epoch=5)
    with pytest.raises(ValueError, match="Invalid L"):
        Parle([{"params": a[:1]}, {"params": a[1:], "L": 5}])


def test_split_dataset():
    ds = torch.utils.data.TensorDataset(torch.arange(101))
    parts = split_dataset(ds, 3, seed=1)
    idx = [set(p.indices) for p in parts]
    assert sorted(len(i) for i in idx) == [33, 34, 34]
    assert set().union(*idx) == set(range(101)) and sum(len(i) for i in idx) == 101
    overlap = split_dataset(ds, 3, fraction=0.5, seed=1)  # Thesis §5.5: 3 replicas with 50% each
    assert all(len(p.indices) == 51 and len(set(p.indices)) == 51 for p in overlap)
    assert set().union(*(set(p.indices) for p in overlap)) == set(range(101))
    assert [p.indices for p in split_dataset(ds, 3, seed=1)] == [p.indices for p in parts]
    with pytest.raises(ValueError, match="Invalid fraction"):
        split_dataset(ds, 3, fraction=0.2)
    with pytest.raises(ValueError, match="Invalid n"):
        split_dataset(ds, 0)


def test_distributed_parle_without_process_group_is_parle_n1():
    X, Y = regression_data(noise=0.1)
    m1, m2 = make_mlp(4), make_mlp(4)
    o1 = Parle(m1.parameters(), L=3, gamma=1.0, noise=1e-3, seed=2)
    o2 = DistributedParle(m2.parameters(), L=3, gamma=1.0, noise=1e-3, seed=2)
    for idx in index_batches(5, 10):
        for m, o in ((m1, o1), (m2, o2)):
            o.zero_grad()
            backward(m, X, Y, idx)
            o.step()
    assert max_diff(params_of(m1), params_of(m2)) == 0
    assert max_diff(o1.master_weights(), o2.master_weights()) == 0
    assert o2.collectives == 0 and o2.n_replicas == 1


def test_param_group_knobs_are_validated_and_inner_lr_follows_lr():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(3))
    opt = Parle([{"params": [a]}, {"params": [b], "lr": 0.05}], lr=0.1)
    assert [g["inner_lr"] for g in opt.param_groups] == [0.1, 0.05]  # η(0) = the group's initial η
    with pytest.raises(ValueError, match="Invalid gamma: -1"):
        Parle([{"params": [a]}, {"params": [b], "gamma": -1.0}])
    with pytest.raises(ValueError, match="Invalid nesterov"):
        Parle([{"params": [a]}, {"params": [b], "momentum": 0.0}])
