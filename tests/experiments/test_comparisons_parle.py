"""The ``parle`` comparison: replica stepping, data splits, the budget accounting, the claims, torchrun."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape import nets
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import _replicas as R
from deeplandscape.experiments import parle as P
from deeplandscape.experiments.claims import HELD, NOT_CHECKED, NOT_HELD, UNDECIDABLE, RunData, Statistic
from deeplandscape.experiments.spec import resolve_config
from deeplandscape.optim.elastic import ElasticSGD
from deeplandscape.optim.parle import Parle
from deeplandscape.rundir import hold, save_npz

from ._quick import run_quick


def toy_data(n: int = 50, seed: int = 0) -> C.Tensors:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return C.Tensors(x, y, x[:5], y[:5], x[:5], y[:5])


def toy_models(n: int) -> list[nn.Module]:
    """n copies of one small network (replicas start from the same weights)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    return [copy.deepcopy(model) for _ in range(n)]


# ---------------------------------------------------------------------------------------------- stepping


@pytest.mark.parametrize(("replicas", "fraction"), [(3, 1.0), (3, 0.5), (2, 0.5)])
def test_stepper_counts_every_replicas_gradients(replicas, fraction):
    """A step computes one mini-batch gradient per replica: the count returned (n × batch, less at the end
    of a pass) equals the samples that went through the replicas' forward passes, counted by hooks."""
    d = toy_data()
    models = toy_models(replicas)
    forwarded = [0]

    def hook(module, inputs, output):
        forwarded[0] += inputs[0].shape[0]

    for m in models:
        m.register_forward_hook(hook)
    opt = Parle([m.parameters() for m in models], lr=0.05, L=3, gamma=10.0, rho=1.0)
    subsets = R.replica_subsets(len(d.y), replicas, fraction, seed=0)
    stepper = R.ReplicaStepper(models, opt, d, subsets, list(range(replicas)), batch_size=8, seed=0)
    counts = [stepper(d.x[:1], d.y[:1]) for _ in range(12)]
    assert sum(counts) == forwarded[0]
    assert opt.steps == stepper.steps == 12
    assert counts[0] == replicas * 8
    # a pass over Ξ^a of m samples is ⌈m/8⌉ batches, the last one of m − 8(⌈m/8⌉ − 1) samples
    m = len(subsets[0])
    assert sum(counts[: math.ceil(m / 8)]) == replicas * m


def test_split_replicas_see_disjoint_data():
    """n = 2 with 50% each is a disjoint partition: after a pass the replicas have seen disjoint halves
    covering the training set; n = 3 with 50% each: overlapping windows of ⌈N/2⌉ covering the set."""
    d = toy_data(n=40)
    for replicas, fraction, disjoint in ((2, 0.5, True), (3, 0.5, False)):
        models = toy_models(replicas)
        opt = ElasticSGD([m.parameters() for m in models], lr=0.05)
        subsets = R.replica_subsets(len(d.y), replicas, fraction, seed=3)
        stepper = R.ReplicaStepper(models, opt, d, subsets, list(range(replicas)), batch_size=8, seed=3)
        for _ in range(3):  # 20 samples per replica: a pass is 3 batches
            stepper(d.x[:1], d.y[:1])
        seen = torch.stack(stepper.seen)
        assert seen.any(0).all(), "every sample lies in some Ξ^a"
        assert all(int(s.sum()) == math.ceil(fraction * 40) for s in seen)
        overlap = int(seen.sum(0).max())
        assert (overlap == 1) if disjoint else (overlap > 1)


def test_replica_subsets_reject_bad_fractions():
    with pytest.raises(ValueError, match="Invalid fraction"):
        R.replica_subsets(30, 3, 0.2, seed=0)
    with pytest.raises(ValueError, match="Invalid splits"):
        P.parse_splits("3:0.1")
    assert P.parse_splits("none") == [] and P.parse_splits("3:0.5,6:0.25") == [(3, 0.5), (6, 0.25)]


