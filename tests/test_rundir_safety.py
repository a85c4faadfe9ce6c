"""Run directories never lose or mix a user's data: one owner at a time, units that know their
configuration, no writing into foreign directories, unique default names, validation before the first
write, recovery from damaged files, deterministic results.json.

Each test reproduces one of the situations that used to lose or mix data and checks the outcome against
what an uninterrupted, clean run gives (the independent truth here), or checks that foreign files are
byte-for-byte unchanged.
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from deeplandscape import experiments
from deeplandscape.app import _instruments as instruments
from deeplandscape.app.report import write_index
from deeplandscape.app.runner import run_experiment
from deeplandscape.cli import main
from deeplandscape.experiments.spec import (
    ConfigError,
    Experiment,
    MemoryNeed,
    Param,
    Unit,
    UnitResult,
    resolve_config,
)
from deeplandscape.rundir import RunDirError, config_digest, new_run_dir, with_version

SRC = str(Path(__file__).resolve().parents[1] / "src")
HOLD = "import sys\nfrom deeplandscape.rundir import hold\nwith hold(sys.argv[1]):"  # a light second process


def _toy(calls: list[str] | None = None, pause: float = 0.0) -> Experiment:
    """Three units drawn from their unit seeds (a resumed run must reproduce them exactly); a wall time
    in the summary, as the comparison experiments report one."""

    def run_unit(config, unit, seed):
        if calls is not None:
            calls.append(unit.key)
        time.sleep(pause)
        rng = np.random.default_rng(seed)
        return UnitResult(
            values={"key": unit.key, "draw": float(rng.normal())}, arrays={"x": rng.normal(size=3)}
        )

    def finalize(config, results, out):
        rows = [{"draw": r.values["draw"], "wall_seconds": time.perf_counter()} for r in results]
        return {"rows": rows, "sum": float(sum(r.arrays["x"].sum() for r in results))}

    return Experiment(
        name="toy",
        description="toy",
        reproduces="nothing",
        params={
            "count": Param("int", 3, "units", low=1, high=10),
            "sizes": Param("ints", [1, 2], "sizes", low=1),
            "rate": Param("float", 0.5, "rate", low=0.0),
        },
        units=lambda c: [Unit(f"u{i}", {}) for i in range(c["count"])],
        run_unit=run_unit,
        finalize=finalize,
        memory=lambda c: [MemoryNeed("sizes", 1e9 * max(c["sizes"]), "a gigabyte per size")],
    )


@pytest.fixture
def toy_cli(monkeypatch):
    """The command line with the toy experiment registered as ``toy``."""
    toy = _toy()
    real_get = experiments.get
    monkeypatch.setattr(experiments, "get", lambda name: toy if name == "toy" else real_get(name))
    return toy


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _cli_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------------- 1. one owner per directory


def test_a_directory_held_by_another_process_is_refused_at_once(tmp_path, capsys, toy_cli):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC}
    holder = subprocess.Popen(
        [sys.executable, "-c", f"{HOLD}\n    print('held', flush=True); sys.stdin.read()", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.perf_counter()
        err = _cli_error(capsys, ["run", "toy", "--out", str(out), "--resume", "--quiet"])
        assert time.perf_counter() - start < 5  # refused at once: nothing waits for the lock
        assert str(out) in err and f"another process (pid {holder.pid})" in err
        # a second real process is refused the same way
        other = subprocess.run(
            [sys.executable, "-c", f"{HOLD} pass", str(out)], capture_output=True, text=True, env=env
        )
        assert other.returncode != 0 and "is in use" in other.stderr
    finally:
        holder.communicate("")
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # the refused run wrote nothing
    run_experiment(_toy(), resolve_config(_toy(), "default", 0), out, quiet=True)  # free again


def test_two_resumes_with_different_seeds_never_mix(tmp_path):
    """Situation 1: two `--resume` runs with seeds 0 and 1 started together on one directory."""
    out = tmp_path / "run"
    toy = _toy(pause=0.2)
    outcomes: dict[int, object] = {}

    def start(seed: int) -> None:
        try:
            outcomes[seed] = run_experiment(
                toy, resolve_config(toy, "default", seed), out, resume=True, quiet=True
            )
        except RunDirError as error:
            outcomes[seed] = error

    threads = [threading.Thread(target=start, args=(seed,)) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finished = [seed for seed, value in outcomes.items() if isinstance(value, dict)]
    assert len(finished) == 1 and isinstance(outcomes[1 - finished[0]], RunDirError)
    seed = finished[0]
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == seed
    digest = config_digest(config)
    assert all(json.loads(p.read_text())["config_digest"] == digest for p in (out / "units").glob("*.json"))
    clean = run_experiment(toy, resolve_config(toy, "default", seed), tmp_path / "clean", quiet=True)
    assert (out / "results.json").read_bytes() == (tmp_path / "clean" / "results.json").read_bytes()
    assert outcomes[seed] == clean
    with pytest.raises(
        RunDirError, match=r"seed: \d in config.json, \d now"
    ):  # the other seed cannot resume it
        run_experiment(toy, resolve_config(toy, "default", 1 - seed), out, resume=True, quiet=True)


@pytest.mark.slow
def test_two_real_runs_with_different_seeds_never_mix(tmp_path):
    """Situation 1 with the real command: two processes, seeds 0 and 1, one directory, `--resume`."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deeplandscape.cli", "run", "floor", "--quick", "--quiet", "--out", str(out),
           "--resume", "sizes=12,14,16", "runs=4"]  # fmt: skip
    procs = [subprocess.Popen([*cmd, "--seed", str(s)], stderr=subprocess.PIPE, text=True) for s in (0, 1)]
    codes = [p.wait() for p in procs]
    errors = [p.stderr.read() for p in procs]
    assert 0 in codes and all(c in (0, 2) for c in codes), errors
    config = json.loads((out / "config.json").read_text())
    digest = config_digest(config)
    assert all(json.loads(p.read_text())["config_digest"] == digest for p in (out / "units").glob("*.json"))
    assert json.loads((out / "results.json").read_text()) == run_experiment(
        experiments.get("floor"),
        resolve_config(experiments.get("floor"), "quick", config["seed"], ["sizes=12,14,16", "runs=4"]),
        tmp_path / "clean",
        quiet=True,
    )


