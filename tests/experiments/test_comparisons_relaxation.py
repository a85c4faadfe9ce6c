"""``relaxation``: quick runs write every key; every method starts from the same weights and descends."""

import math

import numpy as np
import pytest

from deeplandscape.experiments import relaxation
from deeplandscape.experiments.spec import resolve_config

from ._quick import run_quick

ROW_KEYS = (
    "model", "method", "seeds", "error_mean", "error_std", "effective_epochs", "hessian_top",
    "hessian_trace", "val_error_mean", "val_error_std", "train_loss_mean", "tuned", "factor",
)  # fmt: skip


def _check(tmp_path, overrides):
    results, out = run_quick(relaxation.EXPERIMENT, tmp_path, overrides)
    config = resolve_config(relaxation.EXPERIMENT, "quick", 0, overrides)
    methods = [relaxation.METHODS[k] for k in config["methods"].split(",")]
    rows = results["runs"]
    assert [(r["model"], r["method"]) for r in rows] == [("lenet", m.label) for m in methods]
    n = config["train_subset"]
    with np.load(out / "relaxation.npz") as data:
        starts = []
        for r, m in zip(rows, methods, strict=True):
            assert set(ROW_KEYS) <= set(r)
            assert r["tuned"] == m.tune and 0.0 <= r["error_mean"] <= 100.0
            for key in ("hessian_top", "hessian_trace"):
                assert math.isfinite(r[key])
            # the budget is met and overshot by less than one step (SAM: two evaluations of a batch)
            assert config["epochs"] <= r["effective_epochs"] < config["epochs"] + 2 * config["batch_size"] / n
            loss = data[f"lenet_{r['method']}_train_loss"]
            # enough outer updates for every method (HEAT/Entropy-SGD: L = 20): the training loss falls
            assert loss[0, -1] < loss[0, 0], r["method"]
            starts.append(loss[:, 0])
    # same initialization: at effective epoch 0 every method's reference weights are the initial weights
    for s in starts[1:]:
        np.testing.assert_allclose(s, starts[0], rtol=1e-6)
    report = (out / "report.md").read_text()
    assert "| lenet | SGD | 0.5 ± 0.02 @ 67 |" in report
    return rows


def test_quick_hj_sgd(tmp_path):
    _check(tmp_path, ["methods=hj,sgd", "epochs=2", "hessian_samples=16", "hessian_probes=2"])


@pytest.mark.slow
def test_quick_all_methods(tmp_path):
    rows = _check(tmp_path, ["epochs=5", "hessian_samples=16", "hessian_probes=2"])
    assert {r["method"] for r in rows} == {"Entropy-SGD", "HEAT", "HJ", "SGD", "SAM"}


def test_paper_table_beside_ours():
    rows = [{"model": "lenet", "method": "HEAT", "val_error_mean": 1.5, "val_error_std": 0.25,
             "effective_epochs": 10.0}]  # fmt: skip
    text = relaxation.paper_table(rows)
    assert "0.59 ± 0.02 @ 75" in text and "1.5 ± 0.25 @ 10" in text
