import copy
import dataclasses
import json
import re

import pytest

from deeplandscape.app import _legacy_claims as fr
from deeplandscape.app.full_report import PlannedRun, build_report
from deeplandscape.experiments.claims import HELD, NOT_CHECKED, NOT_HELD, OUTCOMES
from deeplandscape.htmlreport import markdown_to_html, slug

# ------------------------------------------------------------------ claims on synthetic results.json
#
# For every check: results in which each claim's stated criterion is met (all "held"), and one edit per
# claim that breaks exactly that criterion ("did not hold" for that claim, the others unchanged).


def _floor():
    row = {"minima_fraction": 1.0}
    return {
        "p": 3,
        "e0": 1.657,
        "e_inf": 1.633,
        "sizes": [
            {**row, "n": 25, "mean": -1.47, "std": 0.11},
            {**row, "n": 200, "mean": -1.60, "std": 0.03},
        ],
    }


def _set(path, value):
    """An edit of the results: ``path`` is a tuple of keys and indices."""

    def edit(results):
        target = results
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _cmp(method, model="lenet", **values):
    return {"model": model, "method": method, "seeds": 2, "error_std": 0.1, **values}


CASES = {
    "floor": (
        _floor(),
        [_set(("sizes", 1, "std"), 0.2), _set(("sizes", 1, "mean"), -1.55), _set(("sizes", 0, "mean"), -1.62),
         _set(("sizes", 0, "minima_fraction"), 0.5)],
    ),
    "regimes": (
        {"regimes": [
            {"name": "exponential", "runs": 96, "distinct_minima": 29, "mean_cosine_distance": 0.93},
            {"name": "polynomial", "runs": 96, "distinct_minima": 3, "mean_cosine_distance": 0.1},
            {"name": "trivial", "runs": 96, "distinct_minima": 1, "mean_cosine_distance": 0.0},
        ]},
        [_set(("regimes", 1, "distinct_minima"), 40), _set(("regimes", 0, "mean_cosine_distance"), 0.2),
         _set(("regimes", 2),
              {"name": "trivial", "runs": 96, "distinct_minima": 2, "mean_cosine_distance": 0.3})],
    ),
    "gd-vs-sgd": (
        {"runs": [{"P": 1, "final_energy_mean": -1.50, "final_energy_std": 0.06},
                  {"P": 5, "final_energy_mean": -1.46, "final_energy_std": 0.06}]},
        [_set(("runs", 1, "final_energy_mean"), -1.30)],
    ),
    "tripartite": (
        {"sizes": [{"n": 8, "std": 0.14}, {"n": 30, "std": 0.08}]},
        [_set(("sizes", 1, "std"), 0.2)],
    ),
    "layers": (
        {"by_index": [
            {"k": 0, "count": 10, "mean_energy": -1.45, "fraction_below_minus_e_k": 0.0},
            {"k": 1, "count": 10, "mean_energy": -1.35, "fraction_below_minus_e_k": 0.0},
            {"k": 2, "count": 10, "mean_energy": -1.20, "fraction_below_minus_e_k": 0.0},
        ]},
        [_set(("by_index", 0, "fraction_below_minus_e_k"), 0.5), _set(("by_index", 2, "mean_energy"), -1.6)],
    ),
    "shift": (
        {"nu": 0.5, "distance_exponent": -0.4,
         "sizes": [{"max_energy_change": 0.03}, {"max_energy_change": 0.02}]},
        [_set(("distance_exponent",), -0.1), _set(("sizes", 0, "max_energy_change"), 1.5)],
    ),
    "hessian-spectrum": (
        {"models": [{"name": "fc", "near_zero_fraction": {"0.0001": 0.9, "0.01": 0.95}, "lambda_max": 5.0,
                     "lambda_min": -0.2, "method": "exact"},
                    {"name": "small-allcnn", "data": "CIFAR-10", "method": "fisher-diagonal",
                     "near_zero_fraction": {"1e-05": 0.94, "0.0001": 0.97, "0.01": 1.0}, "lambda_max": 0.3,
                     "lambda_min": 0.0}]},
        [_set(("models", 0, "near_zero_fraction", "0.0001"), 0.4), _set(("models", 0, "lambda_min"), -1.0),
         _set(("models", 1, "near_zero_fraction", "1e-05"), 0.3)],
    ),
    "sgd-noise": (
        {"models": [{"name": "fc", "params": 1242, "noise_samples": 512, "checkpoints": [
            {"fraction": 0.2, "rank": 30, "rank_fraction": 0.024, "eig_mean": 0.04, "eig_std": 0.4},
            {"fraction": 1.0, "rank": 25, "rank_fraction": 0.020, "eig_mean": 0.04, "eig_std": 0.5},
        ]}]},
        [_set(("models", 0, "checkpoints", 1, "rank_fraction"), 0.2),
         _set(("models", 0, "checkpoints", 0, "eig_std"), 2.0),
         _set(("models", 0, "checkpoints", 1, "eig_mean"), 0.5)],
    ),
    "limit-cycles": (
        {"acf_exceed99": 0.6, "fft_exceed99": 0.2, "fft_low_to_high_ratio": 3.0, "grad_norm_final": 0.25,
         "grad_norm_mean_after_burnin": 0.3, "gibbs_x1_sq": 1.04, "double_well": [
             {"lambda": 0.0, "sde_mean_x1_sq": 1.03, "sde_mean_x2_sq": 1.0, "limit_cycle": False},
             {"lambda": 1.5, "sde_mean_x1_sq": 1.00, "sde_mean_x2_sq": 0.98, "limit_cycle": True},
         ]},
        [_set(("acf_exceed99",), 0.01), _set(("fft_exceed99",), 0.01), _set(("grad_norm_final",), 1e-4),
         _set(("double_well", 1, "sde_mean_x2_sq"), 1.5), _set(("double_well", 0, "limit_cycle"), True)],
    ),
    "relaxation-1d": (
        {"terminal_mass_near_global_min": {"sgd": 0.01, "heat": 0.9, "viscous-hj": 0.85}},
        [_set(("terminal_mass_near_global_min", "heat"), 0.2)],
    ),
}  # fmt: skip


