"""The ensemble trainer against its truth: E networks trained one at a time with torch.optim.SGD."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape import nets
from deeplandscape.nets.ensemble import Ensemble, evaluate_ensemble
from deeplandscape.optim import EnsembleSGD, train_ensemble

TOL = 1e-10


def mlp(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.Tanh(), nn.Linear(7, 3)).double()


class SmallConvBN(nn.Module):
    """A module with a custom forward, a convolution and batch-norm buffers (the vmap route)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def conv(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallConvBN().double()


def data(n: int, shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=g, dtype=torch.float64), torch.randint(3, (n,), generator=g)


def assert_members_equal(ens: Ensemble, models: list[nn.Module], tol: float = TOL) -> None:
    for k, m in enumerate(models):
        for (name, a), (name_b, b) in zip(
            ens.member(k).state_dict().items(), m.state_dict().items(), strict=True
        ):
            assert name == name_b
            err = (a.double() - b.double()).abs().max().item()
            assert err <= tol, f"member {k}, {name}: |Δ| = {err}"


SGD_KW = [
    {"momentum": 0.9, "weight_decay": 1e-3},
    {"momentum": 0.5, "dampening": 0.2},
    {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
    {},
]


@pytest.mark.parametrize("kw", SGD_KW)
@pytest.mark.parametrize("batched_mlp", [True, False])
def test_shared_batches_equal_independent_sgd(batched_mlp, kw):
    E, lrs = 4, [0.05, 0.1, 0.2, 0.02]
    singles = [mlp(k) for k in range(E)]
    ens = Ensemble([copy.deepcopy(m) for m in singles], batched_mlp=batched_mlp)
    assert (ens._mlp is not None) == batched_mlp
    opt = EnsembleSGD(ens, lrs, **kw)
    opts = [torch.optim.SGD(m.parameters(), lr=lr, **kw) for m, lr in zip(singles, lrs, strict=True)]
    for step in range(5):
        x, y = data(8, (12,), seed=100 + step)
        opt.zero_grad()
        losses = ens.losses(x, y)
        losses.sum().backward()
        opt.step()
        for m, o, loss in zip(singles, opts, losses, strict=True):
            o.zero_grad()
            single = F.cross_entropy(m(x), y)
            assert abs(single.item() - loss.item()) <= TOL
            single.backward()
            o.step()
    assert_members_equal(ens, singles)


def test_vmap_route_with_buffers_equals_independent_sgd():
    """A custom forward with batch norm: parameters and running statistics match the single networks."""
    E = 3
    singles = [conv(k) for k in range(E)]
    ens = Ensemble([copy.deepcopy(m) for m in singles])
    assert ens._mlp is None
    opt = EnsembleSGD(ens, 0.1, momentum=0.9)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in singles]
    for step in range(3):
        x, y = data(6, (1, 4, 4), seed=step)
        opt.zero_grad()
        ens.losses(x, y).sum().backward()
        opt.step()
        for m, o in zip(singles, opts, strict=True):
            o.zero_grad()
            F.cross_entropy(m(x), y).backward()
            o.step()
    assert_members_equal(ens, singles)  # includes bn.running_mean/var and num_batches_tracked
    ens.eval()
    x, _ = data(5, (1, 4, 4), seed=9)
    out = ens(x)
    for k, m in enumerate(singles):
        assert torch.allclose(out[k], m.eval()(x), atol=TOL, rtol=0)


@pytest.mark.parametrize("batched_mlp", [True, False])
def test_per_member_inputs(batched_mlp):
    E = 3
    singles = [mlp(k) for k in range(E)]
    ens = Ensemble([copy.deepcopy(m) for m in singles], batched_mlp=batched_mlp)
    opt = EnsembleSGD(ens, 0.1, momentum=0.9)
    opts = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in singles]
    for step in range(4):
        batches = [data(5, (3, 4), seed=10 * step + k) for k in range(E)]  # Flatten turns 3×4 into 12
        x = torch.stack([b[0] for b in batches])
        y = torch.stack([b[1] for b in batches])
        out = ens(x, per_member=True)
        for k in range(E):
            assert torch.allclose(out[k], singles[k](x[k]), atol=TOL, rtol=0)
        opt.zero_grad()
        ens.losses(x, y, per_member=True).sum().backward()
        opt.step()
        for (xk, yk), m, o in zip(batches, singles, opts, strict=True):
            o.zero_grad()
            F.cross_entropy(m(xk), yk).backward()
            o.step()
    assert_members_equal(ens, singles)


