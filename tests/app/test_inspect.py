import argparse
import json

import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape.analysis.examples import gaussian_blobs, image_blobs, tiny_cnn, tiny_mlp
from deeplandscape.app import inspect as inspect_cmd

MLP = "deeplandscape.analysis.examples:tiny_mlp"
BLOBS = "deeplandscape.analysis.examples:gaussian_blobs"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    inspect_cmd.add_arguments(parser)
    return parser.parse_args(list(argv))


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
    for name in ("config.json", "results.json", "report.md", "landscape.npz"):
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
    assert config["model"] == MLP and config["sizes"]["top_k"] == 3 and "deeplandscape_version" in config
    d = 2 * 4 + 4 + 4 * 4 + 4 + 4 * 3 + 3
    assert results["num_parameters"] == d and results["num_samples"] == 64
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
    assert results["width"]["gammas"] == [1e-3, 1e-2]
    line = results["slices"]
    middle = len(line["line_alphas"]) // 2
    assert line["line_alphas"][middle] == 0.0
    assert line["line_losses"][middle] == pytest.approx(results["loss"], rel=1e-12)
    assert line["eigen_line_losses"][middle] == pytest.approx(results["loss"], rel=1e-12)
    report = (out / "report.md").read_text()
    for heading in (
        "## Hessian",
        "## Fisher diagonal",
        "## Mini-batch noise D(x)",
        "## Width",
        "## Loss slices",
    ):
        assert heading in report


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


def test_inspect_rejects_bad_input(tmp_path):
    base = ["--data", BLOBS, "--out", str(tmp_path / "bad"), "--quick"]
    with pytest.raises(ValueError, match="Invalid --model: 'tiny_mlp'"):
        inspect_cmd.run(_args("--model", "tiny_mlp", *base))
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        inspect_cmd.run(_args("--model", "no_such_module:f", *base))
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        inspect_cmd.run(_args("--model", "deeplandscape.analysis.examples:nope", *base))
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
    cnn = [
        "--model",
        "deeplandscape.analysis.examples:tiny_cnn",
        "--data",
        "deeplandscape.analysis.examples:image_blobs",
    ]
    with pytest.raises(ValueError, match="--train-mode: the model has BatchNorm"):
        inspect_cmd.run(_args(*cnn, "--out", str(tmp_path / "bad"), "--quick", "--train-mode"))
    with pytest.raises(SystemExit):
        _args("--model", MLP, "--data", BLOBS, "--loss", "hinge")
    assert not (tmp_path / "bad").exists()  # nothing written before the inputs are validated


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
