"""``entropy-sgd``: quick runs write every key; the char-LSTM part scores perplexity = exp(cross-entropy)."""

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from deeplandscape import nets
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import _sequence as S
from deeplandscape.experiments import _verdicts as V
from deeplandscape.experiments import entropy_sgd, relaxation
from deeplandscape.experiments.claims import HELD, NOT_HELD, UNDECIDABLE
from deeplandscape.experiments.spec import resolve_config

from . import _synthetic as syn
from ._quick import run_quick

ROW_KEYS = (
    "model", "method", "seeds", "error_mean", "error_std", "effective_epochs", "hessian_top",
    "hessian_trace", "metric", "val_error_mean", "train_error_mean", "train_loss_mean", "tuned", "factor",
    "optimizer", "own_updates", "adaptive_top", "local_entropy", "local_entropy_excess", "gamma_star",
)  # fmt: skip


def _arrays(out, model, method):
    with np.load(out / "entropy_sgd.npz") as data:
        prefix = f"{model}_{method}_"
        return {k[len(prefix) :]: data[k] for k in data.files if k.startswith(prefix)}


def _check_rows(results, expected):
    rows = results["runs"]
    assert [(r["model"], r["method"]) for r in rows] == expected
    for r in rows:
        assert set(ROW_KEYS) <= set(r)
        assert r["metric"] == S.metric_of(r["model"])
        for key in ("error_mean", "error_std", "effective_epochs", "hessian_top"):
            assert math.isfinite(r[key])
    return rows


def test_quick_char_lstm(tmp_path):
    """Adam and Entropy-Adam on char-lstm: perplexity = exp(loss), ≥ 1, training loss decreases."""
    overrides = ["models=char-lstm", "char_methods=adam,entropy-adam", "seq_epochs=3", "evaluations=2",
                 "hessian_samples=16", "hessian_probes=2"]  # fmt: skip
    results, out = run_quick(entropy_sgd.EXPERIMENT, tmp_path, overrides)
    rows = _check_rows(results, [("char-lstm", "Adam"), ("char-lstm", "Entropy-Adam")])
    starts = []
    for r in rows:
        a = _arrays(out, r["model"], r["method"])
        # the training "error" of a character model is the perplexity of the training loss
        np.testing.assert_allclose(a["train_error"], np.exp(a["train_loss"]), rtol=1e-6)
        assert np.all(a["val_error"] >= 1.0) and np.all(a["test_error"] >= 1.0)
        assert r["error_mean"] == pytest.approx(float(a["test_error"][:, -1].mean()))
        # 3 effective epochs of 14 batches: Adam (42 steps) and Entropy-Adam (8 outer steps) both descend
        assert a["train_loss"][0, -1] < a["train_loss"][0, 0]
        assert 3.0 <= r["effective_epochs"] < 3.0 + 16 / 209 + 1e-9
        starts.append(a["train_loss"][:, 0])
    # same initialization for every method
    np.testing.assert_array_equal(starts[0], starts[1])
    report = (out / "report.md").read_text()
    assert "perplexity" in report and "1.217 ± 0.005 @ 25 effective epochs" in report
    # 3 effective epochs of 14 batches of L = 5 steps: 8 outer updates, fewer than the 100 the claim needs
    assert rows[1]["own_updates"] == 8
    (section,) = json.loads((out / "report.json").read_text())["sections"]
    verdict = {c["id"]: c for c in section["claims"]}
    assert verdict["entropy-sgd.char"]["status"] == UNDECIDABLE


@pytest.mark.slow
def test_quick_images_and_chars(tmp_path):
    """The quick scale (lenet and char-lstm) with a budget where every method must descend."""
    overrides = ["epochs=5", "seq_epochs=3", "hessian_samples=16", "hessian_probes=2"]
    results, out = run_quick(entropy_sgd.EXPERIMENT, tmp_path, overrides)
    config = resolve_config(entropy_sgd.EXPERIMENT, "quick", 0, overrides)
    expected = [("lenet", m.label) for m in entropy_sgd.METHODS.values()]
    expected += [("char-lstm", entropy_sgd.CHAR_METHODS[k].label) for k in config["char_methods"].split(",")]
    rows = _check_rows(results, expected)
    for r in rows:
        a = _arrays(out, r["model"], r["method"])
        assert a["train_loss"][0, -1] < a["train_loss"][0, 0], r["method"]
        if r["metric"] == "error %":
            assert 0.0 <= r["error_mean"] <= 100.0