def test_custom_loss_goes_through_vmap():
    E = 3
    singles = [mlp(k) for k in range(E)]
    ens = Ensemble(singles)
    x = torch.randn(6, 12, dtype=torch.float64)
    target = torch.randn(6, 3, dtype=torch.float64)
    losses = ens.losses(x, target, F.mse_loss)
    for k, m in enumerate(singles):
        assert abs(losses[k].item() - F.mse_loss(m(x), target).item()) <= TOL


def test_unstack_round_trip():
    singles = [conv(k) for k in range(3)]
    ens = Ensemble(singles)
    back = ens.unstack()
    for a, b in zip(back, singles, strict=True):
        assert type(a) is type(b)
        for (na, ta), (nb, tb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert na == nb and ta.dtype == tb.dtype and torch.equal(ta, tb)
    again = Ensemble(back)
    for (na, ta), (nb, tb) in zip(again.state_dict().items(), ens.state_dict().items(), strict=True):
        assert na == nb and torch.equal(ta, tb)
    # Members are copies: training the unstacked network leaves the ensemble alone.
    with torch.no_grad():
        next(back[0].parameters()).add_(1.0)
    assert torch.equal(ens.member(0).state_dict()["conv.weight"], singles[0].state_dict()["conv.weight"])
    # dtype changes follow the ensemble.
    assert ens.float().member(1).fc.weight.dtype == torch.float32


def test_from_name_seeds_match_single_networks():
    ens = Ensemble.from_name("choromanska-10", 3, seed=5)
    assert len(ens) == 3 and ens._mlp is not None
    x = nets.example_input("choromanska-10", batch=4)
    out = ens(x)
    for k in range(3):
        single = nets.get("choromanska-10", seed=5 + k)
        assert torch.equal(ens.member(k).net[1].weight, single.net[1].weight)
        assert torch.allclose(out[k], single(x), rtol=1e-5, atol=1e-4)  # float32, unit-cube weights
    assert torch.equal(
        Ensemble.from_factory(mlp, [2, 7]).member(1).state_dict()["1.weight"], mlp(7).state_dict()["1.weight"]
    )


def test_train_ensemble_per_member_shuffle_and_schedule_equal_single_runs():
    """Member k = a network trained alone with torch.optim.SGD on the batch order of generator seed + k."""
    E, n, bs, epochs, seed = 3, 10, 4, 2, 11
    x, y = data(n, (12,), seed=0)
    xt, yt = data(7, (12,), seed=1)
    singles = [mlp(k) for k in range(E)]
    ens = Ensemble([copy.deepcopy(m) for m in singles])
    opt = EnsembleSGD(ens, 0.1, momentum=0.9)

    def schedule(epoch):
        return torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64) * 0.5**epoch

    hist = train_ensemble(
        ens, opt, (x, y), test=(xt, yt), epochs=epochs, batch_size=bs, lr_schedule=schedule,
        shuffle="per-member", seed=seed,
    )  # fmt: skip
    assert hist.steps == epochs * 3
    assert hist.train_loss.shape == (epochs + 1, E) and hist.test_loss.shape == (epochs + 1, E)
    for k, m in enumerate(singles):
        o = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        g = torch.Generator().manual_seed(seed + k)
        with torch.no_grad():
            assert abs(F.cross_entropy(m(x), y).item() - hist.train_loss[0, k].item()) <= TOL
        for epoch in range(epochs):
            for group in o.param_groups:
                group["lr"] = float(schedule(epoch)[k])
            perm = torch.randperm(n, generator=g)
            for start in range(0, n, bs):
                idx = perm[start : start + bs]
                o.zero_grad()
                F.cross_entropy(m(x[idx]), y[idx]).backward()
                o.step()
            with torch.no_grad():
                assert abs(F.cross_entropy(m(x), y).item() - hist.train_loss[epoch + 1, k].item()) <= TOL
                assert abs(F.cross_entropy(m(xt), yt).item() - hist.test_loss[epoch + 1, k].item()) <= TOL
    assert_members_equal(ens, singles)


