"""Simulated annealing of ternary one-hidden-layer networks (deeplandscape.experiments._annealing)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape.experiments._annealing import (
    TernaryChains,
    anneal_ternary_mlp,
    calibrated_loss,
    ternary_logits,
)


def _data(n=40, n0=6, classes=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, n0, generator=g, dtype=dtype), torch.randint(0, classes, (n,), generator=g)


def _ternary(shape, g, dtype=torch.float64):
    return torch.randint(-1, 2, shape, generator=g).to(dtype)


def _reference_losses(w1, w2, x, y, kappa):
    """Mean cross entropy per network from an ordinary Linear–ReLU–Linear module (float64)."""
    out = []
    for k in range(w1.shape[0]):
        net = nn.Sequential(
            nn.Linear(w1.shape[2] - 1, w1.shape[1]), nn.ReLU(), nn.Linear(w1.shape[1], w2.shape[1])
        )
        net = net.double()
        with torch.no_grad():
            net[0].weight.copy_(w1[k, :, :-1])
            net[0].bias.copy_(w1[k, :, -1])
            net[2].weight.copy_(kappa * w2[k, :, :-1])
            net[2].bias.copy_(kappa * w2[k, :, -1])
            out.append(F.cross_entropy(net(x), y))
    return torch.stack(out)


def test_ternary_logits_equal_an_ordinary_relu_network():
    x, y = _data()
    g = torch.Generator().manual_seed(1)
    w1, w2 = _ternary((3, 5, 7), g), _ternary((3, 4, 6), g)
    logits = ternary_logits(w1, w2, x, 0.3)
    losses = F.cross_entropy(logits.transpose(1, 2), y.expand(3, -1), reduction="none").mean(1)
    torch.testing.assert_close(losses, _reference_losses(w1, w2, x, y, 0.3), rtol=1e-12, atol=1e-12)


def test_incremental_moves_match_full_recomputation():
    """ΔL of every proposed single-weight move equals the difference of two full forward passes, and after
    accepting moves in some chains the weights and caches are those of the changed networks."""
    x, y = _data()
    g = torch.Generator().manual_seed(2)
    E, n1, C = 5, 5, 4
    w1, w2 = _ternary((E, n1, 7), g), _ternary((E, C, n1 + 1), g)
    kappa = 0.4
    state = TernaryChains(w1.clone(), w2.clone(), x, y, kappa)
    d1 = n1 * 7
    for step in range(60):
        # Cover both layers and the bias columns: every third step a second-layer weight.
        idx = (
            torch.randint(0, d1, (E,), generator=g)
            if step % 3
            else torch.randint(d1, state.d, (E,), generator=g)
        )
        r = torch.randint(0, 2, (E,), generator=g)
        before = _reference_losses(state.w1, state.w2, x, y, kappa)
        prev1, prev2 = state.w1.clone(), state.w2.clone()
        moved1, moved2 = state.w1.clone(), state.w2.clone()
        for e in range(E):
            flat = moved1.view(E, -1)[e] if idx[e] < d1 else moved2.view(E, -1)[e]
            pos = int(idx[e]) if idx[e] < d1 else int(idx[e]) - d1
            cycle = [
                -1.0,
                0.0,
                1.0,
            ]  # r = 0: the next value in the cycle −1 → 0 → 1 → −1, r = 1: the one after
            flat[pos] = cycle[(cycle.index(float(flat[pos])) + 1 + int(r[e])) % 3]
        after = _reference_losses(moved1, moved2, x, y, kappa)
        dl = state.propose(idx, r)
        torch.testing.assert_close(dl, after - before, rtol=0, atol=1e-12)
        mask = torch.rand(E, generator=g) < 0.5
        state.accept(mask)
        torch.testing.assert_close(state.w1, torch.where(mask[:, None, None], moved1, prev1), rtol=0, atol=0)
        torch.testing.assert_close(state.w2, torch.where(mask[:, None, None], moved2, prev2), rtol=0, atol=0)
        torch.testing.assert_close(
            state.loss(), _reference_losses(state.w1, state.w2, x, y, kappa), atol=1e-12, rtol=0
        )
    cached = (state.z.clone(), state.h.clone(), state.logits.clone(), state.ps.clone())
    state.recompute()
    for a, b in zip(cached, (state.z, state.h, state.logits, state.ps), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_annealing_keeps_three_values_and_lowers_the_loss():
    x, y = _data(n=60, n0=8, classes=3, dtype=torch.float32)
    res = anneal_ternary_mlp(x, y, 4, chains=6, proposals=1500, classes=3, record_every=500, seed=3)
    for w in (res.w1, res.w2):
        assert set(torch.unique(w).tolist()) <= {-1.0, 0.0, 1.0}
    assert res.w1.shape == (6, 4, 9) and res.w2.shape == (6, 3, 5)
    assert (res.final_loss < res.initial_loss).all()
    assert res.curve_steps.tolist() == [0, 500, 1000, 1500]
    # The recorded losses are those of the weights (an independent forward pass, float64).
    ref = _reference_losses(res.w1.double(), res.w2.double(), x.double(), y, res.logit_scale)
    torch.testing.assert_close(res.final_loss.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(res.loss_curve[-1], res.final_loss)
    assert ((res.acceptance > 0) & (res.acceptance < 1)).all()
    assert res.t_end == pytest.approx(1e-3 * res.t_start)


def test_zero_temperature_accepts_no_uphill_move():
    """With T → 0 the Metropolis rule accepts only ΔL ≤ 0: the recorded loss never rises."""
    x, y = _data(n=50, n0=5, classes=3, dtype=torch.float64)
    res = anneal_ternary_mlp(
        x,
        y,
        3,
        chains=4,
        proposals=600,
        classes=3,
        t_start=1e-300,
        record_every=20,
        seed=4,
        dtype=torch.float64,
    )
    steps = res.loss_curve.diff(dim=0)
    assert (steps <= 1e-12).all() and (res.final_loss < res.initial_loss).all()


def test_same_seed_same_chains():
    x, y = _data(n=30, n0=4, classes=3, dtype=torch.float32)
    a = anneal_ternary_mlp(x, y, 3, chains=3, proposals=200, classes=3, seed=7)
    b = anneal_ternary_mlp(x, y, 3, chains=3, proposals=200, classes=3, seed=7)
    assert torch.equal(a.w1, b.w1) and torch.equal(a.w2, b.w2)


def test_calibrated_loss_is_the_best_grid_multiplier():
    _, y = _data(n=50, n0=5, classes=4)
    g = torch.Generator().manual_seed(5)
    logits = 3 * torch.randn(3, 50, 4, generator=g, dtype=torch.float64)
    logits_test = 3 * torch.randn(3, 20, 4, generator=g, dtype=torch.float64)
    y_test = torch.randint(0, 4, (20,), generator=g)
    a, test = calibrated_loss(logits, y, logits_test, y_test)
    grid = torch.logspace(-1.5, 1.5, 61, dtype=torch.float64)
    for k in range(3):
        train_at = torch.stack([F.cross_entropy(m * logits[k], y) for m in grid])
        assert F.cross_entropy(a[k] * logits[k], y) == pytest.approx(float(train_at.min()), rel=1e-12)
        assert test[k] == pytest.approx(float(F.cross_entropy(a[k] * logits_test[k], y_test)), rel=1e-12)


@pytest.mark.parametrize(
    "kw",
    [
        {"chains": 0},
        {"proposals": 0},
        {"t_end_ratio": 0.0},
        {"t_start": -1.0},
        {"logit_scale": 0.0},
        {"classes": 2},
    ],
)
def test_invalid_arguments(kw):
    x, y = _data(n=10, n0=3, classes=3)
    args = {"chains": 2, "proposals": 10, "classes": 3, **kw}
    with pytest.raises(ValueError, match="Invalid"):
        anneal_ternary_mlp(x, y, 2, **args)