def test_evaluate_sequence_against_float64():
    """Perplexity = exp(mean cross-entropy per character), computed independently in float64; a model
    with zero logits (uniform prediction) has perplexity exactly V."""
    config = {"text_path": "", "text_lines": 24, "seq_len": 16}
    d, vocab = S.load_text(config)
    model = nets.get("char-lstm", seed=3, vocab=vocab)
    got = S.evaluate_sequence(model, d)
    ref = model.double()

    def perplexity(x, y):
        total, count = 0.0, 0
        with torch.no_grad():
            for xi, yi in zip(x, y, strict=True):
                logits = ref(xi[None])[0]
                logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
                total -= float(logp[torch.arange(len(yi)), yi].sum())
                count += len(yi)
        return math.exp(total / count)

    for key, (x, y) in {"train_error": (d.x, d.y), "val_error": (d.x_val, d.y_val),
                        "test_error": (d.x_test, d.y_test)}.items():  # fmt: skip
        assert got[key] == pytest.approx(perplexity(x, y), rel=1e-5)
        assert got[key] >= 1.0
    assert got["train_error"] == pytest.approx(math.exp(got["train_loss"]), rel=1e-12)
    model = model.float()
    with torch.no_grad():
        model.decoder.weight.zero_()
    uniform = S.evaluate_sequence(model, d)
    for key in ("train_error", "val_error", "test_error"):
        assert uniform[key] == pytest.approx(vocab, rel=1e-5)


