"""``deeplandscape inspect``: the numbers against independent computations (exact spectra, Python loops over
samples, dense float64 Hessians), on the models people write (LSTMs, dict and tuple outputs, BatchNorm,
Dropout), and the run-directory behaviour it shares with every run (units, resume, a failing instrument)."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape.analysis.examples import gaussian_blobs, image_blobs, tiny_cnn, tiny_mlp
from deeplandscape.app import _instruments as instruments
from deeplandscape.app import inspect as inspect_cmd
from deeplandscape.cli import main
from tests.analysis._zoo import dataset_hessian, loop_gradients

from . import _models

MLP = "deeplandscape.analysis.examples:tiny_mlp"
BLOBS = "deeplandscape.analysis.examples:gaussian_blobs"
MODELS = str(Path(_models.__file__))  # named by file path, as a user names a file of their own


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    inspect_cmd.add_arguments(parser)
    return parser.parse_args(list(argv))


def _status(*argv: str) -> int:
    """The exit status of ``deeplandscape inspect ARGV``."""
    try:
        return main(["inspect", *argv])
    except SystemExit as exit_:
        return int(exit_.code)


def _loss(model: nn.Module, batches) -> float:
    model = model.double().eval()
    with torch.no_grad():
        total = sum(float(nn.functional.cross_entropy(model(x.double()), y)) * len(x) for x, y in batches)
    return total / sum(len(x) for x, _ in batches)


def test_inspect_end_to_end_on_a_tiny_mlp(tmp_path):
    out = tmp_path / "run"
    args = _args(
        "--model", MLP, "--data", BLOBS, "--model-kwargs", '{"hidden": 4}', "--data-kwargs", '{"n": 64}',
        "--out", str(out), "--quick", "--lr", "0.1", "--width-steps", "10", "--width-burnin", "5",
    )  # fmt: skip
    assert inspect_cmd.run(args) == 0
    for name in ("config.json", "results.json", "timing.json", "report.md", "report.html", "report.json"):
        assert (out / name).is_file(), name
    for name in (
        "hessian_spectrum",
        "fisher_diagonal",
        "diffusion_spectrum",
        "width",
        "slice_1d",
        "slice_2d",
    ):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary file behind
    config = json.loads((out / "config.json").read_text())
    results = json.loads((out / "results.json").read_text())
    assert config["experiment"] == "inspect" and config["scale"] == "quick" and config["top_k"] == 3
    assert config["model"] == MLP and "deeplandscape_version" in config
    assert sorted(p.stem for p in (out / "units").glob("*.json")) == sorted(
        ["loss", "spectrum", "fisher", "noise", "width", "slices"]
    )
    d = 2 * 4 + 4 + 4 * 4 + 4 + 4 * 3 + 3
    assert results["num_parameters"] == d and results["num_samples"] == 64 and "failed" not in results
    data = gaussian_blobs(64)
    assert results["loss"] == pytest.approx(_loss(tiny_mlp(hidden=4), data), rel=1e-12)
    spectrum = results["spectrum"]
    exact = np.load(out / "landscape.npz")["hessian_eigenvalues"]
    assert exact.size == d
    # Lanczos extremes are the exact extremes, within their residuals
    assert spectrum["top_eigenvalues"][0] == pytest.approx(
        exact.max(), abs=1e-6 + spectrum["top_residuals"][0]
    )
    assert spectrum["bottom_eigenvalues"][0] == pytest.approx(
        exact.min(), abs=1e-6 + spectrum["bottom_residuals"][0]
    )
    assert spectrum["exact"]["index"] == int((exact < -1e-3).sum())
    _assert_counts_bracket_the_exact_spectrum(spectrum, exact, (out / "report.md").read_text())
    assert abs(spectrum["trace"] - exact.sum()) < 4 * spectrum["trace_std_error"]
    assert results["noise"]["rank"] <= 63  # N − 1 centred gradients
    assert results["noise"]["temperature"]["lr"] == 0.1
    assert results["width"]["gammas"] == [1e-3, 1e-2]
    line = results["slices"]
    middle = len(line["line_alphas"]) // 2
    assert line["line_alphas"][middle] == 0.0
    assert line["line_losses"][middle] == pytest.approx(results["loss"], rel=1e-12)
    assert line["eigen_line_losses"][middle] == pytest.approx(results["loss"], rel=1e-12)
    report = (out / "report.md").read_text()
    for table in ("The model", "Hessian", "Fisher diagonal", "Mini-batch noise D(x)", "Width", "Loss slices"):
        assert f"Table: {table}" in report
    assert "deeplandscape inspect --quick --model" in report  # the command that reproduces the run
    section = json.loads((out / "report.json").read_text())["sections"][0]
    assert section["name"] == "inspect" and section["failed_units"] == {}
    assert {t["id"] for t in section["tables"]} == {"model", "hessian", "fisher", "noise", "width", "slices"}


def test_inspect_loads_a_checkpoint_and_handles_a_cnn_with_batchnorm(tmp_path):
    model = tiny_cnn(channels=2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    torch.save({"model": model.state_dict()}, tmp_path / "ckpt.pt")
    out = tmp_path / "cnn"
    args = _args(
        "--model", "deeplandscape.analysis.examples:tiny_cnn", "--model-kwargs", '{"channels": 2}',
        "--data", "deeplandscape.analysis.examples:image_blobs", "--data-kwargs", '{"n": 16}',
        "--checkpoint", str(tmp_path / "ckpt.pt"), "--out", str(out), "--quick",
        "--skip", "spectrum", "noise", "width", "--plane-points", "3", "--line-points", "3",
    )  # fmt: skip
    assert inspect_cmd.run(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results) >= {"fisher", "slices"} and "spectrum" not in results
    assert results["loss"] == pytest.approx(_loss(model, image_blobs(16)), rel=1e-10)
    assert not (out / "hessian_spectrum.png").exists()


@pytest.mark.filterwarnings("ignore:Using a target size")  # MSELoss says so before it fails
def test_inspect_rejects_bad_input(tmp_path):
    base = ["--data", BLOBS, "--out", str(tmp_path / "bad"), "--quick"]
    with pytest.raises(ValueError, match="Invalid --model: 'tiny_mlp'"):
        inspect_cmd.run(_args("--model", "tiny_mlp", *base))
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        inspect_cmd.run(_args("--model", "no_such_module:f", *base))
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        inspect_cmd.run(_args("--model", "deeplandscape.analysis.examples:nope", *base))
    with pytest.raises(ValueError, match=r"no_file\.py is not a file"):
        inspect_cmd.run(_args("--model", str(tmp_path / "no_file.py") + ":f", *base))
    with pytest.raises(ValueError, match="--model-kwargs"):
        inspect_cmd.run(_args("--model", MLP, "--model-kwargs", "{hidden: 4}", *base))
    with pytest.raises(ValueError, match=r"not an nn\.Module"):
        inspect_cmd.run(_args("--model", BLOBS, *base))
    with pytest.raises(ValueError, match="--checkpoint"):
        inspect_cmd.run(_args("--model", MLP, "--checkpoint", str(tmp_path / "missing.pt"), *base))
    torch.save(tiny_mlp(hidden=5).state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match="does not match the model"):
        inspect_cmd.run(_args("--model", MLP, "--checkpoint", str(tmp_path / "other.pt"), *base))
    with pytest.raises(ValueError, match="--gammas"):
        inspect_cmd.run(_args("--model", MLP, "--gammas", "0.1", "0.01", *base))
    with pytest.raises(ValueError, match="--noise-samples: 1"):
        inspect_cmd.run(_args("--model", MLP, "--noise-samples", "1", *base))
    with pytest.raises(ValueError, match="Invalid --loss: 'hinge'"):
        inspect_cmd.run(_args("--model", MLP, "--loss", "hinge", *base))
    with pytest.raises(ValueError, match="Invalid --skip"):
        inspect_cmd.run(_args("--model", MLP, "--skip", "hessian", *base))
    with pytest.raises(ValueError, match="Invalid --loss: MSELoss cannot take"):  # (N, 3) logits, (N,) labels
        inspect_cmd.run(_args("--model", MLP, "--loss", "mse", *base))
    cnn = [
        "--model",
        "deeplandscape.analysis.examples:tiny_cnn",
        "--data",
        "deeplandscape.analysis.examples:image_blobs",
    ]
    with pytest.raises(ValueError, match="--train-mode: the model has BatchNorm"):
        inspect_cmd.run(_args(*cnn, "--out", str(tmp_path / "bad"), "--quick", "--train-mode"))
    with pytest.raises(ValueError, match="Invalid --resume: it needs --out"):
        inspect_cmd.run(_args("--model", MLP, "--data", BLOBS, "--quick", "--resume"))
    assert list(tmp_path.iterdir()) == [tmp_path / "other.pt"]  # nothing written before the inputs are valid


def _assert_counts_bracket_the_exact_spectrum(spectrum: dict, exact: np.ndarray, report: str) -> None:
    """The SLQ counts' bounds contain the exact fractions; an unresolved count is null with its reason."""
    truth = {
        "normalized_index": float((exact < -1e-3).mean()),
        "fraction_near_zero": float((np.abs(exact) <= 1e-3).mean()),
    }
    slq = spectrum["slq"]
    for key, value in truth.items():
        low, high = slq["bounds"][key]
        assert low <= value <= high, (key, low, high, value)
        if not slq["resolved"][key]:
            assert slq[key] is None and "narrower than the quadrature's node spacing" in slq["reasons"][key]
    assert "not resolved: between" in report or all(slq["resolved"].values())
    assert "Chebyshev–Markov–Stieltjes" in report


