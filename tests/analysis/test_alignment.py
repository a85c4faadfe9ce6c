import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape.analysis.alignment import align, average_models, overlap_matrix, permute_hidden_units

from ._unchanged import assert_unchanged, snapshot


def _cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(2, 5, 3),
        nn.BatchNorm2d(5),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(5, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 7),
        nn.Tanh(),
        nn.Linear(7, 3),
    ).double()
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 2, 6, 6, dtype=torch.float64))  # non-trivial BatchNorm running statistics
    return model.eval()


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)).double()


def _random_permutations(model: nn.Module, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sizes = [m.weight.shape[0] for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][:-1]
    return [torch.randperm(n, generator=g) for n in sizes]


@pytest.mark.parametrize("factory", [_cnn, _mlp])
def test_alignment_recovers_a_known_permutation_exactly(factory):
    net = factory(0)
    perms = _random_permutations(net, 1)
    assert any(not torch.equal(p, torch.arange(len(p))) for p in perms)
    permuted = permute_hidden_units(net, perms)
    x = (
        torch.randn(5, 2, 6, 6, dtype=torch.float64)
        if factory is _cnn
        else torch.randn(5, 3, dtype=torch.float64)
    )
    torch.testing.assert_close(permuted(x), net(x), rtol=1e-12, atol=1e-14)  # same function
    before_net, before_perm = snapshot(net), snapshot(permuted)
    result = align(net, permuted)
    assert_unchanged(net, before_net)
    assert_unchanged(permuted, before_perm)
    for found, used in zip(result.permutations, perms, strict=True):
        # unit i of the aligned copy is unit found[i] of the permuted net, i.e. the inverse permutation
        assert torch.equal(found, torch.argsort(used))
    for key, value in net.state_dict().items():
        assert torch.equal(result.model.state_dict()[key], value), key
    assert result.distance_after == 0.0 and result.distance_before > 0
    assert result.overlap_after == pytest.approx(1.0, abs=1e-14)
    assert result.overlap_before < 1 - 1e-3


def test_aligned_average_of_a_permuted_copy_is_the_original_function():
    net = _cnn(0)
    permuted = permute_hidden_units(net, _random_permutations(net, 2))
    x = torch.randn(7, 2, 6, 6, dtype=torch.float64)
    aligned = average_models([net, permuted], aligned=True)
    naive = average_models([net, permuted])
    assert torch.equal(aligned(x), net(x))
    assert not torch.allclose(naive(x), net(x), atol=1e-3)
    # the naive average is the coordinate-wise mean, buffers included
    for key, value in naive.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (net.state_dict()[key] + permuted.state_dict()[key]) / 2)


def test_overlap_matrix_is_symmetric_with_unit_diagonal_and_matches_definition():
    nets = [_mlp(s) for s in range(4)]
    nets.append(permute_hidden_units(nets[0], _random_permutations(nets[0], 3)))
    before = [snapshot(n) for n in nets]
    overlap = overlap_matrix(nets)
    average_models(nets, aligned=True)
    for net, snap in zip(nets, before, strict=True):
        assert_unchanged(net, snap)
    for q in (overlap.before, overlap.after):
        assert q.shape == (5, 5)
        np.testing.assert_array_equal(q, q.T)
        np.testing.assert_array_equal(np.diag(q), np.ones(5))
        assert np.all(np.abs(q) <= 1 + 1e-12)
    xa = torch.cat([p.detach().reshape(-1) for p in nets[1].parameters()])
    xb = torch.cat([p.detach().reshape(-1) for p in nets[2].parameters()])
    assert overlap.before[1, 2] == pytest.approx(float(xa @ xb / (xa.norm() * xb.norm())), rel=1e-12)
    assert overlap.after[0, 4] == pytest.approx(1.0, abs=1e-12)  # the permuted copy aligns back exactly
    assert overlap.before[0, 4] < 0.99
    assert overlap_matrix(nets, aligned=False).after is None


def test_alignment_rejects_unsupported_or_mismatched_models():
    with pytest.raises(ValueError, match=r"supports nn\.Sequential.*got Linear"):
        align(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="module 1 is a LSTM"):
        align(nn.Sequential(nn.Linear(2, 2), nn.LSTM(2, 2)), nn.Sequential(nn.Linear(2, 2), nn.LSTM(2, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        align(nn.Sequential(nn.Linear(2, 2)), nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="model 1 differs"):
        align(
            _mlp(0),
            nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)).double(),
        )
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 2, 1))
    with pytest.raises(ValueError, match="grouped convolution"):
        align(grouped, grouped)
    with pytest.raises(ValueError, match=r"permutations\[0\]: not a permutation"):
        permute_hidden_units(_mlp(0), [torch.tensor([0, 0, 1, 2, 3, 4]), torch.arange(5)])
    with pytest.raises(ValueError, match="2 hidden layers"):
        permute_hidden_units(_mlp(0), [torch.arange(6)])
    with pytest.raises(ValueError, match="non-empty sequence"):
        average_models([])


def test_shared_weights_are_refused_rather_than_permuted_into_another_function():
    """Permuting the units of a network whose layers share a weight (tied, or one module applied twice)
    cannot keep the function: a clear error instead of a silently different network."""
    torch.manual_seed(0)
    tied = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    tied[2].weight = tied[0].weight
    layer = nn.Linear(4, 4)
    reused = nn.Sequential(layer, nn.ReLU(), layer, nn.ReLU(), nn.Linear(4, 2))
    perms = [torch.tensor([1, 0, 2, 3]), torch.tensor([0, 1, 3, 2])]
    for model, match in [(tied, "parameter 2.weight is tied to 0.weight"), (reused, "module 2 is module 0")]:
        with pytest.raises(ValueError, match=match):
            permute_hidden_units(model, perms)
        with pytest.raises(ValueError, match=match):
            align(model, model)