def test_one_decoupled_replica_is_sgd():
    """Degenerate case: Elastic-SGD with n = 1 and ρ = ∞ is SGD with Nesterov momentum; through the replica
    stepper (replica 0's batch order is the run's) it must give the final weights of the SGD method run
    with the single-model step of the protocol, on a network without dropout."""
    config = resolve_config(P.EXPERIMENT, "quick", 0, ["train_subset=64", "epochs=2", "evaluations=1"])
    d = C.load_images(config)
    method = dataclasses.replace(P.method_for(config, "elastic-sgd", len(d.y)),
                                 kwargs={"lr": 0.05, "rho": math.inf})  # fmt: skip
    run = R.train_replicas(config, "small-lenet", method, replicas=1, fraction=1.0, seed=2, factor=1.0, d=d)

    model = nets.get("small-lenet", seed=2)
    sgd = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    curves = C.train(C.single_model_step(model, sgd), lambda: C.evaluate(model, d), d, epochs=2,
                     batch_size=config["batch_size"], seed=2, evaluations=1)  # fmt: skip
    for a, b in zip(run.models[0].parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert run.curves.effective_epochs[-1] == curves.effective_epochs[-1]
    assert run.curves.test_error[-1] == curves.test_error[-1]


# ---------------------------------------------------------------------------------------------- budgets


def test_every_replica_gets_the_whole_budget():
    """The papers' accounting (Thesis Remark 5.4): Parle over n replicas makes as many steps per replica as
    SGD, its replicas together n × SGD's gradients; Parle's outer steps are its steps // L."""
    overrides = ["train_subset=64", "epochs=2", "evaluations=1", "batch_size=8", "L=3"]
    config = resolve_config(P.EXPERIMENT, "quick", 0, overrides)
    d = C.load_images(config)
    runs = {
        key: R.train_replicas(config, "small-lenet", P.method_for(config, key, len(d.y), n), replicas=n,
                              fraction=1.0, seed=0, factor=1.0, d=d)
        for key, n in (("parle", 3), ("sgd", 1))
    }  # fmt: skip
    steps = 2 * 64 // 8
    assert runs["parle"].stepper.steps == runs["sgd"].stepper.steps == steps
    assert runs["parle"].curves.effective_epochs[-1] == 3 * runs["sgd"].curves.effective_epochs[-1] == 6.0
    assert all(bool(s.all()) for s in runs["parle"].stepper.seen)
    assert runs["parle"].extras["outer_steps"][-1] == steps // 3
    assert runs["sgd"].extras["outer_steps"][-1] == steps


def test_the_shared_view_is_the_run_with_1_over_n_of_the_budget():
    """Measured at 1/n of its budget, a run is the run given 1/n of the budget (the same trajectory up to
    there): the shared-budget view needs no second run. Checked against a run of budget/n, n = 3."""
    overrides = ["train_subset=48", "batch_size=8", "L=2", "evaluations=2"]
    config = resolve_config(P.EXPERIMENT, "quick", 0, [*overrides, "epochs=3"])
    short = resolve_config(P.EXPERIMENT, "quick", 0, [*overrides, "epochs=1"])
    d = C.load_images(config)
    method = P.method_for(config, "parle", len(d.y), 3)
    long_run = R.train_replicas(
        config, "small-lenet", method, replicas=3, fraction=1.0, seed=1, factor=1.0, d=d
    )
    short_run = R.train_replicas(
        short, "small-lenet", method, replicas=3, fraction=1.0, seed=1, factor=1.0, d=d
    )
    grid, marks = R.measured_marks(2, 3)
    assert (grid, marks) == (6, [2, 3, 6])
    shared = marks.index(grid // 3)
    for key in ("test_error", "train_error", "train_loss", "effective_epochs"):
        assert getattr(long_run.curves, key)[shared] == getattr(short_run.curves, key)[-1], key
    assert long_run.extras["steps"][shared] == short_run.extras["steps"][-1] == 48 // 8


def test_measured_marks():
    """The evenly spaced points end with the last, include 1/n of the budget, never the start."""
    for evaluations, n in ((1, 1), (1, 3), (2, 3), (4, 6), (3, 2)):
        grid, marks = R.measured_marks(evaluations, n)
        assert marks[-1] == grid and 0 not in marks and grid // n in marks
        assert grid % evaluations == 0 and grid % n == 0
        assert {grid * j // evaluations for j in range(1, evaluations + 1)} <= set(marks)


def test_minimum_outer_steps_and_drops():
    """29 outer steps: the first K with 0.9^K ≤ 5% (Remark 5.3's momentum forgotten); the Thesis's drops:
    SGD after 30, 60, 90 passes, Parle and Entropy-SGD after 2 epochs of L passes (§5.4.2)."""
    assert P.MIN_OUTER_STEPS == 29 and 0.9**29 <= 0.05 < 0.9**28
    config = resolve_config(P.EXPERIMENT, "default", 0, [])
    per_pass = math.ceil(1000 / 32)
    assert P.drop_milestones(config, "sgd", 1000) == [30 * per_pass, 60 * per_pass, 90 * per_pass]
    assert P.drop_milestones(config, "elastic-sgd", 1000) == [30 * per_pass, 60 * per_pass, 90 * per_pass]
    assert P.drop_milestones(config, "parle", 1000) == P.drop_milestones(config, "entropy-sgd", 1000)
    assert P.drop_milestones(config, "parle", 1000) == [2 * 25 * per_pass]
    assert P.drop_milestones({**config, "lr_drops": False}, "sgd", 1000) == []


def test_the_drop_acts_on_the_learning_rate():
    """A milestone inside the budget divides every replica's learning rate by 10 after that step."""
    overrides = ["train_subset=32", "epochs=2", "batch_size=8", "L=2", "evaluations=1"]
    config = resolve_config(P.EXPERIMENT, "quick", 0, overrides)
    d = C.load_images(config)
    method = P.method_for(config, "elastic-sgd", len(d.y), 2)
    run = R.train_replicas(config, "small-lenet", method, replicas=2, fraction=1.0, seed=0, factor=1.0, d=d,
                           milestones=[3])  # fmt: skip
    assert [g["lr"] for g in run.optimizer.param_groups] == pytest.approx([0.01, 0.01])


def test_authors_variant_in_the_experiment():
    """``variant=authors`` builds the authors' Parle with their initial coupling 1/ρ0 = 0.01·L·n."""
    config = resolve_config(P.EXPERIMENT, "default", 0, ["variant=authors"])
    method = P.method_for(config, "parle", 1000, 3)
    assert method.kwargs["variant"] == "authors" and method.kwargs["rho"] == pytest.approx(
        1 / (0.01 * 25 * 3)
    )
    assert "variant" not in P.method_for(config, "entropy-sgd", 1000).kwargs
    opt = R.build_optimizer(method, [m.parameters() for m in toy_models(3)], 1.0, 0)
    assert opt.variant == "authors" and opt.param_groups[0]["alpha"] == 0.75


# ---------------------------------------------------------------------------------------------- claims

N_TEST, N_TRAIN, SEEDS = 1500, 600, 3


def _wrong(rate: float, n: int, seed: int, shift: float) -> np.ndarray:
    """(seeds, n) per-sample mistakes; common random numbers across methods (a method with a lower rate
    errs on a subset of another's mistakes), the rate moved by ``shift`` per seed."""
    out = []
    for s in range(SEEDS):
        u = np.random.default_rng(1000 * seed + s).random(n)
        out.append((u < rate + shift * s).astype(np.float64))
    return np.stack(out)


def fake_run(tmp_path, spec: dict[tuple[str, str], dict]) -> RunData:
    """A run directory with ``results.json`` rows and ``parle.npz`` arrays: ``spec[(method, setting)]`` holds
    ``test`` and ``train`` error rates, ``outer`` steps, ``key``, ``top`` (Hessian)."""
    rows, arrays = [], {}
    for (method, setting), s in spec.items():
        test = _wrong(s["test"], N_TEST, 1, s.get("shift", 0.001))
        train = _wrong(s.get("train", 0.01), N_TRAIN, 2, 0.0005)
        rows.append({
            "model": "lenet-parle", "method": method, "key": s["key"], "setting": setting,
            "error_mean": 100 * float(test.mean()), "test_wrong": int(test.sum()), "test_trials": test.size,
            "outer_steps": s.get("outer", 40.0), "gamma0": s.get("gamma0"), "gamma": s.get("gamma"),
            "rho0": s.get("rho0"), "rho": s.get("rho"),
        })  # fmt: skip
        for name, a in (("test_per_sample", test), ("train_per_sample", train),
                        ("hessian_top", np.array(s.get("top", [5.0, 6.0, 7.0])))):  # fmt: skip
            arrays[P.array_key("lenet-parle", method, setting, name)] = a
    save_npz(tmp_path / "parle.npz", **arrays)
    results = {"data": "mnist", "n_train": N_TRAIN, "min_outer_steps": P.MIN_OUTER_STEPS,
               "scope_left": P.SCOPE_LEFT, "classes": 10, "runs": rows}  # fmt: skip
    return RunData(results, {}, tmp_path)


SPLIT = "n = 3, 50% each"
SCOPED = {"gamma0": 100.0, "gamma": 85.0, "rho0": 1.0, "rho": 0.85}  # shrunk by 15%: scoping acted


def good_spec() -> dict[tuple[str, str], dict]:
    """Every claim of the papers holds: Parle lowest and under-fitting, split runs beat the subset's SGD and
    Parle (split) beats SGD on all the data."""
    return {
        ("Parle", P.FULL): {"key": "parle", "test": 0.02, "train": 0.06, "top": [3.0, 3.5, 4.0], **SCOPED},
        ("Elastic-SGD", P.FULL): {"key": "elastic-sgd", "test": 0.05, "train": 0.01, "rho0": 1.0, "rho": 0.2},
        ("Entropy-SGD", P.FULL): {
            "key": "entropy-sgd",
            "test": 0.05,
            "train": 0.03,
            "gamma0": 100.0,
            "gamma": 85.0,
        },
        ("SGD", P.FULL): {"key": "sgd", "test": 0.05, "train": 0.01, "top": [6.0, 6.1, 6.5]},
        ("Parle", SPLIT): {"key": "parle", "test": 0.03},
        ("Elastic-SGD", SPLIT): {"key": "elastic-sgd", "test": 0.04},
        (P.SUBSET_LABEL, SPLIT): {"key": "sgd", "test": 0.10},
    }


def statuses(run: RunData) -> dict[str, str]:
    return {c.id: c.evaluate(run).status for c in P.CLAIMS}


def test_claims_hold(tmp_path):
    run = fake_run(tmp_path, good_spec())
    assert statuses(run) == {c.id: HELD for c in P.CLAIMS}
    verdict = P.CLAIMS[0].evaluate(run)
    # the deciding statistic: the paired difference Parle − Elastic-SGD, about −2 points, against a
    # direct computation of the mean over seeds and test images
    arrays = run.arrays("parle.npz")
    a = arrays[P.array_key("lenet-parle", "Parle", P.FULL, "test_per_sample")]
    b = arrays[P.array_key("lenet-parle", "Elastic-SGD", P.FULL, "test_per_sample")]
    assert verdict.statistic.estimate == pytest.approx(100 * (a.mean() - b.mean()))
    assert verdict.statistic.ci_high < 0 and verdict.warnings == ()


@pytest.mark.parametrize(
    ("claim", "edit"),
    [
        ("parle.lowest-error", {("Parle", P.FULL): {"test": 0.08}}),
        ("parle.underfits", {("Parle", P.FULL): {"train": 0.002}}),
        ("parle.split-beats-subset", {("Elastic-SGD", SPLIT): {"test": 0.14}}),
        ("parle.split-beats-full-sgd", {("Parle", SPLIT): {"test": 0.075}}),
        ("parle.flatter", {("Parle", P.FULL): {"top": [9.0, 9.5, 10.0]}}),
    ],
)
def test_each_claim_does_not_hold(tmp_path, claim, edit):
    """One edit breaks exactly one claim's criterion: that claim did not hold, the others still hold."""
    spec = good_spec()
    for key, values in edit.items():
        spec[key] = {**spec[key], **values}
    got = statuses(fake_run(tmp_path, spec))
    assert got == {c.id: NOT_HELD if c.id == claim else HELD for c in P.CLAIMS}, got


def test_within_the_tie_band_is_not_decidable(tmp_path):
    """Parle worse than SGD by less than the paper's standard deviation (2% of the error): not a verdict."""
    spec = good_spec()
    for method in ("Elastic-SGD", "Entropy-SGD", "SGD"):
        spec[(method, P.FULL)] = {**spec[(method, P.FULL)], "test": 0.04}
    spec[("Parle", P.FULL)] = {**spec[("Parle", P.FULL)], "test": 0.0401, "shift": 0.0012}
    verdict = P.CLAIMS[0].evaluate(fake_run(tmp_path, spec))
    assert verdict.status == UNDECIDABLE and "tie band" in verdict.reason


def test_lower_or_tie_against_its_bounds():
    """The rule itself on intervals: below 0 → held; above the tie → did not hold; else not decidable."""

    def stat(lo, hi):
        return Statistic("d", (lo + hi) / 2, lo, hi)

    assert P._lower_or_tie(stat(-0.5, -0.1), 0.2).status == HELD
    assert P._lower_or_tie(stat(0.25, 0.6), 0.2).status == NOT_HELD
    assert P._lower_or_tie(stat(-0.1, 0.1), 0.2).status == UNDECIDABLE
    assert P._lower_or_tie(stat(0.05, 0.15), 0.2).status == UNDECIDABLE  # shown worse, but within the tie


def test_guards(tmp_path):
    """Too few outer steps of Parle, a baseline at chance, or a scope that has not shrunk: the comparisons
    are not decidable, with a warning said once."""
    spec = good_spec()
    spec[("Parle", P.FULL)] = {**spec[("Parle", P.FULL)], "outer": 10.0}
    verdict = P.CLAIMS[0].evaluate(fake_run(tmp_path, spec))
    assert verdict.status == UNDECIDABLE and "10 outer steps, fewer than the 29" in verdict.reason
    assert len(verdict.warnings) == 1
    spec = good_spec()
    spec[(P.SUBSET_LABEL, SPLIT)] = {**spec[(P.SUBSET_LABEL, SPLIT)], "test": 0.9}
    verdict = P.CLAIMS[2].evaluate(fake_run(tmp_path, spec))
    assert verdict.status == UNDECIDABLE and "chance" in verdict.reason
    spec = good_spec()
    spec[("Parle", P.FULL)] = {**spec[("Parle", P.FULL)], "gamma": 95.0}  # scoping has not acted
    verdict = P.CLAIMS[1].evaluate(fake_run(tmp_path, spec))
    assert verdict.status == UNDECIDABLE and "γ_k/γ0 (its scoping, eq. (5.10)) is 0.95" in verdict.reason


def test_one_seed_and_missing_settings(tmp_path):
    spec = {k: v for k, v in good_spec().items() if k[1] == P.FULL}
    run = fake_run(tmp_path, spec)
    assert statuses(run)["parle.split-beats-subset"] == NOT_CHECKED
    single = RunData(run.results, {}, None)
    assert P.CLAIMS[0].evaluate(single).status == NOT_CHECKED  # no parle.npz


# ---------------------------------------------------------------------------------------------- runs


@pytest.mark.slow
def test_quick_run_writes_every_key(tmp_path):
    results, out = run_quick(
        P.EXPERIMENT, tmp_path,
        ["methods=parle,sgd", "splits=2:0.5", "split_methods=parle,elastic-sgd,sgd", "train_subset=128",
         "evaluations=1", "hessian_samples=16", "hessian_probes=1", "L=2"],
    )  # fmt: skip
    rows = results["runs"]
    assert [(r["method"], r["setting"]) for r in rows] == [
        ("Parle", P.FULL), ("SGD", P.FULL), ("Parle", "n = 2, 50% each"),
        ("Elastic-SGD", "n = 2, 50% each"), (P.SUBSET_LABEL, "n = 2, 50% each"),
    ]  # fmt: skip
    n_train, steps = 128, 128 // 32
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("error_mean", "train_error_mean", "hessian_top"))
        assert r["steps_per_replica"] == steps  # every replica, every method: the same steps
        assert r["effective_epochs"] == pytest.approx(r["replicas"] * steps * 32 / n_train)
        assert r["shared"]["steps_per_replica"] == steps / r["replicas"]
        assert "wall_seconds" not in r
    assert rows[0]["replicas"] == 2 and rows[1]["replicas"] == 1 and rows[2]["replicas"] == 2
    assert rows[0]["outer_steps"] == steps // 2
    with np.load(out / "parle.npz") as npz:
        assert npz[P.array_key("lenet-parle", "Parle", P.FULL, "test_per_sample")].shape == (1, 360)
        assert npz[P.array_key("lenet-parle", "Parle", P.FULL, "train_per_sample")].shape == (1, n_train)
    assert {t.id for t in P.tables(results, json.loads((out / "config.json").read_text()))} == {
        "table-5-1", "table-5-1-shared", "table-5-2", "runs"}  # fmt: skip


# ---------------------------------------------------------------------------------------------- torchrun


def test_torchrun_entry_refuses_bad_input_before_writing(tmp_path, capsys):
    """Every input is checked before the process group starts and before anything is written: a non-empty
    --out, a bad KEY=VALUE, a bad fraction each exit with status 2 and a message, leaving nothing."""
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "data.txt").write_text("keep")
    for argv, message in (
        (["--out", str(busy)], "is not empty"),
        (["--out", str(tmp_path / "a"), "L=0"], "Invalid L"),
        (["--out", str(tmp_path / "b"), "--fraction", "0.1"], "Invalid --fraction"),
        (["--out", str(tmp_path / "c"), "--model", "no-such-net"], "Invalid --model"),
    ):
        with pytest.raises(SystemExit) as raised:
            P.main(argv)
        assert raised.value.code == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
    assert (busy / "data.txt").read_text() == "keep" and len(list(busy.iterdir())) == 1


def test_torchrun_output_is_held(tmp_path):
    """--out held by another process is refused (the lock of deeplandscape.rundir); a failure inside the
    run removes what it wrote, and the directory it made."""
    out = tmp_path / "run"
    with hold(out), pytest.raises(Exception, match="in use"), P.held_out(out):
        pass
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError), P.held_out(fresh):
        (fresh / "config.json").write_text("{}")
        raise RuntimeError("interrupted")
    assert not fresh.exists()