def test_inspect_spectrum_counts_of_a_cnn_with_batchnorm(tmp_path):
    """A small CNN's near-zero fraction used to be shown as 0 against an exact 0.57, with no error bar."""
    out = tmp_path / "cnn"
    args = _args(
        "--model", "deeplandscape.analysis.examples:tiny_cnn", "--model-kwargs", '{"channels": 2}',
        "--data", "deeplandscape.analysis.examples:image_blobs", "--data-kwargs", '{"n": 24}',
        "--out", str(out), "--quick", "--skip", "fisher", "noise", "width", "slices",
    )  # fmt: skip
    assert inspect_cmd.run(args) == 0
    spectrum = json.loads((out / "results.json").read_text())["spectrum"]
    exact = np.load(out / "landscape.npz")["hessian_eigenvalues"]
    _assert_counts_bracket_the_exact_spectrum(spectrum, exact, (out / "report.md").read_text())


# ------------------------------------------------------------------------------------ models people write


def test_inspect_on_an_lstm_takes_the_per_sample_loop(tmp_path):
    """An LSTM has no vmap batching rule: the Fisher step used to crash with a vmap shape error and stop the
    run. The Fisher diagonal now equals a Python loop over samples."""
    out = tmp_path / "lstm"
    status = _status(
        "--model", f"{MODELS}:lstm", "--data", f"{MODELS}:sequences", "--quick", "--out", str(out),
        "--skip", "spectrum", "width", "--line-points", "3", "--plane-points", "3",
    )  # fmt: skip
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    assert "failed" not in results and {"fisher", "noise", "slices"} <= set(results)
    g = loop_gradients(_models.lstm(), _models.sequences(), None)
    fisher = np.load(out / "landscape.npz")["fisher_diagonal"]
    expected = ((g**2).mean(0) - g.mean(0) ** 2).numpy()
    np.testing.assert_allclose(fisher, expected, rtol=1e-9, atol=1e-14)
    assert results["noise"]["rank"] <= g.shape[0] - 1


