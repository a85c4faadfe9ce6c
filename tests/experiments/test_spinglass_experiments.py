"""Each spin-glass experiment's --quick run: every promised file and key, and the physics at that scale."""

import math

import pytest

from deeplandscape.experiments import get
from deeplandscape.experiments.spec import resolve_config
from deeplandscape.spinglass import theory

from ._quick import run_quick


def _run(name, tmp_path, overrides=()):
    return run_quick(get(name), tmp_path, overrides)


def test_complexity(tmp_path):
    results, _ = _run("complexity", tmp_path)
    assert results["e0"] == theory.e0(3) and results["e_inf"] == theory.e_inf(3)
    assert len(results["e_k"]) == 6 and results["e_k"] == sorted(results["e_k"], reverse=True)


def test_floor(tmp_path):
    results, out = _run("floor", tmp_path)
    sizes = results["sizes"]
    assert {"e0", "e_inf", "sizes"} <= results.keys()
    for row in sizes:
        assert {
            "n",
            "runs",
            "mean",
            "std",
            "min",
            "max",
            "converged_fraction",
            "minima_fraction",
        } <= row.keys()
        assert row["converged_fraction"] == 1.0 and row["minima_fraction"] == 1.0
        if row["n"] >= 50:
            assert -results["e0"] <= row["mean"] <= -1.4
    assert sizes[-1]["std"] < sizes[0]["std"]
    assert (out / "floor.npz").exists()


def test_regimes(tmp_path):
    results, _ = _run("regimes", tmp_path)
    by_name = {r["name"]: r for r in results["regimes"]}
    assert set(by_name) == {"exponential", "polynomial", "trivial"}
    assert by_name["trivial"]["distinct_minima"] == 1 and by_name["trivial"]["mean_cosine_distance"] < 0.1
    assert by_name["exponential"]["distinct_minima"] > 10
    assert by_name["exponential"]["mean_cosine_distance"] > 0.5
    for r in results["regimes"]:
        assert r["predicted_regime"] == r["name"]
        assert {"nu", "runs", "mean_energy"} <= r.keys()


def test_gd_vs_sgd(tmp_path):
    results, _ = _run("gd-vs-sgd", tmp_path)
    energies = [r["final_energy_mean"] for r in results["runs"]]
    assert [r["P"] for r in results["runs"]] == [1, 5, 10]
    assert max(energies) - min(energies) < 0.1  # all P reach the same band (Sagun Fig. 7)
    assert max(energies) < -1.3


def test_tripartite(tmp_path):
    results, _ = _run("tripartite", tmp_path)
    small, large = results["sizes"]
    assert small["n"] < large["n"] and large["std"] < small["std"]
    assert all(r["converged_fraction"] == 1.0 for r in results["sizes"])


def test_layers(tmp_path):
    results, _ = _run("layers", tmp_path)
    assert results["points"] >= 10
    indices = [r["k"] for r in results["by_index"]]
    assert 0 in indices and max(indices) >= 3
    # Energy grows with index (the layered structure), and no point lies below −E_0.
    means = [r["mean_energy"] for r in results["by_index"]]
    assert means[-1] > means[0]
    assert all(r["fraction_below_minus_e_k"] == 0.0 for r in results["by_index"] if r["k"] == 0)


def test_shift(tmp_path):
    results, _ = _run("shift", tmp_path)
    rows = results["sizes"]
    assert math.isfinite(results["distance_exponent"])
    for r in rows:
        assert {"n", "mean_distance", "median_distance", "jump_fraction", "mean_energy_change"} <= r.keys()
        assert r["median_distance"] < 0.1  # a small field barely moves a typical minimum
        assert r["jump_fraction"] < 0.5
        assert r["max_energy_change"] <= 2 * 0.5  # Thm 5: |ΔH/n| ≤ 2ν


@pytest.mark.parametrize(
    "name", ["complexity", "floor", "regimes", "gd-vs-sgd", "tripartite", "layers", "shift"]
)
def test_every_experiment_declares_its_source(name):
    exp = get(name)
    assert exp.reproduces and exp.description
    for scale in ("quick", "default", "paper"):
        resolve_config(exp, scale, 0)  # every scale is a valid configuration
