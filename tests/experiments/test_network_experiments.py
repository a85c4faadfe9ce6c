"""The network experiments' --quick runs: every promised file and key, and what is robust at that scale."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape import data as dl_data
from deeplandscape import nets
from deeplandscape.analysis import exact_hessian
from deeplandscape.experiments import choromanska_nets, gd_vs_sgd_nets, teacher_student
from deeplandscape.experiments.spec import resolve_config

from ._quick import run_quick


def _run(experiment, tmp_path, overrides=()):
    results, out = run_quick(experiment, tmp_path, overrides)
    assert list(out.glob("*.npz"))
    return results, out


def test_choromanska_nets(tmp_path):
    exp = choromanska_nets.EXPERIMENT
    config = resolve_config(exp, "quick", 0)
    results, out = _run(exp, tmp_path)
    rows = results["widths"]
    assert [w["n1"] for w in rows] == config["widths"]
    for w in rows:
        for key in (
            "n1",
            "nets",
            "test_loss_mean",
            "test_loss_std",
            "train_test_pearson",
            "mean_normalized_index",
        ):
            assert key in w
        assert w["nets"] == config["nets"]
        assert math.isfinite(w["train_test_pearson"]) and -1.0 <= w["train_test_pearson"] <= 1.0
        # Every network learned: below the loss of a uniform guess over 10 classes.
        assert w["test_loss_mean"] < math.log(10)
        if w["n1"] in config["hessian_widths"]:
            assert w["hessian_nets"] == config["hessian_nets"]
            assert 0.0 <= w["mean_normalized_index"] <= 1.0
        else:
            assert w["mean_normalized_index"] is None
    assert (out / "normalized_index.png").exists()
    # Choromanska Fig. 3 (right) / Fig. 9: the spread of the scaled test loss falls as n1 grows (at quick
    # scale: n1 = 5 against n1 = 25, where the measured ratio is about 0.45).
    assert rows[-1]["scaled_test_loss_std"] < rows[0]["scaled_test_loss_std"]
    # The Pearson coefficient is that of the saved per-network losses.
    saved = np.load(out / "choromanska_nets.npz")
    n1 = rows[0]["n1"]
    rho = np.corrcoef(saved[f"n{n1}_train_loss"], saved[f"n{n1}_test_loss"])[0, 1]
    assert abs(rho - rows[0]["train_test_pearson"]) < 1e-12
    _check_annealing(config, results, out)


def _check_annealing(config, results, out):
    """Choromanska §5.1 / Fig. 6 at quick scale: ternary weights, SA lowers its loss, and the reported test
    accuracies are those of the saved networks (recomputed with ordinary modules)."""
    rows = results["annealing"]
    assert [a["n1"] for a in rows] == config["anneal_widths"]
    assert (out / "annealing.png").exists()
    saved = np.load(out / "annealing.npz")
    splits = dl_data.load("digits", seed=0)
    xt, yt = ((splits.test.x + 1) / 2).flatten(1).double(), splits.test.y
    for a in rows:
        for key in ("n1", "sa_test_accuracy", "sgd_test_accuracy", "accuracy_drop"):
            assert key in a
        n1, count = a["n1"], config["anneal_nets"]
        w1, w2 = saved[f"n{n1}_sa_w1"], saved[f"n{n1}_sa_w2"]
        assert w1.shape == (count, n1, 65) and w2.shape == (count, 10, n1 + 1)
        assert set(np.unique(w1)) | set(np.unique(w2)) <= {-1, 0, 1}
        assert (saved[f"n{n1}_sa_train_loss"] <= saved[f"n{n1}_sa_initial_loss"]).all()
        assert a["accuracy_drop"] == a["sgd_test_accuracy"] - a["sa_test_accuracy"]
        # The SA accuracy from the saved weights through a Linear–ReLU–Linear module.
        accs = []
        for k in range(count):
            net = nn.Sequential(nn.Linear(64, n1), nn.ReLU(), nn.Linear(n1, 10)).double()
            with torch.no_grad():
                net[0].weight.copy_(torch.as_tensor(w1[k, :, :-1]))
                net[0].bias.copy_(torch.as_tensor(w1[k, :, -1]))
                net[2].weight.copy_(torch.as_tensor(w2[k, :, :-1]))
                net[2].bias.copy_(torch.as_tensor(w2[k, :, -1]))
                accs.append(float((net(xt).argmax(1) == yt).double().mean()))
        assert abs(np.mean(accs) - a["sa_test_accuracy"]) < 1e-12
        # Both methods learn: far above the 10% of chance (measured at quick scale: SA 0.79, SGD 0.84).
        assert a["sa_test_accuracy"] > 0.5 and a["sgd_test_accuracy"] > 0.5


def test_choromanska_annealing_switch():
    exp = choromanska_nets.EXPERIMENT
    on = exp.units(resolve_config(exp, "quick", 0))
    off = exp.units(resolve_config(exp, "quick", 0, ["anneal=false"]))
    assert [u.key for u in on] == [u.key for u in off] + [f"anneal-n{n}" for n in [10]]
    assert [u.key for u in off] == [f"n{n}" for n in resolve_config(exp, "quick", 0)["widths"]]


def test_choromanska_dense_hessian_matches_exact_hessian():
    """The experiment's vmapped Hessian equals deeplandscape.analysis.exact_hessian (float64)."""
    model = nets.get("choromanska-10", seed=3, n1=4, in_features=12).double()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (40,), generator=g)
    ours = choromanska_nets.dense_hessian(model, x, y, chunk_size=7)
    oracle = exact_hessian(model, F.cross_entropy, (x, y)).matrix
    torch.testing.assert_close(ours, oracle, rtol=1e-10, atol=1e-12)


