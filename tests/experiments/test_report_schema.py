"""The full report knows no experiment: one defined here, with two claims, appears in it with its verdicts,
tables and figures, and ``report.json`` follows the schema the README documents."""

import inspect
import json
import shutil

import numpy as np
import pytest

from deeplandscape import experiments
from deeplandscape.app import full_report
from deeplandscape.app.full_report import PlannedRun, build_report
from deeplandscape.experiments import claims as c
from deeplandscape.experiments.spec import Diagnostic, Experiment, Figure, Param, Table, Unit, UnitResult

PAPER_MEAN = 0.0  # "the coin is fair" (a paper we made up): the mean of ±1 draws is 0


def _units(config):
    return [Unit(f"chunk{k}", {"k": k}) for k in range(2)]


def _run_unit(config, unit, seed):
    draws = np.random.default_rng(seed).choice([-1.0, 1.0], size=config["draws"], p=[0.5, 0.5])
    return UnitResult(values={"k": unit.params["k"]}, arrays={"draws": draws + config["bias"]})


def _finalize(config, results, out):
    from deeplandscape.experiments._plot import plt, save

    draws = np.concatenate([r.arrays["draws"] for r in results])
    fig, ax = plt.subplots()
    ax.hist(draws)
    save(fig, out / "draws.png")
    return {"draws": draws.tolist(), "chunks": len(results)}


def _tables(results, config):
    return [
        Table(
            "summary",
            "mean of the draws",
            ("", "ours", "paper"),
            (("mean", float(np.mean(results["draws"])), PAPER_MEAN),),
        )
    ]


def _fair(run):
    stat = c.bootstrap(run.results["draws"], np.mean, "mean draw", what="draw")
    return c.decide(stat, above=PAPER_MEAN - 0.2, below=PAPER_MEAN + 0.2)


def _guarded(run):
    c.require_updates("the coin", completed=run.results["chunks"], required=3, what="chunks")
    return c.Verdict(c.HELD, "never reached")


TOY = Experiment(
    name="toy-coin",
    description="draws of a coin",
    reproduces="A made-up paper, Fig. 1",
    params={
        "draws": Param("int", 400, "draws per chunk", low=2),
        "bias": Param("float", 0.0, "added to every draw"),
    },
    units=_units,
    run_unit=_run_unit,
    finalize=_finalize,
    tables=_tables,
    figures=(Figure("draws.png", "histogram of the draws", "A made-up paper, Fig. 1: a fair coin"),),
    claims=(
        c.Claim("toy-coin.fair", "“the coin is fair”", "Made-up §1", "mean within ±0.2 of 0", _fair,
                shown_in="summary"),
        c.Claim("toy-coin.long", "“we flipped it long enough”", "Made-up §2", "≥ 3 chunks", _guarded,
                shown_in="draws.png"),
    ),
    diagnostics=(
        Diagnostic("toy-coin-unbiased", "toy-coin", ("bias=0", "draws=800"), ("toy-coin.fair",),
                   "is the coin fair once the bias is removed?"),
    ),
    order=10_000,
)  # fmt: skip


@pytest.fixture
def toy():
    experiments.register(TOY)
    yield TOY
    experiments.unregister(TOY.name)


def test_an_experiment_declared_in_a_test_file_appears_in_the_full_report(tmp_path, toy):
    assert experiments.available()[-1] == "toy-coin"
    report = build_report(tmp_path, [PlannedRun("toy-coin", "quick")], quiet=True)
    (section,) = report.sections
    assert [r.verdict.status for r in section.claims] == [c.HELD, c.UNDECIDABLE]
    assert section.warnings == [
        "toy-coin.long: the coin completed 2 chunks, fewer than the 3 that the comparison needs"
    ]
    page = report.html.read_text()
    assert '<a href="toy-coin/draws.png"><img' in page and 'id="toy-coin-table-summary"' in page
    assert 'href="#toy-coin-table-summary"' in page and 'href="#toy-coin-figure-draws-png"' in page
    # A biased coin: the same claim did not hold, decided by its interval.
    biased = build_report(tmp_path / "b", [PlannedRun("toy-coin", "quick", ("bias=0.5",))], quiet=True)
    assert biased.sections[0].claims[0].verdict.status == c.NOT_HELD


def test_report_json_schema(tmp_path, toy):
    report = build_report(tmp_path, [PlannedRun("toy-coin", "quick")], quiet=True)
    document = json.loads(report.json.read_text())
    assert set(document) >= {"sections", "summary"}
    assert document["summary"] == {c.HELD: 1, c.NOT_HELD: 0, c.UNDECIDABLE: 1, c.NOT_CHECKED: 0}
    (section,) = document["sections"]
    assert {"name", "scale", "status", "command", "claims"} <= set(section)
    assert section["name"] == "toy-coin" and section["scale"] == "quick" and section["status"] == "ran"
    assert section["command"].startswith("deeplandscape run toy-coin --quick --seed 0 --out ")
    fair, long = section["claims"]
    required = {
        "id",
        "claim",
        "source",
        "criterion",
        "status",
        "reason",
        "beyond_papers",
        "evidence",
        "statistic",
    }
    assert required <= set(fair) and required <= set(long)
    assert fair["status"] == c.HELD and fair["reason"] is None and fair["beyond_papers"] is False
    assert set(fair["statistic"]) >= {"name", "estimate", "ci_low", "ci_high", "level"}
    assert fair["statistic"]["ci_low"] <= fair["statistic"]["estimate"] <= fair["statistic"]["ci_high"]
    assert long["status"] == c.UNDECIDABLE and "2 chunks" in long["reason"] and long["statistic"] is None
    # Every run directory holds the same section, for that run alone.
    own = json.loads((tmp_path / "toy-coin" / "report.json").read_text())
    assert own["sections"][0]["claims"] == section["claims"]