def test_halving_schedule_closed_form():
    """Step sizes halve every `every` effective epochs: factor 0.5^⌊k·t/(steps_per_epoch·every)⌋."""
    p = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([p], lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, S.halving(2.0, 7, 1))
    for t in range(60):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5 ** (t // 14))
        p.grad = torch.ones(2)
        optimizer.step()
        scheduler.step()
    two = S.halving(2.0, 7, 2)  # two gradient evaluations per step: twice as fast in steps
    assert [two(t) for t in (0, 6, 7, 13, 14)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    with pytest.raises(ValueError, match="Invalid every"):
        S.halving(0.0, 7)


def test_units_split_methods_by_task():
    config = resolve_config(entropy_sgd.EXPERIMENT, "quick", 0, ["models=lenet,char-lstm", "methods=sgd"])
    keys = [u.key for u in entropy_sgd.units(config)]
    assert keys == ["lenet-sgd"] + [f"char-lstm-{m}" for m in config["char_methods"].split(",")]
    with pytest.raises(ValueError, match="Invalid char_methods"):
        entropy_sgd.units({**config, "char_methods": "entropy-sgd"})
    assert C.names(config, "models") == ["lenet", "char-lstm"]


# ---------------------------------------------------------------------------------------------- claims


def _claim(name):
    return next(c for c in entropy_sgd.CLAIMS if c.id == f"entropy-sgd.{name}")


def _images(tmp_path, entropy, *, sgd=3.0, adam=4.0, updates=150, sgd_width=1.0, **more):
    """Entropy-SGD (``entropy``: its :func:`_synthetic.method`) against SGD and Adam on lenet."""
    methods = {
        ("lenet", "Entropy-SGD"): entropy,
        ("lenet", "SGD"): syn.method("sgd", error=sgd, seed=1, **syn.width(sgd_width, seed=1)),
        ("lenet", "Adam"): syn.method("adam", error=adam, seed=2, **syn.width(sgd_width, seed=2)),
        **more,
    }
    return syn.run(tmp_path, methods)


def test_comparable_held_not_held_undecidable_and_guarded(tmp_path):
    comparable = _claim("comparable")
    held = comparable.evaluate(_images(tmp_path, syn.method("entropy-sgd", error=1.0, seed=3)))
    assert held.status == HELD and "(vs SGD)" in held.evidence  # SGD has the lower validation error
    assert held.statistic.ci_high < 0
    worse = comparable.evaluate(_images(tmp_path, syn.method("entropy-sgd", error=6.0, seed=3)))
    assert worse.status == NOT_HELD
    # equal error rates: the interval contains the margin 0.083 × SGD's error (≈ 3%)
    run = _images(tmp_path, syn.method("entropy-sgd", error=3.0, seed=3))
    tie = comparable.evaluate(run)
    bound = relaxation.SIMILAR_MARGIN * V.row(run, "lenet", "SGD")["error_mean"]
    assert tie.status == UNDECIDABLE and f"bound {bound:.4g}" in tie.reason
    assert pytest.approx(1.17 / 1.08 - 1) == relaxation.SIMILAR_MARGIN
    # the better baseline is chosen on the validation error
    run = _images(tmp_path, syn.method("entropy-sgd", error=1.0, seed=3), sgd=5.0, adam=3.0)
    assert "(vs Adam)" in comparable.evaluate(run).evidence


def test_comparable_guards(tmp_path):
    comparable = _claim("comparable")
    few = comparable.evaluate(_images(tmp_path, syn.method("entropy-sgd", error=1.0, seed=3, updates=99)))
    assert few.status == UNDECIDABLE and "99 outer updates" in few.reason and few.warnings
    # a baseline at chance: "reaches the baseline's error" says nothing
    chance = comparable.evaluate(
        _images(tmp_path, syn.method("entropy-sgd", error=1.0, seed=3), sgd=90, adam=91)
    )
    assert chance.status == UNDECIDABLE and "chance" in chance.reason and chance.warnings


def _chars(tmp_path, entropy_ce, adam_ce=0.7, updates=150, seeds=5):
    rng = np.random.default_rng(0)
    ce = {k: v + 0.05 * rng.standard_normal((seeds, 300)) for k, v in (("E", entropy_ce), ("A", adam_ce))}
    return syn.run(tmp_path, {
        ("char-lstm", "Entropy-Adam"): syn.method("entropy-adam", wrong_=ce["E"], updates=updates),
        ("char-lstm", "Adam"): syn.method("adam", wrong_=ce["A"]),
    })  # fmt: skip


def test_char_claim_and_its_statistic(tmp_path):
    char = _claim("char")
    assert char.evaluate(_chars(tmp_path, 0.5)).status == HELD
    assert char.evaluate(_chars(tmp_path, 0.9)).status == NOT_HELD
    assert char.evaluate(_chars(tmp_path, 0.7)).status == UNDECIDABLE
    few = char.evaluate(_chars(tmp_path, 0.5, updates=20))
    assert few.status == UNDECIDABLE and few.warnings
    # the statistic: the mean over seeds of the difference of mean cross-entropies per window, whose
    # interval contains both the t interval over seeds and the percentile bootstrap over windows
    run = _chars(tmp_path, 0.6)
    stat = V.log_perplexity_difference(run, "char-lstm", "Entropy-Adam", "Adam")
    a, b = (V.arrays(run, "char-lstm", k)["test_per_sample"] for k in ("Entropy-Adam", "Adam"))
    d = a.mean(1) - b.mean(1)
    assert stat.estimate == pytest.approx(d.mean(), rel=1e-12)
    t = scipy_stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert stat.ci_low <= d.mean() - t + 1e-12 and stat.ci_high >= d.mean() + t - 1e-12
    per_window = (a - b).mean(0)
    half = 1.96 * per_window.std(ddof=1) / math.sqrt(len(per_window))  # the bootstrap's normal limit
    assert stat.ci_low <= per_window.mean() - 0.8 * half and stat.ci_high >= per_window.mean() + 0.8 * half


@pytest.mark.parametrize("name", ["wider", "sharpness"])
def test_width_claims(tmp_path, name):
    claim = _claim(name)
    wide = syn.method("entropy-sgd", error=2.0, seed=3, **syn.width(0.5, seed=3))
    assert claim.evaluate(_images(tmp_path, wide)).status == HELD
    narrow = syn.method("entropy-sgd", error=2.0, seed=3, **syn.width(1.5, seed=3))
    assert claim.evaluate(_images(tmp_path, narrow)).status == NOT_HELD
    same = syn.method("entropy-sgd", error=2.0, seed=3, **syn.width(1.0, seed=3))
    assert claim.evaluate(_images(tmp_path, same)).status == UNDECIDABLE
    few = syn.method("entropy-sgd", error=2.0, seed=3, updates=10, **syn.width(0.5, seed=3))
    assert claim.evaluate(_images(tmp_path, few)).status == UNDECIDABLE


def test_methods_run_with_the_authors_settings():
    """Entropy-SGD runs with the optimizer's defaults (the authors' settings) and ÷10 at 40% of the run; the
    baselines with their papers' drops."""
    from deeplandscape import optim

    params = [torch.zeros(3, requires_grad=True)]
    opt = entropy_sgd.METHODS["entropy-sgd"].build(params, 1.0, seed=0)
    defaults = optim.EntropySGD([torch.zeros(1, requires_grad=True)]).defaults
    for key in ("lr", "inner_lr", "L", "gamma", "scoping", "alpha", "noise", "momentum", "nesterov",
                "outer_momentum"):  # fmt: skip
        assert opt.param_groups[0][key] == defaults[key], key
    assert (opt.param_groups[0]["alpha"], opt.param_groups[0]["outer_momentum"]) == (0.75, 0.0)
    scheduler = entropy_sgd.METHODS["entropy-sgd"].scheduler(opt, 1000)
    lrs = []
    for _ in range(1000):
        lrs.append(opt.param_groups[0]["lr"])
        params[0].grad = torch.zeros(3)
        opt.step()
        scheduler.step()
    assert lrs[399] == 1.0 and lrs[400] == pytest.approx(0.1)
    adam = entropy_sgd.METHODS["adam"]
    assert (adam.drops, adam.drop_factor) == ((0.3, 0.6, 0.9), 0.2)