@pytest.mark.slow
def test_torchrun_gives_the_single_process_numbers(tmp_path):
    """Parle over 3 processes (torchrun, gloo, one replica each, split data, dropout) and over 3 replicas in
    one process: the same master weights (to the rounding of the all_reduce) and the same errors."""
    overrides = ["train_subset=48", "epochs=4", "L=2", "batch_size=8", "evaluations=2", "hessian_samples=8",
                 "hessian_probes=1"]  # fmt: skip
    out = tmp_path / "run"
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3",
           "-m", "deeplandscape.experiments.parle", "--method", "parle", "--fraction", "0.5", "--seed", "1",
           "--scale", "quick", "--out", str(out), *overrides]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert sorted(p.name for p in out.iterdir()) == [".lock", "config.json", "master.pt", "run.json"]
    master = torch.load(out / "master.pt", weights_only=True)
    multi = json.loads((out / "run.json").read_text())

    config = resolve_config(P.EXPERIMENT, "quick", 0, overrides)
    d = C.load_images(config)
    method = P.method_for(config, "parle", len(d.y), 3)
    run = R.train_replicas(config, "lenet-parle", method, replicas=3, fraction=0.5, seed=1, factor=1.0, d=d,
                           milestones=P.drop_milestones(config, "parle", len(d.y)))  # fmt: skip
    single = run.optimizer.master_weights()
    assert multi["steps"] == run.stepper.steps and run.optimizer.steps >= 2 * config["L"]
    diff = max(float((a - b).abs().max()) for a, b in zip(master, single, strict=True))
    assert diff <= 1e-6, diff
    init = list(nets.get("lenet-parle", seed=1).parameters())
    moved = max(float((a - p.detach()).abs().max()) for a, p in zip(single, init, strict=True))
    assert moved > 1e-3, "the master moved away from the initialization"
    for key in ("test_error", "val_error", "train_error", "effective_epochs"):
        assert multi["curves"][key] == pytest.approx(getattr(run.curves, key).tolist(), abs=1e-9), key
    # a second run into the same directory is refused (each process exits with status 2, which torchrun
    # reports as its own failure), the first one's files untouched
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "is not empty" in again.stderr
    assert json.loads((out / "run.json").read_text()) == multi


@pytest.mark.parametrize("scale", ["quick", "default", "reference", "paper"])
def test_diagnostics_are_valid_runs(scale):
    """Every diagnostic's overrides make a valid configuration at every scale, and lengthen or change what
    the claims it explains compare."""
    for diagnostic in P.DIAGNOSTICS:
        assert diagnostic.experiment == "parle"
        config = resolve_config(P.EXPERIMENT, scale, 0, list(diagnostic.overrides))
        assert P.units(config)
        assert config["budget_factor"] > 1 or config["variant"] == "authors"
