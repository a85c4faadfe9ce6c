"""The ``ensemble-alignment`` experiment: averages of independently trained networks and their overlap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape import nets
from deeplandscape.analysis.alignment import permute_hidden_units
from deeplandscape.experiments import ensemble_alignment as E

from ._quick import run_quick

MODEL_KEYS = {"kind", "networks", "error", "val_error", "train_error", "error_running_stats"}


def test_average_of_a_permuted_copy_is_the_network():
    """A network and a copy with its hidden units permuted compute the same function: the aligned average
    of the two is the network itself (weights and outputs), the naive average is not."""
    torch.manual_seed(0)
    model = nets.get("lenet", seed=0, channels=(4, 6), hidden=16).eval()
    layers = [m for m in E.sequential(model).modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    g = torch.Generator().manual_seed(1)
    perms = [torch.randperm(m.weight.shape[0], generator=g) for m in layers[:-1]]
    twin = nets.get("lenet", seed=0, channels=(4, 6), hidden=16).eval()
    twin.net = permute_hidden_units(E.sequential(model), perms)
    x = torch.randn(8, 1, 28, 28, generator=g)
    torch.testing.assert_close(twin(x), model(x), rtol=1e-5, atol=1e-5)

    aligned = E.averaged([model, twin], aligned=True)
    naive = E.averaged([model, twin], aligned=False)
    for a, b in zip(aligned.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(aligned(x), model(x), rtol=1e-5, atol=1e-5)
    assert float((naive(x) - model(x)).abs().max().detach()) > 1e-3


def test_sequential_rejects_other_modules():
    with pytest.raises(ValueError, match="Invalid model"):
        E.sequential(nn.LSTM(3, 4))


@pytest.mark.slow
def test_quick_run(tmp_path):
    """Every key; the degenerate j = 1 case; the robust claims of Thesis §5.0.1 at this scale: the naive
    average is far worse than the aligned average and than every member, and alignment raises the overlap
    with the reference network (it maximizes the matched inner products layer by layer)."""
    results, out = run_quick(E.EXPERIMENT, tmp_path, ["k=3", "hessian_samples=16", "hessian_probes=1"])
    k = 3
    assert set(results) == {
        "data", "model", "k", "runs", "models", "overlap", "by_count", "member_error_mean",
        "member_error_std", "member_train_error_mean", "member_hessian_top_mean", "member_hessian_trace_mean",
    }  # fmt: skip
    rows = results["models"]
    # `runs`: the rows every comparison has, consistent with `models`
    runs = results["runs"]
    kinds = ["ensemble", "naive-average", "aligned-average"]
    assert [r["method"] for r in runs] == ["SGD (each member)", *kinds]
    for r in runs:
        assert set(r) == {"model", "method", "seeds", "error_mean", "error_std", "effective_epochs",
                          "hessian_top", "hessian_trace"}  # fmt: skip
    assert runs[0]["error_mean"] == pytest.approx(results["member_error_mean"])
    assert runs[0]["hessian_top"] == pytest.approx(np.mean([r["hessian_top"] for r in rows[:k]]))
    assert [r["error_mean"] for r in runs[1:]] == [r["error"] for r in rows[k:]]
    assert runs[1]["effective_epochs"] == pytest.approx(k * runs[0]["effective_epochs"])
    assert [r["kind"] for r in rows] == ["member"] * k + ["ensemble", "naive-average", "aligned-average"]
    for r in rows:
        assert set(r) >= MODEL_KEYS
        assert all(0.0 <= r[key] <= 100.0 for key in ("error", "val_error", "train_error"))
    for r in rows[:k]:
        assert r["hessian_top"] > 0 and np.isfinite(r["hessian_trace"])
    by_kind = {r["kind"]: r["error"] for r in rows[k:]}
    members = [r["error"] for r in rows[:k]]

    # one network: its ensemble and its averages are the network itself
    first = results["by_count"][0]
    assert first["networks"] == 1
    assert first["ensemble"] == first["naive-average"] == first["aligned-average"] == members[0]
    assert results["by_count"][-1] == {"networks": k, **by_kind}

    assert by_kind["naive-average"] >= by_kind["aligned-average"] + 10.0
    assert by_kind["naive-average"] >= max(members) + 10.0
    assert by_kind["ensemble"] <= max(members)

    naive, aligned = np.array(results["overlap"]["naive"]), np.array(results["overlap"]["aligned"])
    for q in (naive, aligned):
        assert q.shape == (k, k)
        np.testing.assert_allclose(q, q.T)
        np.testing.assert_allclose(np.diag(q), 1.0)
    assert np.all(aligned[0, 1:] >= naive[0, 1:])
    assert results["overlap"]["aligned_mean"] >= results["overlap"]["naive_mean"]
    assert (out / "overlap.png").exists() and (out / "averages.png").exists()