# ------------------------------------------------------------------------------------ 2. stale units


@pytest.mark.parametrize("resume", [False, True])
def test_units_without_config_are_refused(tmp_path, capsys, toy_cli, resume):
    """Situation 2: config.json is missing; the units (of seed 0) must not be reused by a run of seed 1,
    with or without --resume."""
    out = tmp_path / "run"
    run_experiment(toy_cli, resolve_config(toy_cli, "default", 0), out, quiet=True)
    (out / "config.json").unlink()
    before = _snapshot(out)
    err = _cli_error(
        capsys, ["run", "toy", "--seed", "1", "--out", str(out), *(["--resume"] if resume else [])]
    )
    assert "holds units but no config.json" in err and str(out) in err
    assert _snapshot(out) == before


def test_resume_with_another_configuration_names_the_difference(tmp_path, capsys, toy_cli):
    """Situation 2: `count=2` must not reuse the units of a run with `count=3`."""
    out = tmp_path / "run"
    run_experiment(toy_cli, resolve_config(toy_cli, "default", 0), out, quiet=True)
    before = _snapshot(out)
    err = _cli_error(capsys, ["run", "toy", "--out", str(out), "--resume", "count=2", "rate=0.25"])
    assert "count: 3 in config.json, 2 now" in err and "rate: 0.5 in config.json, 0.25 now" in err
    assert _snapshot(out) == before