def test_questions_beyond_the_papers_are_shown_but_not_counted(tmp_path, toy, monkeypatch):
    def shiny(run):
        return c.Verdict(c.HELD, "yes")

    extra = c.Claim(
        "toy-coin.extra", "is it shiny?", "not in the papers", "always", shiny, beyond_papers=True
    )
    monkeypatch.setitem(
        experiments._registered, "toy-coin", Experiment(**{**TOY.__dict__, "claims": (*TOY.claims, extra)})
    )
    report = build_report(tmp_path, [PlannedRun("toy-coin", "quick")], quiet=True)
    document = json.loads(report.json.read_text())
    assert document["summary"][c.HELD] == 1  # the extra "held" is not counted
    assert document["sections"][0]["claims"][2]["beyond_papers"] is True
    assert "beyond the papers" in report.markdown.read_text()


def test_the_full_report_module_names_no_experiment():
    source = inspect.getsource(full_report)
    named = [name for name in experiments.available() if f'"{name}"' in source or f"'{name}'" in source]
    assert named == []


def test_a_claim_that_did_not_hold_is_explained_by_its_diagnostic_run(tmp_path, toy):
    fair = build_report(tmp_path / "fair", [PlannedRun("toy-coin", "quick")], quiet=True)
    assert not (tmp_path / "fair" / "diagnostics").exists()  # nothing to explain: no diagnostic run
    report = build_report(tmp_path / "b", [PlannedRun("toy-coin", "quick", ("bias=0.5",))], quiet=True)
    claim = report.sections[0].claims[0]
    assert claim.verdict.status == c.NOT_HELD
    ((run_id, command),) = claim.explained_by
    assert (
        run_id == "toy-coin-unbiased"
        and "draws=800" in command
        and "diagnostics/toy-coin-unbiased" in command
    )
    document = json.loads(report.json.read_text())
    (explanation,) = document["explanations"]
    assert explanation["explains"] == ["toy-coin.fair"]
    assert explanation["section"]["claims"][0]["status"] == c.HELD  # the unbiased coin is fair
    assert document["summary"] == json.loads(fair.json.read_text())["summary"] | {c.HELD: 0, c.NOT_HELD: 1}
    page = report.html.read_text()
    assert 'href="#toy-coin-unbiased"' in page and 'id="toy-coin-unbiased"' in page
    assert (tmp_path / "b" / "diagnostics" / "toy-coin-unbiased" / "draws.png").is_file()


def test_results_md_is_generated_from_report_json(tmp_path, toy):
    from deeplandscape.cli import main

    report = build_report(tmp_path / "b", [PlannedRun("toy-coin", "quick", ("bias=0.5",))], quiet=True)
    out = tmp_path / "RESULTS.md"
    assert main(["results", f"toy={report.json}", "--out", str(out)]) == 0
    text = out.read_text()
    summary = "Of the papers' 2 claims: 0 held, 1 did not hold, 1 not decidable at this scale, 0 not checked."
    assert f"- **toy**: {summary}" in text
    assert "explained by `deeplandscape run toy-coin --quick" in text and "toy-coin.fair: held" in text
    assert "the coin completed 2 chunks" in text  # the reason of the claim not decidable
    assert "| mean |" in text  # the experiment's table, with the paper's number beside ours
    with pytest.raises(SystemExit):
        main(["results", str(tmp_path / "missing.json"), "--out", str(out)])


def test_an_experiment_may_not_name_a_parameter_like_a_reserved_key():
    for name in ("scale", "seed", "experiment"):
        with pytest.raises(ValueError, match="may not be named"):
            Experiment(**{**TOY.__dict__, "params": {**TOY.params, name: Param("float", 1.0, "x")}})


def test_results_md_says_when_an_explaining_run_was_not_run(tmp_path, toy):
    from deeplandscape.app.results_md import results_markdown

    runs = tmp_path / "b"
    build_report(runs, [PlannedRun("toy-coin", "quick", ("bias=0.5",))], quiet=True, run_missing=True)
    shutil.rmtree(runs / "diagnostics" / "toy-coin-unbiased")
    collected = build_report(
        runs, [PlannedRun("toy-coin", "quick", ("bias=0.5",))], quiet=True, run_missing=False
    )
    text = results_markdown([("toy", json.loads(collected.json.read_text()))])
    assert "explained by `deeplandscape run toy-coin --quick" in text
    assert "Not run in this report (missing); the command runs it." in text and "Its verdicts" not in text
    shutil.rmtree(runs / "toy-coin")
    empty = build_report(
        runs, [PlannedRun("toy-coin", "quick", ("bias=0.5",))], quiet=True, run_missing=False
    )
    text = results_markdown([("toy", json.loads(empty.json.read_text()))])
    assert "Not in this report (no finished run; their claims are not counted): `toy-coin` (missing)." in text
