"""Progress inside a unit: what a unit reports through deeplandscape.progress reaches the runner's display
(plain lines on a non-terminal, nothing with quiet), and costs nothing outside a run."""

from deeplandscape import progress
from deeplandscape.app import runner
from deeplandscape.experiments.spec import Experiment, Param, Unit, UnitResult, resolve_config


def _run_unit(config, unit, seed):
    for epoch in range(config["epochs"]):
        progress.advance(epoch + 1, config["epochs"], "epochs")
    return UnitResult({"key": unit.key})


TOY = Experiment(
    name="toy-progress",
    description="a unit that reports its epochs",
    reproduces="nothing",
    params={"epochs": Param("int", 3, "epochs per unit", low=1)},
    units=lambda config: [Unit("u0", {}), Unit("u1", {})],
    run_unit=_run_unit,
    finalize=lambda config, results, out: {"keys": [r.values["key"] for r in results]},
)


def test_progress_inside_a_unit_is_shown_by_the_runner(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", 0.0)  # every report is a line
    runner.run_experiment(TOY, resolve_config(TOY, "default", 0), tmp_path / "run")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[toy-progress]")]
    assert lines == [
        "[toy-progress] unit 1/2 u0: 1/3 epochs",
        "[toy-progress] unit 1/2 u0: 2/3 epochs",
        "[toy-progress] unit 1/2 u0: 3/3 epochs",
        lines[3],
        "[toy-progress] unit 2/2 u1: 1/3 epochs",
        "[toy-progress] unit 2/2 u1: 2/3 epochs",
        "[toy-progress] unit 2/2 u1: 3/3 epochs",
        lines[7],
    ]
    assert lines[3].startswith("[toy-progress] unit 1/2 u0: ") and lines[3].endswith("s")


def test_progress_lines_are_rate_limited_and_silent_when_quiet(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", 3600.0)
    runner.run_experiment(TOY, resolve_config(TOY, "default", 0), tmp_path / "run")
    assert "epochs" not in capsys.readouterr().err  # the unit lines only, within the interval
    monkeypatch.setattr(runner, "PROGRESS_INTERVAL", 0.0)
    runner.run_experiment(TOY, resolve_config(TOY, "default", 0), tmp_path / "quiet", quiet=True)
    assert capsys.readouterr().err == ""


def test_advance_outside_a_run_does_nothing_and_reporting_nests():
    progress.advance(1, 2, "outside")  # no display installed: nothing happens
    seen: list[tuple[str, int, int, str]] = []
    with progress.reporting(lambda *a: seen.append(("outer", *a))):
        progress.advance(1, 4)
        with progress.reporting(lambda *a: seen.append(("inner", *a))):
            progress.advance(2, 4, "steps")
        progress.advance(3, 4)
    progress.advance(4, 4)
    assert seen == [("outer", 1, 4, ""), ("inner", 2, 4, "steps"), ("outer", 3, 4, "")]