def test_a_unit_of_another_configuration_is_computed_again(tmp_path, capsys):
    """A unit saved by another configuration (here: of seed 1, moved into a seed-0 run) is never reused."""
    calls: list[str] = []
    toy = _toy(calls)
    seed0, seed1 = tmp_path / "seed0", tmp_path / "seed1"
    run_experiment(toy, resolve_config(toy, "default", 0), seed0, quiet=True)
    run_experiment(toy, resolve_config(toy, "default", 1), seed1, quiet=True)
    expected = (seed0 / "results.json").read_bytes()
    for name in ("u1.json", "u1.npz"):
        (seed0 / "units" / name).write_bytes((seed1 / "units" / name).read_bytes())
    calls.clear()
    run_experiment(toy, resolve_config(toy, "default", 0), seed0, resume=True, quiet=True)
    assert calls == ["u1"]
    assert "u1.json was computed with another configuration" in capsys.readouterr().err
    assert (seed0 / "results.json").read_bytes() == expected


# -------------------------------------------------------------------------- 3. foreign directories


def _finished_run(tmp_path: Path) -> Path:
    toy = _toy()
    out = tmp_path / "finished"
    run_experiment(toy, resolve_config(toy, "default", 0), out, quiet=True)
    return out


FOREIGN = {
    "user files": lambda tmp: _user_files(tmp / "project"),
    "another experiment": lambda tmp: _other_experiment(tmp / "other"),
    "an inspect run": lambda tmp: _inspect_like(tmp / "inspected"),
}


def _user_files(path: Path) -> Path:
    path.mkdir()
    (path / "report.md").write_text("my notes\n")
    (path / "results.json").write_text('{"mine": 1}\n')
    return path


def _other_experiment(path: Path) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps(with_version({"experiment": "floor", "seed": 0})))
    (path / "results.json").write_text("{}")
    return path


def _inspect_like(path: Path) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps(with_version({"command": "inspect", "seed": 0})))
    (path / "results.json").write_text("{}")
    return path


@pytest.mark.parametrize("kind", sorted(FOREIGN))
@pytest.mark.parametrize("resume", [False, True])
def test_run_never_writes_into_a_foreign_directory(tmp_path, capsys, toy_cli, kind, resume):
    """Situation 3: `--out` naming the user's files, a run of another experiment, or an inspect run."""
    out = FOREIGN[kind](tmp_path)
    before = _snapshot(out)
    err = _cli_error(capsys, ["run", "toy", "--out", str(out), *(["--resume"] if resume else [])])
    assert str(out) in err
    assert _snapshot(out) == before and not (out / ".lock").exists()


def test_inspect_never_writes_into_another_run(tmp_path, capsys):
    """Situation 3: `inspect --out <a finished run>` used to overwrite its config, results and report."""
    out = _finished_run(tmp_path)
    before = _snapshot(out)
    err = _cli_error(
        capsys,
        ["inspect", "--model", "deeplandscape.analysis.examples:tiny_mlp",
         "--data", "deeplandscape.analysis.examples:gaussian_blobs", "--quick", "--out", str(out)],
    )  # fmt: skip
    assert "holds a run of 'toy'" in err and str(out) in err
    assert _snapshot(out) == before
    run_experiment(
        _toy(), resolve_config(_toy(), "default", 0), out, resume=True, quiet=True
    )  # still resumable


@pytest.mark.parametrize(
    "command", [["report", "--all", "--only", "complexity", "--scale", "quick"], ["demo"]]
)
def test_report_and_demo_never_write_into_foreign_directories(tmp_path, capsys, command):
    out = _user_files(tmp_path / "project")
    before = _snapshot(out)
    argv = [*command, str(out)] if command[0] == "report" else [*command, "--out", str(out)]
    err = _cli_error(capsys, argv)
    assert "report.md" in err and str(out) in err
    assert _snapshot(out) == before


def test_index_never_overwrites_a_foreign_index(tmp_path):
    (tmp_path / "index.html").write_text("<p>my page</p>")
    with pytest.raises(RunDirError, match=r"index\.html exists and was not written by deeplandscape"):
        write_index(tmp_path)
    assert (tmp_path / "index.html").read_text() == "<p>my page</p>"


# ------------------------------------------------------------------------ 4. same-second default names


