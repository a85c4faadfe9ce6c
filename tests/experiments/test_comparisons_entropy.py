"""``entropy-sgd``: quick runs write every key; the char-LSTM part scores perplexity = exp(cross-entropy)."""

import math

import numpy as np
import pytest
import torch

from deeplandscape import nets
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import _sequence as S
from deeplandscape.experiments import entropy_sgd
from deeplandscape.experiments.spec import resolve_config

from ._quick import run_quick

ROW_KEYS = (
    "model", "method", "seeds", "error_mean", "error_std", "effective_epochs", "hessian_top",
    "hessian_trace", "metric", "val_error_mean", "train_error_mean", "train_loss_mean", "tuned", "factor",
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
    assert "perplexity" in (out / "report.md").read_text()


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