@pytest.mark.parametrize(
    ("factory", "output", "key"), [("dict_output", "logits", "logits"), ("tuple_output", "1", 1)]
)
def test_inspect_selects_the_output_of_a_dict_or_tuple_model(tmp_path, factory, output, key):
    """--output KEY / INDEX says which output is the logits; the exact Hessian and the Fisher diagonal are
    those of the loss on that output (dense float64 Hessian, loop over samples)."""
    out = tmp_path / factory
    status = _status(
        "--model", f"{MODELS}:{factory}", "--data", f"{MODELS}:vectors", "--output", output, "--quick",
        "--out", str(out), "--skip", "noise", "width", "slices",
    )  # fmt: skip
    assert status == 0
    twin, data = getattr(_models, factory)(inplace=False).double().eval(), _models.vectors()
    results = json.loads((out / "results.json").read_text())
    with torch.no_grad():
        truth = sum(float(nn.functional.cross_entropy(twin(x.double())[key], y)) * len(x) for x, y in data)
    assert results["loss"] == pytest.approx(truth / sum(len(x) for x, _ in data), rel=1e-12)
    with np.load(out / "landscape.npz") as arrays:
        exact, fisher = arrays["hessian_eigenvalues"], arrays["fisher_diagonal"]
    dense = torch.linalg.eigvalsh(dataset_hessian(twin, data, key)).numpy()
    np.testing.assert_allclose(np.sort(exact), dense, atol=1e-10)
    g = loop_gradients(twin, data, key)
    np.testing.assert_allclose(fisher, ((g**2).mean(0) - g.mean(0) ** 2).numpy(), rtol=1e-9, atol=1e-14)