def test_default_directories_started_in_the_same_second_differ(tmp_path, monkeypatch, toy_cli):
    """Situation 4: the clock is frozen, so every default name has the same timestamp."""
    frozen = time.gmtime(0)
    monkeypatch.setattr(time, "gmtime", lambda *a: frozen)
    monkeypatch.chdir(tmp_path)
    names = {new_run_dir("toy").name for _ in range(20)}
    assert len(names) == 20 and all(n.startswith("toy-19700101-000000-") for n in names)
    for _ in range(2):
        assert main(["run", "toy", "--quiet"]) == 0
    runs = [p for p in (tmp_path / "runs").iterdir() if (p / "results.json").exists()]
    assert len(runs) == 2


# ------------------------------------------------------------- 5. every input validated before writing


@pytest.mark.parametrize(
    "override, named",
    [
        ("rate=nan", "Invalid rate: nan"),
        ("rate=inf", "Invalid rate: inf"),
        ("sizes=5,,10", "Invalid sizes: '5,,10' has an empty item"),
        ("sizes=5,", "Invalid sizes: '5,' has an empty item"),
        ("sizes=5,5", "Invalid sizes: 5,5 repeats 5"),
        ("sizes=4,5", "Invalid sizes: 4,5 needs about 5 GB for a gigabyte per size, more than the 2.15 GB"),
        ("count=11", "Invalid count: 11"),
    ],
)
def test_invalid_values_are_refused_before_any_file_exists(
    tmp_path, capsys, monkeypatch, toy_cli, override, named
):
    monkeypatch.setenv("DEEPLANDSCAPE_MEMORY_LIMIT", "2G")
    monkeypatch.chdir(tmp_path)
    err = _cli_error(capsys, ["run", "toy", override, "--out", str(tmp_path / "out")])
    assert named in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, overrides, named",
    [
        ("floor", "sizes=100000", "Invalid sizes: 100000 needs about"),
        ("floor", "p=12", "Invalid p: 12 needs about"),
        ("floor", "runs=100000000", "Invalid runs: 100000000 needs about"),
        ("regimes", "runs=100000000", "Invalid runs: 100000000 needs about"),
        ("gd-vs-sgd", "parts=1,100000", "Invalid parts: 1,100000 needs about"),
        ("tripartite", "sizes=8,100000", "Invalid sizes: 8,100000 needs about"),
        ("layers", "starts=100000000", "Invalid starts: 100000000 needs about"),
        ("shift", "sizes=20,100000", "Invalid sizes: 20,100000 needs about"),
        ("hessian-spectrum", "max_exact=100000000", None),  # smallfc at the quick scale is small
        (
            "hessian-spectrum",
            "max_exact=100000000 fc_hidden=1000",
            "Invalid max_exact: 100000000 needs about",
        ),
        ("hessian-spectrum", "fc_hidden=1000000000", "Invalid fc_hidden: 1000000000 needs about"),
        ("choromanska-nets", "widths=5,2000 hessian_widths=5,2000", "Invalid hessian_widths: 5,2000 needs"),
        ("sgd-noise", "noise_samples=100000000", "Invalid noise_samples: 100000000 needs about"),
        ("limit-cycles", "particles=10000000000", "Invalid particles: 10000000000 needs about"),
        ("floor", "lr=nan", "Invalid lr: nan"),
        ("floor", "tol=inf", "Invalid tol: inf"),
        ("anneal", "methods=adam,,sam", "Invalid methods: 'adam,,sam' has an empty item"),
        ("anneal", "methods=adam,adam", "Invalid methods: 'adam,adam' repeats adam"),
    ],
)
def test_the_experiments_refuse_sizes_beyond_memory_and_bad_values(monkeypatch, name, overrides, named):
    monkeypatch.setenv("DEEPLANDSCAPE_MEMORY_LIMIT", "1G")
    experiment = experiments.get(name)
    if named is None:
        assert resolve_config(experiment, "quick", 0, overrides.split())
        return
    with pytest.raises(ConfigError) as info:
        resolve_config(experiment, "quick", 0, overrides.split())
    assert named in str(info.value)
    if "needs about" in named:
        assert "more than the 1.07 GB of DEEPLANDSCAPE_MEMORY_LIMIT" in str(info.value)