def test_choromanska_power_law_fit_recovers_parameters():
    """E[L] = C e^{α n1^β} sampled exactly at five widths gives back (C, α, β)."""
    widths = np.array([10.0, 25.0, 50.0, 100.0, 250.0])
    means = 0.7 * np.exp(-1.5 * widths**0.25)
    c, alpha, beta = choromanska_nets.fit_exponential_power_law(widths, means)
    assert abs(beta - 0.25) < 0.006 and abs(alpha + 1.5) < 0.05 and abs(c - 0.7) < 0.05
    assert choromanska_nets.fit_exponential_power_law(widths[:3], means[:3]) is None


def test_teacher_student(tmp_path):
    exp = teacher_student.EXPERIMENT
    config = resolve_config(exp, "quick", 0)
    results, out = _run(exp, tmp_path)
    rows = results["students"]
    pairs = [config["students"][i : i + 2] for i in range(0, len(config["students"]), 2)]
    assert [w["sizes"][1:3] for w in rows] == pairs
    saved = np.load(out / "teacher_student.npz")
    for w in rows:
        for key in ("sizes", "train_cost", "test_cost", "test_errors"):
            assert key in w
        assert w["sizes"][0] == 64 and w["sizes"][-1] == 10
        # SGD lowers the cost from the initialization, and it stays positive (a KL divergence).
        assert 0.0 < w["train_cost"] < w["initial_train_cost"]
        per_net = saved[f"s{w['sizes'][1]}_{w['sizes'][2]}_train_cost"]
        assert per_net.size == config["nets"] and abs(per_net.mean() - w["train_cost"]) < 1e-12
        assert 0 <= w["test_errors"] <= w["test_samples"] and math.isfinite(w["test_cost"])
    # The largest student fits the teacher better than the smallest (Sagun Table 1: training cost falls with
    # the student size).
    assert rows[-1]["train_cost"] < rows[0]["train_cost"]


def test_teacher_student_cost_is_zero_at_the_teacher():
    """KL(q ‖ p) vanishes when the student's logits equal the teacher's, and is positive otherwise."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 10, generator=g, dtype=torch.float64)
    q = torch.softmax(logits, -1)
    assert abs(float(teacher_student.kl_cost(logits, q))) < 1e-12
    other = logits + torch.randn(50, 10, generator=g, dtype=torch.float64)
    expected = (q * (q.log() - torch.log_softmax(other, -1))).sum(-1).mean()
    torch.testing.assert_close(teacher_student.kl_cost(other, q), expected)
    assert float(expected) > 0


def test_gd_vs_sgd_nets(tmp_path):
    exp = gd_vs_sgd_nets.EXPERIMENT
    config = resolve_config(exp, "quick", 0)
    results, out = _run(exp, tmp_path)
    runs = results["runs"]
    assert len(runs) == 4 and {(r["net"], r["method"]) for r in runs} == {
        (f"{a}-{b}", m) for a, b in zip(config["networks"][::2], config["networks"][1::2], strict=True)
        for m in ("GD", "SGD")
    }  # fmt: skip
    saved = np.load(out / "gd_vs_sgd_nets.npz")
    for r in runs:
        for key in ("net", "method", "train_cost", "test_cost", "test_errors"):
            assert key in r
        # Both methods lower the cost within the budget, and both take the same number of steps.
        assert r["train_cost"] < 0.5 * r["initial_train_cost"]
        assert r["steps"] == runs[0]["steps"]
        assert 0 <= r["test_errors"] <= r["test_samples"] and math.isfinite(r["test_cost"])
        curve = saved[f"{r['net']}_{r['method']}_train_curve"]
        assert curve.shape[1] == config["seeds"] and abs(curve[-1].mean() - r["train_cost"]) < 1e-12
    # GD and SGD start from the same initializations.
    for net in {r["net"] for r in runs}:
        a, b = (saved[f"{net}_{m}_train_curve"][0] for m in ("GD", "SGD"))
        np.testing.assert_array_equal(a, b)