def test_chunked_evaluation_equals_full_batch():
    ens = Ensemble([mlp(k) for k in range(3)])
    x, y = data(11, (12,), seed=3)
    full = ens.losses(x, y).detach()
    assert torch.allclose(evaluate_ensemble(ens, x, y, batch_size=4), full, atol=TOL, rtol=0)


def test_members_are_independent():
    """Changing member 0's data changes member 0 only; the others stay bit-for-bit the same."""
    E = 3

    def run(perturb: float) -> Ensemble:
        ens = Ensemble([mlp(k) for k in range(E)])
        opt = EnsembleSGD(ens, [0.1, 0.2, 0.3], momentum=0.9, weight_decay=1e-3)
        for step in range(3):
            x = torch.stack([data(5, (12,), seed=10 * step + k)[0] for k in range(E)])
            y = torch.stack([data(5, (12,), seed=10 * step + k)[1] for k in range(E)])
            x[0] += perturb
            opt.zero_grad()
            ens.losses(x, y, per_member=True).sum().backward()
            opt.step()
        return ens

    a, b = run(0.0), run(0.5)
    for name, ta in a.stacked_params().items():
        tb = b.stacked_params()[name]
        assert torch.equal(ta[1:], tb[1:]), name
    assert not torch.equal(a.stacked_params()["1.weight"][0], b.stacked_params()["1.weight"][0])


def test_bad_input():
    with pytest.raises(ValueError, match="empty"):
        Ensemble([])
    with pytest.raises(ValueError, match="sequence"):
        Ensemble(mlp(0))
    with pytest.raises(ValueError, match=r"models\[1\].*architecture"):
        Ensemble([nn.Linear(3, 4), nn.Linear(3, 5)])
    with pytest.raises(ValueError, match=r"models\[1\] is a Sequential"):
        Ensemble([nn.Linear(3, 4), nn.Sequential(nn.Linear(3, 4))])
    with pytest.raises(ValueError, match=r"models\[1\] must be an nn.Module"):
        Ensemble([nn.Linear(3, 4), "net"])
    with pytest.raises(ValueError, match="randomness"):
        Ensemble([nn.Linear(3, 4)], randomness="sometimes")
    with pytest.raises(ValueError, match="seeds"):
        Ensemble.from_factory(mlp, 0)
    with pytest.raises(ValueError, match="count"):
        Ensemble.from_name("choromanska-10", 0)
    ens = Ensemble([mlp(k) for k in range(3)])
    with pytest.raises(ValueError, match="leading dimension E=3"):
        ens(torch.randn(2, 4, 12, dtype=torch.float64), per_member=True)
    with pytest.raises(ValueError, match=r"k must be an int in \[-3, 2\], got 3"):
        ens.member(3)
    with pytest.raises(ValueError, match="lr must be a float or 3 values"):
        EnsembleSGD(ens, [0.1, 0.2])
    with pytest.raises(ValueError, match="lr must be finite and >= 0"):
        EnsembleSGD(ens, [0.1, -0.2, 0.1])
    with pytest.raises(ValueError, match="momentum"):
        EnsembleSGD(ens, 0.1, momentum=-1.0)
    with pytest.raises(ValueError, match="nesterov"):
        EnsembleSGD(ens, 0.1, nesterov=True)
    opt = EnsembleSGD(ens, 0.1)
    x, y = data(4, (12,), seed=0)
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        train_ensemble(ens, opt, (x, y), epochs=0)
    with pytest.raises(ValueError, match="shuffle"):
        train_ensemble(ens, opt, (x, y), shuffle="random")
    with pytest.raises(ValueError, match="optimizer"):
        train_ensemble(Ensemble([mlp(0)]), opt, (x, y))
    with torch.no_grad():
        ens.stacked_params()["3.bias"][1] = float("nan")
    with pytest.raises(FloatingPointError, match=r"epoch 0 for members \[1\]"):
        train_ensemble(ens, opt, (x, y))