def test_every_quick_and_default_configuration_passes_its_own_checks(monkeypatch):
    monkeypatch.setenv("DEEPLANDSCAPE_MEMORY_LIMIT", "4G")
    for name in experiments.available():
        for scale in ("quick", "default"):
            resolve_config(experiments.get(name), scale, 0)


INSPECT = [
    "inspect", "--model", "deeplandscape.analysis.examples:tiny_mlp", "--model-kwargs", '{"hidden": 4}',
    "--data", "deeplandscape.analysis.examples:gaussian_blobs", "--data-kwargs", '{"n": 32}', "--quick",
]  # fmt: skip


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--lr", "-1"], "Invalid --lr: -1.0"),
        (["--lr", "nan"], "Invalid --lr: nan"),
        (["--exact-max", "-1"], "Invalid --exact-max: -1"),
        (["--model-kwargs", '{"hidden": 4, "width": 3}'], "Invalid --model-kwargs"),
        (["--data-kwargs", '{"samples": 3}'], "Invalid --data-kwargs"),
        (["--device", "cuda:7"], "Invalid --device: 'cuda:7'"),
        (["--device", "tpu"], "Invalid --device: 'tpu'"),
        (["--model", "deeplandscape.analysis.examples:nope"], "has no attribute 'nope'"),
    ],
)
def test_inspect_validates_every_argument_before_any_instrument(tmp_path, capsys, monkeypatch, extra, named):
    """Situation 5: `inspect --lr -1` used to be refused only after two instruments had run."""
    ran: list[str] = []
    monkeypatch.setitem(instruments.COMPUTE, "spectrum", lambda *a: ran.append("spectrum"))
    err = _cli_error(capsys, [*INSPECT, *extra, "--out", str(tmp_path / "out")])
    assert named in err
    assert ran == [] and list(tmp_path.iterdir()) == []


def test_inspect_refuses_an_exact_hessian_beyond_memory_before_any_work(tmp_path, capsys, monkeypatch):
    """Situation 5: `--exact-max 100000` on a large model used to fail after a minute, losing the spectrum."""
    from deeplandscape.analysis.examples import tiny_mlp

    monkeypatch.setenv("DEEPLANDSCAPE_MEMORY_LIMIT", "10M")
    d = sum(p.numel() for p in tiny_mlp(hidden=20).parameters())  # 5·d² float64 numbers: 5·543²·8 B
    assert d == 543
    model = ["--model-kwargs", '{"hidden": 20}']
    err = _cli_error(capsys, [*INSPECT, *model, "--exact-max", "100000", "--out", str(tmp_path / "out")])
    assert "Invalid --exact-max: 100000 needs about 11.8 MB for the exact Hessian (d = 543)" in err
    assert "more than the 10.5 MB of DEEPLANDSCAPE_MEMORY_LIMIT" in err
    assert list(tmp_path.iterdir()) == []


def test_inspect_keeps_finished_instruments_when_a_later_one_fails(tmp_path, monkeypatch):
    """An interruption in D(x) keeps the spectrum and the Fisher diagonal (saved units), and a failing
    instrument (an error, not an interruption) is reported while the others run."""

    def interrupted(*args):
        raise KeyboardInterrupt  # an interruption in the middle of the D(x) instrument

    monkeypatch.setitem(instruments.COMPUTE, "noise", interrupted)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main([*INSPECT, "--out", str(out)])
    assert info.value.code == 130
    assert {p.stem for p in (out / "units").glob("*.json")} == {"loss", "spectrum", "fisher"}
    with np.load(out / "units" / "spectrum.npz") as arrays:
        d = json.loads((out / "units" / "spectrum.json").read_text())["values"]["num_parameters"]
        assert arrays["hessian_eigenvalues"].size == d

    def broken(*args):
        raise FloatingPointError("the loss became nan")

    monkeypatch.setitem(instruments.COMPUTE, "noise", broken)
    assert main([*INSPECT, "--out", str(out), "--resume"]) == 1
    results = json.loads((out / "results.json").read_text())
    assert {"spectrum", "fisher", "width", "slices"} <= set(results)
    assert results["failed"] == {"noise": "FloatingPointError: the loss became nan"}


