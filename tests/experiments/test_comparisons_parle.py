"""The ``parle`` comparison: replica stepping, data splits, the degenerate cases, quick runs, torchrun."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from deeplandscape import nets
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import parle as P
from deeplandscape.experiments.spec import resolve_config
from deeplandscape.optim.elastic import ElasticSGD
from deeplandscape.optim.parle import Parle

from ._quick import run_quick

ROW_KEYS = {
    "model", "method", "metric", "seeds", "error_mean", "error_std", "val_error_mean", "val_error_std",
    "train_error_mean", "train_loss_mean", "effective_epochs", "hessian_top",
    "hessian_top_std", "hessian_trace", "hessian_trace_std", "tuned", "factor", "replicas", "data_fraction",
    "setting", "train_error", "train_error_std", "epochs_per_replica",
}  # fmt: skip


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
    subsets = P.replica_subsets(len(d.y), replicas, fraction, seed=0)
    stepper = P.ReplicaStepper(models, opt, d, subsets, list(range(replicas)), batch_size=8, seed=0)
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
        subsets = P.replica_subsets(len(d.y), replicas, fraction, seed=3)
        stepper = P.ReplicaStepper(models, opt, d, subsets, list(range(replicas)), batch_size=8, seed=3)
        for _ in range(3):  # 20 samples per replica: a pass is 3 batches
            stepper(d.x[:1], d.y[:1])
        seen = torch.stack(stepper.seen)
        assert seen.any(0).all(), "every sample lies in some Ξ^a"
        assert all(int(s.sum()) == math.ceil(fraction * 40) for s in seen)
        overlap = int(seen.sum(0).max())
        assert (overlap == 1) if disjoint else (overlap > 1)


def test_replica_subsets_reject_bad_fractions():
    with pytest.raises(ValueError, match="Invalid fraction"):
        P.replica_subsets(30, 3, 0.2, seed=0)
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
    run = P.train_replicas(config, "small-lenet", method, replicas=1, fraction=1.0, seed=2, factor=1.0, d=d)

    model = nets.get("small-lenet", seed=2)
    sgd = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    curves = C.train(C.single_model_step(model, sgd), lambda: C.evaluate(model, d), d, epochs=2,
                     batch_size=config["batch_size"], seed=2, evaluations=1)  # fmt: skip
    for a, b in zip(run.models[0].parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert run.curves.effective_epochs[-1] == curves.effective_epochs[-1]


def test_each_replica_gets_the_budget():
    """replica_budget=each: n replicas together compute n × the budget of per-sample gradients, i.e. each
    replica makes ``epochs`` passes over the (full) data."""
    overrides = ["train_subset=64", "epochs=1", "evaluations=1", "replica_budget=each", "batch_size=16"]
    config = resolve_config(P.EXPERIMENT, "quick", 0, overrides)
    d = C.load_images(config)
    method = P.method_for(config, "elastic-sgd", len(d.y))
    run = P.train_replicas(config, "small-lenet", method, replicas=2, fraction=1.0, seed=0, factor=1.0, d=d)
    assert run.curves.effective_epochs[-1] == 2.0
    assert run.stepper.steps == 64 // 16 and all(bool(s.all()) for s in run.stepper.seen)


@pytest.mark.slow
def test_quick_run_writes_every_key(tmp_path):
    results, out = run_quick(
        P.EXPERIMENT, tmp_path,
        ["methods=parle,sgd", "splits=2:0.5", "split_methods=parle,elastic-sgd,sgd", "train_subset=128",
         "evaluations=1", "hessian_samples=16", "hessian_probes=1", "L=2"],
    )  # fmt: skip
    rows = results["runs"]
    assert [(r["method"], r["setting"]) for r in rows] == [
        ("Parle", "full data"), ("SGD", "full data"), ("Parle", "n = 2, 50% each"),
        ("Elastic-SGD", "n = 2, 50% each"), (P.SUBSET_LABEL, "n = 2, 50% each"),
    ]  # fmt: skip
    n_train = 128
    for r in rows:
        assert set(r) == ROW_KEYS
        assert all(math.isfinite(r[k]) for k in ("error_mean", "train_error", "hessian_top", "hessian_trace"))
        assert r["train_error"] == r["train_error_mean"]
        # the budget is reached, overshooting by less than one step of all replicas
        assert 1.0 <= r["effective_epochs"] < 1.0 + r["replicas"] * 32 / n_train
        # passes over a replica's own data: total gradients / (n |Ξ^a|)
        size = math.ceil(r["data_fraction"] * n_train) if r["method"] == P.SUBSET_LABEL else (
            r["data_fraction"] * n_train * r["replicas"])  # fmt: skip
        assert r["epochs_per_replica"] == pytest.approx(r["effective_epochs"] * n_train / size)
    assert rows[0]["replicas"] == 3 and rows[1]["replicas"] == 1 and rows[2]["replicas"] == 2
    assert (out / "parle.npz").exists()


@pytest.mark.slow
def test_torchrun_gives_the_single_process_numbers(tmp_path):
    """Parle over 3 processes (torchrun, gloo, one replica each, split data, dropout) and over 3 replicas in
    one process: the same master weights (to the rounding of the all_reduce) and the same errors."""
    overrides = ["train_subset=48", "epochs=2", "L=2", "batch_size=8", "evaluations=2", "hessian_samples=8",
                 "hessian_probes=1"]  # fmt: skip
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3",
           "-m", "deeplandscape.experiments.parle", "--method", "parle", "--fraction", "0.5", "--seed", "1",
           "--scale", "quick", "--out", str(tmp_path), *overrides]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    master = torch.load(tmp_path / "master.pt", weights_only=True)
    multi = json.loads((tmp_path / "run.json").read_text())

    config = resolve_config(P.EXPERIMENT, "quick", 0, overrides)
    d = C.load_images(config)
    method = P.method_for(config, "parle", len(d.y))
    run = P.train_replicas(config, "lenet-parle", method, replicas=3, fraction=0.5, seed=1, factor=1.0, d=d)
    single = run.optimizer.master_weights()
    assert multi["steps"] == run.stepper.steps and run.optimizer.steps >= 2 * config["L"]
    diff = max(float((a - b).abs().max()) for a, b in zip(master, single, strict=True))
    assert diff <= 1e-6, diff
    init = list(nets.get("lenet-parle", seed=1).parameters())
    moved = max(float((a - p.detach()).abs().max()) for a, p in zip(single, init, strict=True))
    assert moved > 1e-3, "the master moved away from the initialization"
    for key in ("test_error", "val_error", "train_error", "effective_epochs"):
        assert multi["curves"][key] == pytest.approx(getattr(run.curves, key).tolist(), abs=1e-9), key
