"""The ``ensemble-alignment`` experiment: averages of independently trained networks and their overlap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape import nets
from deeplandscape.analysis.alignment import permute_hidden_units
from deeplandscape.experiments import ensemble_alignment as E
from deeplandscape.experiments.claims import HELD, NOT_CHECKED, NOT_HELD, UNDECIDABLE, RunData
from deeplandscape.rundir import save_npz

from ._quick import run_quick


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


# ---------------------------------------------------------------------------------------------- claims

N_TEST, K, GROUPS = 1000, 4, 3


def _errs(rate: float, rows: int, seed: int, shift: float = 0.002) -> np.ndarray:
    """(rows, N_TEST) mistakes at ``rate`` (+ ``shift`` per row); common random numbers across kinds."""
    u = np.random.default_rng(seed).random((rows, N_TEST))
    return (u < rate + shift * np.arange(rows)[:, None]).astype(np.float64)


def fake_run(tmp_path, *, member=0.05, ensemble=0.04, naive=0.88, aligned=0.08, overlaps=None):
    """A run directory: ``results.json`` fields and ``ensemble_alignment.npz`` arrays with these error rates
    (members, and per group the ensemble and the two averages) and aligned overlaps with the first network."""
    overlaps = overlaps if overlaps is not None else [[0.30, 0.31, 0.305]] * GROUPS
    arrays, groups = {}, []
    for g in range(GROUPS):
        arrays[f"g{g}_members_wrong"] = _errs(member, K, g)
        arrays[f"g{g}_ensemble_wrong"] = _errs(ensemble, 1, g)[0]
        arrays[f"g{g}_naive_wrong"] = _errs(naive + 0.01 * g, 1, 100 + g)[0]
        arrays[f"g{g}_aligned_wrong"] = _errs(aligned + 0.002 * g, 1, g)[0]
        groups.append({"group": g, "overlap_with_first": overlaps[g]})
    save_npz(tmp_path / E.NPZ, **arrays)
    members = np.concatenate([arrays[f"g{g}_members_wrong"] for g in range(GROUPS)])
    results = {"groups": GROUPS, "k": K, "classes": 10, "member_error_mean": 100 * float(members.mean()),
               "averages": groups}  # fmt: skip
    return RunData(results, {}, tmp_path)


def statuses(run):
    return {c.id: c.evaluate(run).status for c in E.CLAIMS}


def test_claims_hold(tmp_path):
    run = fake_run(tmp_path)
    assert statuses(run) == {c.id: HELD for c in E.CLAIMS}
    # the ensemble's statistic against a direct computation: ensemble − members, in points
    arrays = run.arrays(E.NPZ)
    ens = np.mean([arrays[f"g{g}_ensemble_wrong"].mean() for g in range(GROUPS)])
    mem = np.mean([arrays[f"g{g}_members_wrong"].mean() for g in range(GROUPS)])
    verdict = E.CLAIMS[2].evaluate(run)
    assert verdict.statistic.estimate == pytest.approx(100 * (ens - mem))
    # the ratio aligned/naive against the pooled error rates
    naive = np.mean([arrays[f"g{g}_naive_wrong"].mean() for g in range(GROUPS)])
    aligned = np.mean([arrays[f"g{g}_aligned_wrong"].mean() for g in range(GROUPS)])
    assert E.CLAIMS[1].evaluate(run).statistic.estimate == pytest.approx(aligned / naive)


@pytest.mark.parametrize(
    ("claim", "edit"),
    [
        ("ensemble-alignment.naive-near-chance", {"naive": 0.5}),
        ("ensemble-alignment.naive-far-worse", {"aligned": 0.7, "naive": 0.9}),
        ("ensemble-alignment.ensemble-no-worse", {"ensemble": 0.09}),
        ("ensemble-alignment.overlap-far", {"overlaps": [[0.8, 0.81, 0.805]] * GROUPS}),
        ("ensemble-alignment.overlap-similar", {"overlaps": [[0.1, 0.3, 0.45]] * GROUPS}),
    ],
)
def test_each_claim_does_not_hold(tmp_path, claim, edit):
    got = statuses(fake_run(tmp_path, **edit))
    expected = {c.id: NOT_HELD if c.id == claim else HELD for c in E.CLAIMS}
    if claim == "ensemble-alignment.naive-far-worse":  # the naive average is at 90%, the claim on it holds
        expected["ensemble-alignment.naive-near-chance"] = HELD
    assert got == expected, got


def test_straddling_and_missing(tmp_path):
    """An interval that contains the bound is not decided; a run without the arrays is not checked."""
    run = fake_run(tmp_path, naive=0.795)  # accuracy ≈ 20%: the bound of 2× chance
    assert E.CLAIMS[0].evaluate(run).status == UNDECIDABLE
    run = fake_run(tmp_path, ensemble=0.051)  # ensemble ≈ member + 0.1 point: around the margin 0.1
    assert E.CLAIMS[2].evaluate(run).status in (UNDECIDABLE, HELD)
    assert E.CLAIMS[2].evaluate(RunData(run.results, {}, None)).status == NOT_CHECKED


def test_one_group_gives_no_interval(tmp_path):
    """One group of networks: the group-to-group variation of an average cannot be estimated."""
    run = fake_run(tmp_path)
    one = RunData({**run.results, "groups": 1, "averages": run.results["averages"][:1]}, {}, tmp_path)
    assert E.CLAIMS[1].evaluate(one).status == UNDECIDABLE


@pytest.mark.slow
def test_quick_run(tmp_path):
    """Every key, the arrays the claims read consistent with results.json, the degenerate j = 1 case, and
    alignment raising the overlap with the reference network (it maximizes the matched inner products layer
    by layer)."""
    results, out = run_quick(
        E.EXPERIMENT, tmp_path, ["k=3", "groups=2", "hessian_samples=16", "hessian_probes=1"]
    )
    k = 3
    assert set(results) == {
        "data", "model", "k", "groups", "n_train", "n_test", "classes", "member_error_mean",
        "member_error_std", "member_train_error_mean", "member_train_error_std", "members", "averages",
        "by_count",
    }  # fmt: skip
    members = results["members"]
    assert [(r["group"], r["member"], r["seed"]) for r in members] == [
        (g, a, g * k + a) for g in range(2) for a in range(k)]  # fmt: skip
    for r in members:
        assert all(0.0 <= r[key] <= 100.0 for key in ("error", "val_error", "train_error"))
        assert r["hessian_top"] > 0 and np.isfinite(r["hessian_trace"])
    assert results["member_error_mean"] == pytest.approx(np.mean([r["error"] for r in members]))
    with np.load(out / E.NPZ) as npz:
        for g, group in enumerate(results["averages"]):
            assert npz[f"g{g}_members_wrong"].shape == (k, results["n_test"])
            for kind in ("naive", "aligned"):
                assert 100 * npz[f"g{g}_{kind}_wrong"].mean() == pytest.approx(group[kind]["error"])
            assert 100 * npz[f"g{g}_ensemble_wrong"].mean() == pytest.approx(group["ensemble"]["error"])
            naive, aligned = npz[f"g{g}_overlap_naive"], npz[f"g{g}_overlap_aligned"]
            for q in (naive, aligned):
                assert q.shape == (k, k)
                np.testing.assert_allclose(q, q.T)
                np.testing.assert_allclose(np.diag(q), 1.0)
            assert np.all(aligned[0, 1:] >= naive[0, 1:])
            assert group["overlap_with_first"] == pytest.approx(aligned[0, 1:].tolist())

    # one network: its ensemble and its averages are the network itself
    first = results["by_count"][0]
    assert first["networks"] == 1
    assert first["ensemble"] == first["naive-average"] == first["aligned-average"] == members[0]["error"]
    last = results["by_count"][-1]
    assert last["naive-average"] == results["averages"][0]["naive"]["error"]
    assert (out / "overlap.png").exists() and (out / "averages.png").exists()


@pytest.mark.parametrize("scale", ["quick", "default", "reference", "paper"])
def test_diagnostics_are_valid_runs(scale):
    from deeplandscape.experiments.spec import resolve_config

    for diagnostic in E.DIAGNOSTICS:
        config = resolve_config(E.EXPERIMENT, scale, 0, list(diagnostic.overrides))
        assert diagnostic.experiment == "ensemble-alignment" and E.units(config)
