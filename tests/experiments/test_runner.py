import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deeplandscape.app.report import write_index
from deeplandscape.app.runner import run_experiment
from deeplandscape.experiments import available, get
from deeplandscape.experiments.spec import ConfigError, Experiment, Param, Unit, UnitResult, resolve_config
from deeplandscape.htmlreport import markdown_to_html
from deeplandscape.rundir import RunDirError


def _toy(calls: list[str]) -> Experiment:
    """Three units whose values are drawn from the unit seed: resume must reproduce them exactly."""

    def run_unit(config, unit, seed):
        calls.append(unit.key)
        rng = np.random.default_rng(seed)
        return UnitResult(
            values={"key": unit.key, "draw": float(rng.normal())}, arrays={"x": rng.normal(size=3)}
        )

    def finalize(config, results, out):
        return {
            "draws": [r.values["draw"] for r in results],
            "sum": float(sum(r.arrays["x"].sum() for r in results)),
        }

    return Experiment(
        name="toy",
        description="toy",
        reproduces="nothing",
        params={
            "count": Param("int", 3, "units", quick=2, low=1, high=10),
            "label": Param("str", "a", "label", choices=("a", "b")),
        },
        units=lambda c: [Unit(f"u{i}", {}) for i in range(c["count"])],
        run_unit=run_unit,
        finalize=finalize,
    )


def test_config_resolution_and_errors():
    exp = _toy([])
    assert resolve_config(exp, "quick", 1)["count"] == 2
    config = resolve_config(exp, "default", 1, ["count=5", "label=b"])
    assert config == {"experiment": "toy", "scale": "default", "seed": 1, "count": 5, "label": "b"}
    for overrides, match in [
        (["colour=red"], "Unknown key: 'colour'"),
        (["count=three"], "Invalid count"),
        (["count=11"], "Invalid count"),
        (["label=c"], "Invalid label"),
        (["count"], "KEY=VALUE"),
    ]:
        with pytest.raises(ConfigError, match=match):
            resolve_config(exp, "default", 0, overrides)
    with pytest.raises(ConfigError, match="Invalid sizes"):
        resolve_config(get("floor"), "quick", 0, ["sizes=1,20"])
    assert resolve_config(get("floor"), "quick", 0, ["sizes=30,40"])["sizes"] == [30, 40]


def test_resume_skips_finished_units_and_reproduces_results(tmp_path):
    calls: list[str] = []
    exp = _toy(calls)
    config = resolve_config(exp, "default", 7)
    full = run_experiment(exp, config, tmp_path / "full", quiet=True)
    assert calls == ["u0", "u1", "u2"]
    # Simulate an interruption after u0: only its unit files exist.
    part = tmp_path / "part"
    run_experiment(exp, config, part, quiet=True)
    for key in ("u1", "u2"):
        (part / "units" / f"{key}.json").unlink()
    (part / "results.json").unlink()
    calls.clear()
    resumed = run_experiment(exp, config, part, resume=True, quiet=True)
    assert calls == ["u1", "u2"]
    assert resumed == full
    assert (part / "results.json").read_text() == (tmp_path / "full" / "results.json").read_text()


def test_run_dir_guards(tmp_path):
    exp = _toy([])
    config = resolve_config(exp, "default", 0)
    run_experiment(exp, config, tmp_path / "a", quiet=True)
    with pytest.raises(RunDirError, match="pass --resume"):
        run_experiment(exp, config, tmp_path / "a", quiet=True)
    with pytest.raises(RunDirError, match=r"another configuration \(seed: 0 in config.json, 1 now\)"):
        run_experiment(exp, resolve_config(exp, "default", 1), tmp_path / "a", resume=True, quiet=True)
    other = get("complexity")
    with pytest.raises(RunDirError, match="holds a run of 'toy', not of 'complexity'"):
        run_experiment(other, resolve_config(other, "quick", 0), tmp_path / "a", resume=True, quiet=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["floor", "sizes=12,14,16,18,20,22", "runs=8"],
        # a comparison (two methods, a small budget): its results once held wall times
        ["anneal", "methods=adam,anneal", "epochs=0.25", "evaluations=1", "hessian_samples=16",
         "grad_samples=16"],
    ],
)  # fmt: skip
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, args):
    """Kill a real `deeplandscape run` with SIGKILL after its first unit, resume, compare byte for byte."""
    exp = get(args[0])
    units = len(exp.units(resolve_config(exp, "quick", 0, args[1:])))
    cmd = [sys.executable, "-m", "deeplandscape.cli", "run", *args, "--quick", "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(killed)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not list((killed / "units").glob("*.json")):
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in (killed / "units").glob("*.json")}
    assert finished and not (killed / "results.json").exists()
    subprocess.run([*cmd, "--out", str(killed), "--resume"], env=env, check=True)
    for name, mtime in finished.items():
        assert (killed / "units" / name).stat().st_mtime_ns == mtime  # not recomputed
    timing = json.loads((killed / "timing.json").read_text())
    assert timing["units_run_now"] == units - len(finished)
    clean = tmp_path / "clean"
    subprocess.run([*cmd, "--out", str(clean)], env=env, check=True)
    assert (killed / "results.json").read_bytes() == (clean / "results.json").read_bytes()
    assert b"wall_seconds" not in (clean / "results.json").read_bytes()


def test_cli_list_and_bad_config_fail_before_work(tmp_path, capsys):
    from deeplandscape.cli import main

    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in available())
    with pytest.raises(SystemExit) as info:
        main(["run", "floor", "--quick", "--out", str(tmp_path / "x"), "runs=-4"])
    assert info.value.code == 2
    assert "Invalid runs" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):
        main(["run", "nosuch"])
    assert "Unknown experiment" in capsys.readouterr().err


def test_index_and_html(tmp_path):
    exp = _toy([])
    run_experiment(exp, resolve_config(exp, "default", 0), tmp_path / "runs" / "toy-1", quiet=True)
    (tmp_path / "runs" / "broken").mkdir()
    index = write_index(tmp_path / "runs")
    text = index.read_text()
    assert "toy-1/report.html" in text and "sum=" in text
    page = markdown_to_html("# T\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![f](f.png)", "t")
    assert "<table>" in page and '<img alt="f" src="f.png">' in page and "<h1>T</h1>" in page
    with pytest.raises(ValueError, match="does not exist"):
        write_index(tmp_path / "nope")
    assert Path(tmp_path / "runs" / "toy-1" / "report.html").exists()
