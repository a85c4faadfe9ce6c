import dataclasses
import json
import re

import pytest

from deeplandscape.app.full_report import PlannedRun, build_report
from deeplandscape.experiments.claims import HELD, OUTCOMES
from deeplandscape.htmlreport import markdown_to_html, slug

# ------------------------------------------------------------------ collecting, running, failing

TINY = {
    "complexity": ("points=100",),
    "floor": ("sizes=10,20", "runs=8"),
}


def _plan(*names):
    return [PlannedRun(n, "quick", TINY[n]) for n in names]


def _images(markdown):
    return re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", markdown)


def test_report_links_every_figure_relative_to_itself(tmp_path):
    runs = tmp_path / "runs"
    report = build_report(runs, _plan("complexity", "floor"), quiet=True)
    assert [s.status for s in report.sections] == ["ran", "ran"] and not report.failed
    markdown = report.markdown.read_text()
    images = _images(markdown)
    assert {
        "complexity/complexity.png",
        "complexity/counts.png",
        "floor/floor.png",
        "floor/floor_fit.png",
    } == set(images)
    assert all((runs / image).stat().st_size > 1000 for image in images)
    page = report.html.read_text()
    assert all(f'src="{image}"' in page for image in images)
    assert '<h2 id="floor">' in page and 'href="#floor"' in page and 'href="floor/report.html"' in page
    assert (
        "`deeplandscape run floor --quick --seed 0 --out " in markdown and "sizes=10,20 runs=8`" in markdown
    )
    summary = json.loads(report.json.read_text())
    assert [s["status"] for s in summary["sections"]] == ["ran", "ran"]
    assert [c["status"] for c in summary["sections"][0]["claims"]] == [HELD, HELD, HELD]
    assert summary["summary"][HELD] >= 2 and set(summary["summary"]) == set(OUTCOMES)


def test_finished_runs_are_collected_and_unfinished_ones_resumed(tmp_path, monkeypatch):
    from deeplandscape.experiments import floor

    runs = tmp_path / "runs"
    first = build_report(runs, _plan("floor"), quiet=True)
    assert first.sections[0].status == "ran"

    def boom(*args):
        raise AssertionError("recomputed")

    monkeypatch.setattr(floor, "EXPERIMENT", dataclasses.replace(floor.EXPERIMENT, run_unit=boom))
    stamp = (runs / "floor" / "results.json").stat().st_mtime_ns
    second = build_report(runs, _plan("floor"), quiet=True)
    assert second.sections[0].status == "collected"
    assert (runs / "floor" / "results.json").stat().st_mtime_ns == stamp
    assert [r.verdict for r in second.sections[0].claims] == [r.verdict for r in first.sections[0].claims]

    # An unfinished run (finished units, no results.json) is resumed from its units, not recomputed.
    (runs / "floor" / "results.json").unlink()
    third = build_report(runs, _plan("floor"), quiet=True)
    assert third.sections[0].status == "resumed"
    assert json.loads((runs / "floor" / "results.json").read_text()) == first.sections[0].results


def test_failed_experiment_is_recorded_and_others_survive(tmp_path, monkeypatch):
    from deeplandscape.cli import main
    from deeplandscape.experiments import floor

    def broken(*args):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(floor, "EXPERIMENT", dataclasses.replace(floor.EXPERIMENT, run_unit=broken))
    runs = tmp_path / "runs"
    plan = [*_plan("floor", "complexity"), PlannedRun("no-such-experiment", "quick")]
    report = build_report(runs, plan, quiet=True)
    assert report.failed == ["floor", "no-such-experiment"]
    assert [s.status for s in report.sections] == ["failed", "ran", "failed"]
    markdown = report.markdown.read_text()
    assert "RuntimeError: the disk is on fire" in markdown and "Unknown experiment" in markdown
    assert "complexity/complexity.png" in markdown  # the other experiment is whole
    assert all(r.verdict.status == HELD for r in report.sections[1].claims)

    # A directory that holds another scale's run is never overwritten: the experiment fails.
    rerun = build_report(runs, [PlannedRun("complexity", "default")], quiet=True)
    assert rerun.failed == ["complexity"] and "holds a run at scale quick" in rerun.sections[0].error

    # The command line exits non-zero when an experiment failed, zero otherwise.
    args = ["report", "--all", "--scale", "quick", "--quiet"]
    assert main([*args, "--only", "floor,complexity", str(tmp_path / "cli")]) == 1
    assert main([*args, "--only", "complexity", str(runs)]) == 0
    with pytest.raises(SystemExit):
        main([*args, "--only", "nosuch", str(runs)])


def test_missing_runs_are_listed_without_running(tmp_path):
    report = build_report(tmp_path, _plan("complexity"), run_missing=False, quiet=True)
    assert report.sections[0].status == "missing" and not (tmp_path / "complexity").exists()
    assert "(not run); command: `deeplandscape run complexity --quick" in report.markdown.read_text()


# ------------------------------------------------------------------ Markdown helpers


def test_markdown_anchors_lists_alignment_and_linked_figures():
    page = markdown_to_html(
        "# A b\n\n## A b\n\n- [x](#a-b)\n- y\n\n| t | n |\n|:---|---|\n| a | 1 |\n\n## C {#own}\n\n"
        "[![f](d/f.png)](d/f.png)",
        "t",
        anchors=True,
    )
    assert '<h1 id="a-b">' in page and '<h2 id="a-b-2">' in page and '<h2 id="own">C</h2>' in page
    assert '<ul><li><a href="#a-b">x</a></li><li>y</li></ul>' in page
    assert '<td style="text-align:left">a</td><td>1</td>' in page
    assert '<a href="d/f.png"><img alt="f" src="d/f.png"></a>' in page
    assert "<h1>A b</h1>" in markdown_to_html("# A b", "t")  # no anchors unless asked
    assert slug("gd-vs-sgd") == "gd-vs-sgd" and slug("Claims summary") == "claims-summary"
