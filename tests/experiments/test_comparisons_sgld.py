"""``sgld``: the step size decays as η/(1+t)^b (drift and noise), quick runs write every key."""

import math

import numpy as np
import pytest
import torch

from deeplandscape import optim
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import entropy_sgd, sgld
from deeplandscape.experiments.claims import HELD, NOT_HELD, UNDECIDABLE
from deeplandscape.experiments.spec import resolve_config

from . import _synthetic as syn
from ._quick import run_quick


def _linear_model(dim):
    model = torch.nn.Linear(dim, 1, bias=False).double()
    torch.nn.init.zeros_(model.weight)
    return model


@pytest.mark.parametrize("b", [0.0, 0.55, 1.0])
def test_decay_closed_form_drift(b):
    """Temperature 0 and a linear loss (constant gradient g): x_K = x_0 − η g Σ_{t<K} (1+t)^{-b}, and the
    step size after K steps is η/(1+K)^b."""
    eta, steps = 0.3, 25
    model = _linear_model(3)
    optimizer = optim.get("sgld")(model.parameters(), lr=eta, temperature=0.0)
    x = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    step = C.single_model_step(model, optimizer, lambda out, y: out.sum(), sgld.step_size_decay(b)(optimizer))
    for _ in range(steps):
        assert step(x, torch.zeros(1)) == 1
    total = sum((1.0 + t) ** -b for t in range(steps))
    np.testing.assert_allclose(model.weight.detach()[0], -eta * total * x[0], rtol=1e-12)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(eta / (1.0 + steps) ** b, rel=1e-12)


def test_decay_scales_the_noise():
    """Zero gradient: each coordinate is a sum of independent N(0, 2η_t β^{-1}) steps, so its variance is
    2β^{-1} Σ_t η/(1+t)^b; checked on 40,000 coordinates (relative s.d. of the sample variance 0.7%,
    tolerance 4%)."""
    eta, temperature, b, steps, dim = 0.2, 0.01, 0.55, 12, 40_000
    model = _linear_model(dim)
    optimizer = optim.get("sgld")(model.parameters(), lr=eta, temperature=temperature, seed=0)
    zero_loss = lambda out, y: 0.0 * out.sum()  # noqa: E731
    step = C.single_model_step(model, optimizer, zero_loss, sgld.step_size_decay(b)(optimizer))
    for _ in range(steps):
        step(torch.zeros(1, dim, dtype=torch.float64), torch.zeros(1))
    expected = 2 * temperature * sum(eta / (1.0 + t) ** b for t in range(steps))
    undecayed = 2 * temperature * eta * steps
    var = float(model.weight.detach().var())
    assert var == pytest.approx(expected, rel=0.04)
    assert abs(var - undecayed) > 0.2 * undecayed


def test_invalid_b():
    with pytest.raises(ValueError, match="Invalid b"):
        sgld.step_size_decay(-0.1)


def test_quick_sgld_sgd(tmp_path):
    overrides = ["methods=sgld,sgd", "epochs=3", "hessian_samples=16", "hessian_probes=2"]
    results, out = run_quick(sgld.EXPERIMENT, tmp_path, overrides)
    config = resolve_config(sgld.EXPERIMENT, "quick", 0, overrides)
    assert results["sgld_b"] == config["sgld_b"] and results["sgld_temperature_n"] == 1.0
    rows = results["runs"]
    assert [(r["model"], r["method"]) for r in rows] == [("lenet", "SGLD"), ("lenet", "SGD")]
    with np.load(out / "sgld.npz") as data:
        starts = []
        for r in rows:
            for key in ("model", "method", "seeds", "error_mean", "error_std", "effective_epochs",
                        "hessian_top", "hessian_trace"):  # fmt: skip
                assert key in r
            assert math.isfinite(r["hessian_top"]) and 0.0 <= r["error_mean"] <= 100.0
            assert config["epochs"] <= r["effective_epochs"] < config["epochs"] + 32 / 256
            loss = data[f"lenet_{r['method']}_train_loss"]
            assert loss[0, -1] < loss[0, 0], r["method"]
            starts.append(loss[:, 0])
    np.testing.assert_array_equal(starts[0], starts[1])
    assert "0.63 ± 0.1 after 300 epochs" in (out / "report.md").read_text()


def test_sgld_temperature_is_per_sample():
    config = resolve_config(sgld.EXPERIMENT, "quick", 0, ["sgld_temperature_n=2"])
    method = sgld.sgld_method(config, 500)
    assert method.kwargs["temperature"] == pytest.approx(2 / 500)
    assert method.kwargs["lr"] == sgld.METHODS["sgld"].kwargs["lr"]


# ---------------------------------------------------------------------------------------------- claims


def _claim(name):
    return next(c for c in sgld.CLAIMS if c.id == f"sgld.{name}")


def _run(
    tmp_path, entropy_error=1.0, entropy_width=0.5, sgld_error=3.0, entropy_updates=150, sgld_updates=900
):
    entropy = syn.method(
        "entropy-sgd",
        error=entropy_error,
        seed=1,
        updates=entropy_updates,
        **syn.width(entropy_width, seed=1),
    )
    sgld_ = syn.method("sgld", error=sgld_error, seed=2, updates=sgld_updates, **syn.width(1.0))
    return syn.run(tmp_path, {("lenet", "Entropy-SGD"): entropy, ("lenet", "SGLD"): sgld_})


def test_error_claim(tmp_path):
    error = _claim("error")
    assert error.evaluate(_run(tmp_path)).status == HELD
    assert error.evaluate(_run(tmp_path, entropy_error=6.0)).status == NOT_HELD
    assert error.evaluate(_run(tmp_path, entropy_error=3.0)).status == UNDECIDABLE
    for updates in ({"entropy_updates": 99}, {"sgld_updates": 99}):
        guarded = error.evaluate(_run(tmp_path, **updates))
        assert guarded.status == UNDECIDABLE and guarded.warnings and "99" in guarded.reason
    chance = error.evaluate(_run(tmp_path, sgld_error=88.0))
    assert chance.status == UNDECIDABLE and "chance" in chance.reason


@pytest.mark.parametrize("name", ["wider", "sharpness"])
def test_width_claims(tmp_path, name):
    claim = _claim(name)
    assert claim.evaluate(_run(tmp_path)).status == HELD
    assert claim.evaluate(_run(tmp_path, entropy_width=1.5)).status == NOT_HELD
    assert claim.evaluate(_run(tmp_path, entropy_width=1.0)).status == UNDECIDABLE


def test_entropy_sgd_and_sgd_as_in_entropy_sgd():
    for key in ("entropy-sgd", "sgd", "sam"):
        assert sgld.METHODS[key] is entropy_sgd.METHODS[key]


def test_sgld_budget_scale_multiplies_its_budget_only(tmp_path):
    overrides = ["methods=sgld,sgd", "epochs=1", "sgld_budget_scale=2", "hessian_samples=8",
                 "hessian_probes=1", "train_subset=64", "width_samples=8", "width_gammas=0.001"]  # fmt: skip
    results, _ = run_quick(sgld.EXPERIMENT, tmp_path, overrides)
    epochs = {r["method"]: r["effective_epochs"] for r in results["runs"]}
    assert epochs["SGLD"] == pytest.approx(2.0, abs=0.3) and epochs["SGD"] == pytest.approx(1.0, abs=0.3)