def test_inspect_that_finished_nothing_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(instruments, "loss_at_weights", interrupted)
    with pytest.raises(SystemExit):
        main([*INSPECT, "--out", str(tmp_path / "out")])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ 6. damaged files


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda p: p.with_suffix(".json").write_text('{"key": "u1", "val'), "u1.json cannot be read"),
        (lambda p: p.with_suffix(".json").write_text("[1, 2]"), "u1.json does not hold a unit"),
        (lambda p: p.write_bytes(p.read_bytes()[:40]), "u1.npz is damaged"),
        (lambda p: p.unlink(), "u1.npz cannot be read"),
    ],
    ids=["truncated json", "not a unit", "truncated npz", "missing npz"],
)
def test_a_damaged_unit_is_computed_again_on_resume(tmp_path, capsys, damage, said):
    calls: list[str] = []
    toy = _toy(calls)
    config = resolve_config(toy, "default", 0)
    run_experiment(toy, config, tmp_path / "clean", quiet=True)
    out = tmp_path / "damaged"
    run_experiment(toy, config, out, quiet=True)
    (out / "results.json").unlink()
    damage(out / "units" / "u1.npz")
    calls.clear()
    capsys.readouterr()
    run_experiment(toy, config, out, resume=True, quiet=True)
    assert calls == ["u1"]
    err = capsys.readouterr().err
    assert said in err and "computing it again" in err
    assert (out / "results.json").read_bytes() == (tmp_path / "clean" / "results.json").read_bytes()


def test_a_truncated_config_is_named_in_a_clean_error(tmp_path, capsys, toy_cli):
    out = _finished_run(tmp_path)
    (out / "config.json").write_text('{"experiment": "to')
    before = _snapshot(out)
    err = _cli_error(capsys, ["run", "toy", "--out", str(out), "--resume"])
    assert f"{out / 'config.json'} cannot be read" in err
    assert _snapshot(out) == before


def test_report_skips_a_broken_run_and_reports_the_others(tmp_path, capsys):
    """Situation 6: one broken run directory used to make `deeplandscape report runs/` fail for every run;
    the demo's layout (runs one level down) is listed too."""
    runs = tmp_path / "runs"
    toy = _toy()
    run_experiment(toy, resolve_config(toy, "default", 0), runs / "good", quiet=True)
    run_experiment(toy, resolve_config(toy, "default", 1), runs / "demo-x" / "toy", quiet=True)
    run_experiment(toy, resolve_config(toy, "default", 2), runs / "broken", quiet=True)
    (runs / "broken" / "results.json").write_text('{"sum": ')
    assert main(["report", str(runs)]) == 0
    captured = capsys.readouterr()
    assert f"{runs / 'broken'} skipped" in captured.err and "results.json cannot be read" in captured.err
    index = (runs / "index.md").read_text()
    assert "[good](good/report.html)" in index and "[demo-x/toy](demo-x/toy/report.html)" in index
    assert "| broken | ? | ? | damaged:" in index


# ------------------------------------------------------------------------ 7. deterministic results


def test_results_hold_no_wall_time_and_a_resumed_run_is_byte_identical(tmp_path):
    toy = _toy()
    config = resolve_config(toy, "default", 0)
    run_experiment(toy, config, tmp_path / "a", quiet=True)
    results = (tmp_path / "a" / "results.json").read_text()
    assert "wall_seconds" not in results
    timing = json.loads((tmp_path / "a" / "timing.json").read_text())
    assert sorted(timing["results_wall_seconds"]) == [f"rows[{i}].wall_seconds" for i in range(3)]
    part = tmp_path / "b"
    run_experiment(toy, config, part, quiet=True)
    for key in ("u1", "u2"):
        (part / "units" / f"{key}.json").unlink()
    run_experiment(toy, config, part, resume=True, quiet=True)
    assert (part / "results.json").read_text() == results


