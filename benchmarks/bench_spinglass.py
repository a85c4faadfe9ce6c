"""Throughput of the p-spin engine against a plain matmul measured in the same process.

Prints one JSON object. Work is counted as 2·B·n^p floating-point operations per energy/gradient call
(the contraction of the n^p couplings with σ^{⊗(p−1)}), whatever the implementation actually does.

    .venv/bin/python benchmarks/bench_spinglass.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from deeplandscape.spinglass import PSpinGlass, descend


def best_seconds(fn, repeats: int = 7, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(size: int = 2048) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / best_seconds(lambda: a @ b) / 1e9


def grad_gflops(n: int, p: int, batch: int) -> dict:
    h = PSpinGlass(n, p, seed=0)
    sigma = h.random_configurations(batch, seed=1)
    batched = best_seconds(lambda: h._energy_and_grad(sigma))
    singles = sigma[:16].split(1)
    one_at_a_time = best_seconds(lambda: [h._energy_and_grad(s) for s in singles], repeats=3) / len(singles)
    return {
        "n": n,
        "p": p,
        "batch": batch,
        "seconds_per_call": batched,
        "gflops": 2 * batch * n**p / batched / 1e9,
        "speedup_per_configuration_vs_one_at_a_time": one_at_a_time / (batched / batch),
    }


def descend_gflops(n: int, batch: int, steps: int) -> dict:
    h = PSpinGlass(n, 3, seed=0)
    sigma = h.random_configurations(batch, seed=1)
    result = descend(h, sigma, tol=0.0, max_steps=steps)  # tol = 0: every configuration runs all steps
    return {
        "n": n,
        "batch": batch,
        "steps": steps,
        "wall_seconds": result.wall_seconds,
        "gflops": 2 * result.gradient_evaluations * n**3 / result.wall_seconds / 1e9,
    }


def floor_run(n: int, runs: int) -> dict:
    """The ``floor`` experiment's work for one size: GD to convergence from ``runs`` starts."""
    h = PSpinGlass(n, 3, seed=0)
    result = descend(h, h.random_configurations(runs, seed=1), lr=0.1, tol=1e-4, max_steps=20_000)
    return {
        "n": n,
        "runs": runs,
        "wall_seconds": result.wall_seconds,
        "median_steps": float(result.steps.double().median()),
        "max_steps": int(result.steps.max()),
        "converged_fraction": result.converged_fraction,
        "gflops": 2 * result.gradient_evaluations * n**3 / result.wall_seconds / 1e9,
    }


def scaling(ns, batches, p: int = 3) -> dict:
    by_n = []
    for n in ns:
        h = PSpinGlass(n, p, seed=0)
        s = h.random_configurations(128, seed=1)
        by_n.append({"n": n, "seconds_per_call": best_seconds(lambda h=h, s=s: h._energy_and_grad(s), 5)})
    h = PSpinGlass(100, p, seed=0)
    by_b = []
    for b in batches:
        s = h.random_configurations(b, seed=1)
        by_b.append({"batch": b, "seconds_per_call": best_seconds(lambda s=s: h._energy_and_grad(s), 5)})
    return {"batch128_by_n": by_n, "n100_by_batch": by_b}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    ref = matmul_gflops(1024 if args.quick else 2048)
    grads = [grad_gflops(n, 3, 128) for n in ((50,) if args.quick else (100, 200))]
    desc = descend_gflops(100, 1000, 5 if args.quick else 30)
    out = {
        "threads": torch.get_num_threads(),
        "matmul_2048_gflops": ref,
        "grad": [{**g, "fraction_of_matmul": g["gflops"] / ref} for g in grads],
        "descend": {**desc, "fraction_of_matmul": desc["gflops"] / ref},
        "matmul_after_gflops": matmul_gflops(1024 if args.quick else 2048),
    }
    if not args.quick:
        floor = floor_run(100, 1000)
        out["floor_n100_r1000"] = {**floor, "fraction_of_matmul": floor["gflops"] / ref}
        out["scaling"] = scaling((50, 100, 150, 200), (16, 64, 256, 1024))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
