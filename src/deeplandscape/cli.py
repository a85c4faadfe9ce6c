"""The ``deeplandscape`` command line: thin, it parses arguments and calls the library.

deeplandscape spinglass theory --p 3            E_0, E_1, E_2, E_∞ and ν_c as JSON
deeplandscape spinglass descend --n 100 --p 3   batched gradient descent, JSON summary
deeplandscape demo                              the floor picture on embedded defaults
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch

from deeplandscape import __version__

DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
    from deeplandscape.spinglass import PSpinGlass, descend

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


def _demo(args: argparse.Namespace) -> int:
    from deeplandscape.experiments.floor import FloorConfig, run_floor
    from deeplandscape.rundir import new_run_dir

    config = FloorConfig(sizes=tuple(args.sizes), runs=args.runs, seed=args.seed)
    out = new_run_dir("demo-floor", args.out)
    print(f"floor: n in {list(config.sizes)}, {config.runs} runs each ...", flush=True)
    results = run_floor(config, out)
    for row in results["sizes"]:
        print(
            f"  n={row['n']:4d}  mean H/n={row['mean']:.4f}  std={row['std']:.4f}  "
            f"converged={row['converged_fraction']:.2f}  minima={row['minima_fraction']:.2f}"
        )
    print(f"-E0={-results['e0']:.4f}  -Einf={-results['e_inf']:.4f}")
    print(f"run directory: {out}  (open {out / 'report.md'} and {out / 'floor.png'})")
    return 0


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

    demo = commands.add_parser("demo", help="the floor of the 3-spin glass on embedded defaults")
    demo.add_argument("--out", default=None, help="run directory (default runs/demo-floor-<time>)")
    demo.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100])
    demo.add_argument("--runs", type=int, default=200)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FloatingPointError) as error:
        parser.exit(2, f"deeplandscape: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
