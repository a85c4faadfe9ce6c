"""The command line: `run NAME --help` lists the keys, `--json` on list/run, `python -m deeplandscape`,
aligned listings, and the index of `report DIR` with the full reports (the demo's) in it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deeplandscape import experiments
from deeplandscape.app.full_report import PlannedRun, build_report
from deeplandscape.cli import main
from deeplandscape.experiments import claims as c
from deeplandscape.experiments.spec import SCALES, Experiment, Param, Unit, UnitResult, show

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _decide_mean(run):
    return c.decide(c.mean(run.results["draws"], "mean draw"), above=-1.0)


def _held_out(run):
    raise c.NotChecked("the toy never measures it")


TOY = Experiment(
    name="toy-cli",
    description="a toy with two claims",
    reproduces="nothing",
    params={
        "draws": Param("int", 20, "draws per unit", quick=5, paper=200, low=2, high=1000),
        "factor": Param("float", 1.0, "multiplies the draws", low=0),
        "which": Param("str", "a", "a choice", choices=("a", "b")),
    },
    units=lambda config: [Unit("u0", {}), Unit("u1", {})],
    run_unit=lambda config, unit, seed: UnitResult(
        {"draws": (np.random.default_rng(seed).normal(size=config["draws"]) * config["factor"]).tolist()}
    ),
    finalize=lambda config, results, out: {"draws": [x for r in results for x in r.values["draws"]]},
    claims=(
        c.Claim("toy-cli.mean", "“the mean is above −1”", "Nowhere §1", "interval above −1", _decide_mean),
        c.Claim("toy-cli.other", "“something else”", "Nowhere §2", "not measured", _held_out),
    ),
    order=10_001,
)  # fmt: skip


@pytest.fixture
def toy():
    experiments.register(TOY)
    yield TOY
    experiments.unregister(TOY.name)


def test_run_name_help_lists_every_key_with_its_type_values_per_scale_and_range(capsys, toy):
    assert main(["run", "toy-cli", "--help"]) == 0
    text = capsys.readouterr().out
    assert "usage: deeplandscape run" in text and "keys of toy-cli" in text
    table = text[text.index("keys of toy-cli") :].splitlines()[1:]
    lines = {line.split()[0]: line.split() for line in table if line.startswith("  ") and line[2] != " "}
    assert lines["key"] == ["key", "type", *SCALES, "allowed"]
    for key, param in TOY.params.items():
        assert lines[key][:6] == [key, param.kind, *(show(param.at(scale)) for scale in SCALES)], key
        assert param.help in text
    assert " ".join(lines["draws"][6:]) == "2 to 1000"
    assert " ".join(lines["factor"][6:]) == "≥ 0, finite"
    assert " ".join(lines["which"][6:]) == "one of a, b"


def test_run_help_without_a_name_says_how_to_list_keys(capsys):
    assert main(["run", "--help"]) == 0
    assert "`deeplandscape run NAME --help` lists the keys" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2 and "required: name" in capsys.readouterr().err


def test_list_aligns_long_names_and_json_lists_every_experiment_with_its_keys(capsys, toy):
    main(["list"])
    lines = capsys.readouterr().out.splitlines()
    names = experiments.available()
    assert [line.split()[0] for line in lines] == names
    width = max(map(len, names))
    for line, name in zip(lines, names, strict=True):  # every description starts in the same column
        assert line[: width + 2] == name.ljust(width + 2) and line[width + 2] != " "
    main(["list", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in document] == names
    toy_entry = document[-1]
    assert toy_entry["claims"] == ["toy-cli.mean", "toy-cli.other"]
    assert [k["key"] for k in toy_entry["keys"]] == list(TOY.params)
    assert toy_entry["keys"][0]["values"] == {"quick": 5, "default": 20, "reference": 20, "paper": 200}


def test_run_json_prints_the_results_and_the_claims_verdicts(tmp_path, capsys, toy):
    out = tmp_path / "run"
    assert main(["run", "toy-cli", "--quick", "--out", str(out), "--quiet", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["run_dir"] == str(out) and document["experiment"] == "toy-cli"
    assert document["results"] == json.loads((out / "results.json").read_text())
    assert len(document["results"]["draws"]) == 10
    assert [(claim["id"], claim["status"]) for claim in document["claims"]] == [
        ("toy-cli.mean", c.HELD),
        ("toy-cli.other", c.NOT_CHECKED),
    ]
    assert document["summary"][c.HELD] == 1 and document["summary"][c.NOT_CHECKED] == 1
    assert document["claims"] == json.loads((out / "report.json").read_text())["sections"][0]["claims"]


def test_python_m_deeplandscape_is_the_command(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-m", "deeplandscape", "spinglass", "theory", "--p", "3"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["p"] == 3
    bad = subprocess.run(
        [sys.executable, "-m", "deeplandscape", "run", "nosuch"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "Unknown experiment: 'nosuch'" in bad.stderr


def test_report_index_includes_the_demo_and_report_directories(tmp_path, capsys, toy):
    """`report runs/` used to list the runs inside a demo's directory but not the demo's own report."""
    runs = tmp_path / "runs"
    build_report(runs / "demo-x", [PlannedRun("toy-cli", "quick")], quiet=True, title="a demo")
    assert main(["report", str(runs)]) == 0
    index = (runs / "index.md").read_text()
    assert "| [demo-x](demo-x/report.html) | a demo | quick | 1 | 1 held, 0 did not hold" in index
    assert "[demo-x/toy-cli](demo-x/toy-cli/report.html) | toy-cli | quick | finished" in index