def test_a_model_with_dict_outputs_needs_output_before_anything_is_written(tmp_path, capsys):
    status = _status(
        "--model", f"{MODELS}:dict_output", "--data", f"{MODELS}:vectors", "--out", str(tmp_path / "o")
    )
    err = capsys.readouterr().err
    assert status == 2 and "Invalid --output: none given" in err and "['features', 'logits']" in err
    status = _status(
        "--model", f"{MODELS}:dict_output", "--data", f"{MODELS}:vectors", "--output", "probs",
        "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert status == 2 and "Invalid --output: 'probs'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_factories_import_from_the_current_directory_without_pythonpath(tmp_path, monkeypatch):
    (tmp_path / "my_inspect_models.py").write_text(
        "from deeplandscape.analysis.examples import gaussian_blobs, tiny_mlp\n"
        "def model():\n    return tiny_mlp(hidden=3)\n"
        "def data():\n    return gaussian_blobs(16)\n"
    )
    monkeypatch.chdir(tmp_path)
    status = _status(
        "--model", "my_inspect_models:model", "--data", "my_inspect_models:data", "--quick", "--out", "run",
        "--skip", "spectrum", "noise", "width", "slices",
    )  # fmt: skip
    assert status == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["loss"] == pytest.approx(_loss(tiny_mlp(hidden=3), gaussian_blobs(16)), rel=1e-12)


def test_a_failing_instrument_is_reported_and_the_others_run(tmp_path, capsys):
    """--train-mode with Dropout: the spectrum and the width refuse a random loss (ValueError); the Fisher
    diagonal, D(x) and the slices still run, and the report names the two failures with their errors."""
    out = tmp_path / "dropout"
    argv = [
        "--model", f"{MODELS}:dropout_mlp", "--data", f"{MODELS}:vectors", "--quick", "--train-mode",
        "--out", str(out), "--line-points", "3", "--plane-points", "3",
    ]  # fmt: skip
    assert _status(*argv) == 1
    err = capsys.readouterr().err
    assert "inspect: spectrum failed: ValueError: Invalid train: True with Dropout" in err
    results = json.loads((out / "results.json").read_text())
    assert set(results["failed"]) == {"spectrum", "width"}
    assert {"fisher", "noise", "slices"} <= set(results)
    report = (out / "report.md").read_text()
    assert "spectrum failed (the rest ran without it): ValueError: Invalid train: True with Dropout" in report
    assert "width failed" in report
    section = json.loads((out / "report.json").read_text())["sections"][0]
    assert set(section["failed_units"]) == {"spectrum", "width"}
    # a failed instrument is not saved: --resume computes it again (and only it)
    assert not (out / "units" / "spectrum.json").exists() and (out / "units" / "fisher.json").exists()
    assert _status(*argv, "--resume") == 1
    timing = json.loads((out / "timing.json").read_text())
    assert timing["units_run_now"] == 2 and set(timing["failed_units"]) == {"spectrum", "width"}


FAST = [
    "--model", MLP, "--model-kwargs", '{"hidden": 3}', "--data", BLOBS, "--data-kwargs", '{"n": 24}',
    "--quick", "--skip", "width", "--line-points", "3", "--plane-points", "3", "--slq-steps", "8",
    "--trace-probes", "4",
]  # fmt: skip


def test_an_interrupted_inspect_resumes_without_redoing_finished_instruments(tmp_path, monkeypatch):
    """Interrupted in D(x), the resumed run recomputes neither the spectrum nor the Fisher diagonal, and its
    results.json is byte-identical to an uninterrupted run's."""
    assert _status(*FAST, "--out", str(tmp_path / "whole")) == 0

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setitem(instruments.COMPUTE, "noise", interrupted)
    out = tmp_path / "resumed"
    assert _status(*FAST, "--out", str(out)) == 130
    assert not (out / "results.json").exists()
    assert {p.stem for p in (out / "units").glob("*.json")} == {"loss", "spectrum", "fisher"}

    def never(*args):
        raise AssertionError("a finished instrument was computed again")

    monkeypatch.setitem(instruments.COMPUTE, "noise", instruments.noise)
    monkeypatch.setitem(instruments.COMPUTE, "spectrum", never)
    monkeypatch.setitem(instruments.COMPUTE, "fisher", never)
    assert _status(*FAST, "--out", str(out), "--resume") == 0
    assert (out / "results.json").read_bytes() == (tmp_path / "whole" / "results.json").read_bytes()


def test_inspect_json_prints_the_run_directory_and_results(tmp_path, capsys):
    out = tmp_path / "run"
    assert _status(*FAST, "--skip", "spectrum", "noise", "width", "--out", str(out), "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["run_dir"] == str(out) and document["failed"] == {}
    assert document["results"] == json.loads((out / "results.json").read_text())


def test_python_m_deeplandscape_app_inspect_is_the_same_command(tmp_path, capsys):
    status = 0
    try:
        inspect_cmd.main(["--model", MLP, "--data", BLOBS, "--lr", "-1", "--out", str(tmp_path / "o")])
    except SystemExit as exit_:
        status = exit_.code
    assert status == 2 and "Invalid --lr: -1.0" in capsys.readouterr().err


@pytest.mark.parametrize("resume", [False, True])
def test_an_inspect_directory_of_an_earlier_version_is_never_written_into(tmp_path, capsys, resume):
    """Earlier versions wrote ``"command": "inspect"`` and no experiment key: such a directory is refused,
    with or without --resume, and left as it was."""
    out = tmp_path / "old"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"command": "inspect", "seed": 0}))
    (out / "results.json").write_text("{}")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert _status(*FAST, "--out", str(out), *(["--resume"] if resume else [])) == 2
    assert "holds a run of 'inspect' written by an earlier version" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
