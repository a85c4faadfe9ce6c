"""``relaxation``: quick runs write every key; every method starts from the same weights and descends."""

import math

import numpy as np
import pytest

from deeplandscape.experiments import relaxation
from deeplandscape.experiments.claims import HELD, NOT_CHECKED, NOT_HELD, UNDECIDABLE
from deeplandscape.experiments.spec import resolve_config

from . import _synthetic as syn
from ._quick import run_quick

ROW_KEYS = (
    "model", "method", "seeds", "error_mean", "error_std", "effective_epochs", "hessian_top",
    "hessian_trace", "val_error_mean", "val_error_std", "train_loss_mean", "tuned", "factor", "optimizer",
    "own_updates", "adaptive_top", "local_entropy", "local_entropy_excess", "gamma_star", "width_loss",
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
    # the own updates: one outer update per L steps (HJ: L = 5), one per step for SGD
    steps = config["epochs"] * math.ceil(n / config["batch_size"])
    for r in rows:
        expected = {"HJ": steps // 5, "Entropy-SGD": steps // 20, "HEAT": steps // 20, "SAM": steps // 2}.get(
            r["method"], steps
        )  # SAM: two gradients a step
        assert r["own_updates"] == expected, r["method"]
    return rows


def test_quick_hj_sgd(tmp_path):
    _check(tmp_path, ["methods=hj,sgd", "epochs=2", "hessian_samples=16", "hessian_probes=2"])


@pytest.mark.slow
def test_quick_all_methods(tmp_path):
    rows = _check(
        tmp_path,
        ["epochs=5", "hessian_samples=16", "hessian_probes=2", f"methods={','.join(relaxation.METHODS)}"],
    )
    assert {r["method"] for r in rows} == {"Entropy-SGD", "HEAT", "HJ", "SGD", "SAM"}


def test_paper_table_beside_ours(tmp_path):
    run = _run(tmp_path)
    config = {"data": "digits", "seeds": 5, "epochs": 3.0, "batch_size": 16, "lr_factors": [1.0],
              "hessian_samples": 128}  # fmt: skip
    (errors, _) = relaxation.tables(run.results, config)
    heat = next(r for r in errors.rows if r[1] == "HEAT")
    assert heat[2] == "0.59 ± 0.02 @ 75" and heat[3].startswith(
        f"{run.results['runs'][2]['error_mean']:.4g} ±"
    )


# ---------------------------------------------------------------------------------------------- claims


def _claim(name):
    return next(c for c in relaxation.CLAIMS if c.id == f"relaxation.{name}")


ERRORS = {"Entropy-SGD": 2.0, "HJ": 2.0, "HEAT": 4.0, "SGD": 2.0}
OPTIMIZERS = {"Entropy-SGD": "entropy-sgd", "HJ": "hj", "HEAT": "heat", "SGD": "sgd"}


def _run(tmp_path, errors=None, updates=None, models=("lenet",), curves=None, widths=None, heat=True):
    """Every method on ``models``, each with its own error rate; SGD's per-sample errors shared by the
    methods given the same rate (``errors[k] == 'sgd'``) so that their difference is exactly 0."""
    errors, updates, widths = {**ERRORS, **(errors or {})}, updates or {}, widths or {}
    methods = {}
    for model in models:
        base = syn.wrong(ERRORS["SGD"], 99)
        for i, (k, e) in enumerate(errors.items()):
            if k == "HEAT" and not heat:
                continue
            w = base if e == "sgd" else syn.wrong(e, i)
            arrays = {"val_error": (curves or {}).get(k, np.full((syn.SEEDS, 4), 5.0)),
                      **syn.width(widths.get(k, 1.0), seed=i)}  # fmt: skip
            default = syn.HEAT_UPDATES if k == "HEAT" else 1000
            methods[model, k] = syn.method(OPTIMIZERS[k], wrong_=w, updates=updates.get(k, default), **arrays)
    return syn.run(tmp_path, methods)


def test_similar(tmp_path):
    similar = _claim("similar")
    same = {"Entropy-SGD": "sgd", "HJ": "sgd", "SGD": "sgd"}
    assert similar.evaluate(_run(tmp_path, same)).status == HELD  # HEAT is the Thesis's exception on lenet
    assert similar.evaluate(_run(tmp_path, {**same, "HJ": 6.0})).status == NOT_HELD
    assert similar.evaluate(_run(tmp_path, {**same, "HJ": 2.0})).status == UNDECIDABLE
    # on mnistfc HEAT is part of the claim, and it needs the Thesis's number of HEAT updates
    fc = similar.evaluate(_run(tmp_path, {**same, "HEAT": "sgd"}, models=("mnistfc",), updates={"HEAT": 500}))
    assert fc.status == UNDECIDABLE and "500 updates" in fc.reason and fc.warnings
    assert similar.evaluate(_run(tmp_path, {**same, "HEAT": "sgd"}, models=("mnistfc",))).status == HELD


def test_heat_worst(tmp_path):
    heat_worst = _claim("heat-worst")
    assert heat_worst.evaluate(_run(tmp_path)).status == HELD
    assert heat_worst.evaluate(_run(tmp_path, {"HEAT": 1.0})).status == NOT_HELD
    assert heat_worst.evaluate(_run(tmp_path, {"HEAT": 2.0})).status == UNDECIDABLE
    few = heat_worst.evaluate(_run(tmp_path, updates={"HEAT": syn.HEAT_UPDATES - 1}))
    assert few.status == UNDECIDABLE and few.warnings and f"{syn.HEAT_UPDATES} that" in few.reason
    # HEAT not trained (the reference scale leaves it to the paper scale): not decidable, with the reason
    without = heat_worst.evaluate(_run(tmp_path, heat=False))
    assert without.status == UNDECIDABLE and "paper scale" in without.reason


def test_fastest(tmp_path):
    fastest = _claim("fastest")
    slow, quick = syn.per_seed(8.0, columns=4, spread=0.3), syn.per_seed(3.0, columns=4, spread=0.3, seed=1)
    others = {"HEAT": slow, "HJ": slow, "SGD": slow}
    assert (
        fastest.evaluate(_run(tmp_path, models=("mnistfc",), curves={"Entropy-SGD": quick, **others})).status
        == HELD
    )
    curves = {"Entropy-SGD": slow, **{k: quick for k in others}}
    assert fastest.evaluate(_run(tmp_path, models=("mnistfc",), curves=curves)).status == NOT_HELD
    curves = {"Entropy-SGD": syn.per_seed(8.0, columns=4, spread=0.3, seed=5), **others}
    assert fastest.evaluate(_run(tmp_path, models=("mnistfc",), curves=curves)).status == UNDECIDABLE
    # the area under the curve starts after the first point (the common initialization)
    run = _run(tmp_path, models=("mnistfc",), curves={"Entropy-SGD": quick, **others})
    level = relaxation._curve_level(run, "mnistfc", "Entropy-SGD")
    np.testing.assert_allclose(level, quick[:, 1:].mean(1))
    assert fastest.evaluate(_run(tmp_path)).status == NOT_CHECKED  # only lenet: the claim is about mnistfc


@pytest.mark.parametrize("name", ["wider", "sharpness"])
def test_width_claims(tmp_path, name):
    claim = _claim(name)
    methods = ("Entropy-SGD", "HJ") if name == "wider" else ("Entropy-SGD", "HJ", "HEAT")
    assert claim.evaluate(_run(tmp_path, widths=dict.fromkeys(methods, 0.5))).status == HELD
    assert (
        claim.evaluate(_run(tmp_path, widths={**dict.fromkeys(methods, 0.5), "HJ": 1.5})).status == NOT_HELD
    )
    assert (
        claim.evaluate(_run(tmp_path, widths={**dict.fromkeys(methods, 0.5), "HJ": 1.0})).status
        == UNDECIDABLE
    )


def test_methods_run_with_the_authors_settings():
    """Entropy-SGD and HJ of Ch. 4: the authors' PyTorch code's outer step (0.1 with Nesterov momentum 0.9);
    every method's step size ÷5 at the middle of the run."""
    import torch

    from deeplandscape import optim

    for key, cls in (("entropy-sgd", optim.EntropySGD), ("hj", optim.HJ)):
        opt = relaxation.METHODS[key].build([torch.zeros(2, requires_grad=True)], 1.0, seed=0)
        group, defaults = opt.param_groups[0], cls([torch.zeros(1, requires_grad=True)]).defaults
        assert (group["lr"], group["outer_momentum"], group["outer_nesterov"]) == (0.1, 0.9, True)
        for knob in ("inner_lr", "L", "gamma", "scoping", "alpha", "noise", "momentum", "nesterov"):
            assert group[knob] == defaults[knob], (key, knob)
    for m in relaxation.METHODS.values():
        assert (m.drops, m.drop_factor) == ((0.5,), 0.2)