def test_every_check_has_cases():
    assert set(CASES) == set(fr.CHECKS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_claims_held_and_not_held(name):
    good, edits = CASES[name]
    claims = fr.check_claims(name, copy.deepcopy(good), {})
    assert [c.status for c in claims] == [HELD] * len(claims), claims
    assert len(edits) == len(claims)  # one edit per claim
    for position, edit in enumerate(edits):
        results = copy.deepcopy(good)
        edit(results)
        statuses = [c.status for c in fr.check_claims(name, results, {})]
        expected = [NOT_HELD if k == position else HELD for k in range(len(claims))]
        assert statuses == expected, (name, position, statuses)


def test_not_checked_cases():
    # The floor band is a large-n statement: not checked when the largest n is small.
    small = _floor()
    small["sizes"][1]["n"] = 80
    assert fr.check_claims("floor", small, {})[1].status == NOT_CHECKED
    # A comparison without the method the claim needs, an unknown experiment, unreadable results.
    only_sgd = {"runs": [_cmp("SGD", error_mean=1.0, hessian_top=2.0)]}
    assert {c.status for c in fr.check_claims("parle", only_sgd, {})} == {NOT_CHECKED}
    assert [c.status for c in fr.check_claims("no-such-experiment", {}, {})] == [NOT_CHECKED]
    (claim,) = fr.check_claims("floor", {"sizes": []}, {})
    assert claim.status == NOT_CHECKED and "unreadable" in claim.evidence


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
    assert {"complexity/complexity.png", "complexity/counts.png"} <= set(images)
    assert all((runs / image).stat().st_size > 1000 for image in images)
    page = report.html.read_text()
    assert all(f'src="{image}"' in page for image in images)
    assert '<h2 id="floor">' in page and 'href="#floor"' in page and 'href="floor/report.html"' in page
    assert (
        "`deeplandscape run floor --quick --seed 0 --out " in markdown and "sizes=10,20 runs=8`" in markdown
    )
    summary = json.loads(report.json.read_text())
    assert [s["status"] for s in summary["sections"]] == ["ran", "ran"]
    assert [c["status"] for c in summary["sections"][0]["claims"]] == [HELD, HELD]
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