def test_a_unit_drawing_from_the_global_generators_does_not_depend_on_what_ran_before(tmp_path):
    """A unit that uses torch's global generator (dropout, say: the Fisher unit of hessian-spectrum did)
    gives the same numbers in a resumed run, where the generator's state differs, as in an uninterrupted
    one."""
    import torch

    def run_unit(config, unit, seed):
        return UnitResult(values={"x": float(torch.randn(())), "y": float(np.random.rand())})  # noqa: NPY002

    exp = Experiment(
        "global", "", "", {"count": Param("int", 3, "units", low=1)},
        lambda c: [Unit(f"u{i}", {}) for i in range(c["count"])], run_unit,
        lambda c, results, out: {"values": [r.values for r in results]},
    )  # fmt: skip
    config = resolve_config(exp, "default", 0)
    torch.manual_seed(0)
    run_experiment(exp, config, tmp_path / "a", quiet=True)
    (tmp_path / "a" / "units" / "u1.json").unlink()
    torch.manual_seed(123)  # another history before the resumed unit
    np.random.seed(123)  # noqa: NPY002
    run_experiment(exp, config, tmp_path / "a", resume=True, quiet=True)
    torch.manual_seed(7)
    run_experiment(exp, config, tmp_path / "b", quiet=True)
    assert (tmp_path / "a" / "results.json").read_bytes() == (tmp_path / "b" / "results.json").read_bytes()
    values = json.loads((tmp_path / "b" / "results.json").read_text())["values"]
    assert len({v["x"] for v in values}) == 3  # each unit its own draws


def test_newton_critical_points_are_the_same_bits_on_every_call():
    """The Newton steps of `layers` used the default lstsq driver (gelsy), whose first call in a process
    returned other bits than the later ones for the same input."""
    import torch

    from deeplandscape.spinglass import PSpinGlass, descend, newton_critical_points

    hamiltonian = PSpinGlass(20, 3, seed=0, dtype=torch.float64)
    start = descend(hamiltonian, hamiltonian.random_configurations(8, seed=1), lr=0.1, tol=0.0, max_steps=5)
    found = [
        newton_critical_points(hamiltonian, start.sigma, tol=1e-7, max_iterations=10).sigma for _ in range(3)
    ]
    assert all(torch.equal(found[0], other) for other in found[1:])


def test_the_exact_hessian_spectrum_is_taken_with_one_thread(monkeypatch):
    """MKL's multithreaded float32 eigensolver returned other bits from run to run for the trained
    smallfc Hessian (λ_min differed in the 7th digit between two demos): the dense route of
    hessian-spectrum takes its eigenvalues with one thread."""
    import torch

    from deeplandscape.experiments import hessian_spectrum as hs

    threads = []
    eigvalsh = torch.linalg.eigvalsh

    def recording(matrix):
        threads.append(torch.get_num_threads())
        return eigvalsh(matrix)

    monkeypatch.setattr(torch.linalg, "eigvalsh", recording)
    config = resolve_config(hs.EXPERIMENT, "quick", 0, ["fisher_model=none"])
    model, loss_fn, x, y = hs.build("smallfc", config, 0)
    torch.set_num_threads(2)
    try:
        hs.exact_spectrum(model, loss_fn, x[:20], y[:20], config)
        assert threads == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


@pytest.mark.slow
def test_hessian_spectrum_rerun_with_the_same_seed_is_byte_identical(tmp_path):
    """Two processes with two threads each, as `make demo` runs it."""
    cmd = [sys.executable, "-m", "deeplandscape.cli", "run", "hessian-spectrum", "--quiet",
           "seeds=2", "fisher_model=none"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    for name in ("a", "b"):
        subprocess.run([*cmd, "--out", str(tmp_path / name)], env=env, check=True)
    assert (tmp_path / "a" / "results.json").read_bytes() == (tmp_path / "b" / "results.json").read_bytes()
