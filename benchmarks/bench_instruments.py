"""Throughput of the loss-slice instruments, side by side in one process (prints JSON).

For a small MLP and a small CNN on generated data, a 2-D filter-normalized slice of P grid points is
evaluated three ways:

* ``naive``: the reference approach of Li et al.'s code, copy x₀ + αδ + βη into the model's parameters
  and run a forward pass per grid point (then restore the weights);
* ``loop``: :func:`deeplandscape.analysis.slices.loss_plane` (the default): each point written into the
  parameters in place, the model restored bit for bit afterwards;
* ``vmap``: :func:`loss_plane` with ``vectorize=True``: ``torch.func.vmap`` of ``functional_call`` over
  chunks of grid points.

Reported: points per second for each, and the ratios vmap/naive and loop/naive. Also the agreement
(max relative difference) between the three.

Local Entropy (:func:`deeplandscape.analysis.width.local_entropy`) on both models: the n_chains × n_nodes
Langevin chains advanced together with one ``vmap`` call per step, against the same chains evaluated one by
one (``vectorize=False``; same random numbers, same estimate), after one warm-up call of each.

    .venv/bin/python benchmarks/bench_instruments.py [--points 9] [--repeats 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from deeplandscape.analysis.slices import loss_plane, random_direction


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )


@torch.no_grad()
def _naive_plane(model, loss_fn, batches, d1, d2, grid) -> np.ndarray:
    params = [p for p in model.parameters() if p.requires_grad]
    x0 = torch.cat([p.detach().reshape(-1) for p in params]).clone()
    model.eval()
    out = np.empty((len(grid), len(grid)))
    for i, a in enumerate(grid):
        for j, b in enumerate(grid):
            torch.nn.utils.vector_to_parameters(x0 + float(a) * d1 + float(b) * d2, params)
            n = sum(len(x) for x, _ in batches)
            out[i, j] = sum(float(loss_fn(model(x), y)) * len(x) for x, y in batches) / n
    torch.nn.utils.vector_to_parameters(x0, params)
    return out


def _time(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench(name: str, model: nn.Module, shape: tuple[int, ...], points: int, repeats: int) -> dict:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, *shape, generator=g)
    y = torch.randint(0, 10, (256,), generator=g)
    batches = [(x[i : i + 128], y[i : i + 128]) for i in range(0, 256, 128)]
    loss_fn = nn.CrossEntropyLoss()
    d1, d2 = random_direction(model, seed=0), random_direction(model, seed=1)
    grid = np.linspace(-1, 1, points)
    t_naive, naive = _time(lambda: _naive_plane(model, loss_fn, batches, d1, d2, grid), repeats)
    t_loop, loop = _time(lambda: loss_plane(model, loss_fn, batches, d1, d2, grid), repeats)
    t_vmap, fast = _time(lambda: loss_plane(model, loss_fn, batches, d1, d2, grid, vectorize=True), repeats)
    n = points * points
    return {
        "model": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "grid_points": n,
        "samples": 256,
        "points_per_s": {"naive": n / t_naive, "loop": n / t_loop, "vmap": n / t_vmap},
        "speedup_vs_naive": {"loop": t_naive / t_loop, "vmap": t_naive / t_vmap},
        "max_rel_diff": {
            "loop_vs_naive": float(np.max(np.abs(loop.losses - naive) / np.abs(naive))),
            "vmap_vs_loop": float(np.max(np.abs(fast.losses - loop.losses) / np.abs(loop.losses))),
        },
    }


def bench_width(name: str, model: nn.Module, shape: tuple[int, ...], steps: int) -> dict:
    from deeplandscape.analysis.width import local_entropy

    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, *shape, generator=g)
    y = torch.randint(0, 10, (256,), generator=g)
    batches = [(x[i : i + 128], y[i : i + 128]) for i in range(0, 256, 128)]
    kwargs = {"n_chains": 4, "n_nodes": 4, "burnin": 5, "n_steps": steps, "seed": 0}
    times, values = {}, {}
    for vectorize in (True, False):
        warm = {**kwargs, "n_steps": 2}
        local_entropy(model, nn.CrossEntropyLoss(), batches, 1e-3, vectorize=vectorize, **warm)
        start = time.perf_counter()
        result = local_entropy(model, nn.CrossEntropyLoss(), batches, 1e-3, vectorize=vectorize, **kwargs)
        times[vectorize], values[vectorize] = time.perf_counter() - start, result
    chain_steps = 16 * (5 + steps)
    return {
        "model": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "chains": 16,
        "chain_steps_per_s": {"vmap": chain_steps / times[True], "loop": chain_steps / times[False]},
        "speedup_vmap_vs_loop": times[False] / times[True],
        "abs_diff_of_estimates": abs(values[True].value - values[False].value),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=9, help="grid points per axis")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for this run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--width-steps", type=int, default=40, help="Langevin steps for the width benchmark")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results = [
        bench("mlp", _mlp(), (32,), args.points, args.repeats),
        bench("cnn", _cnn(), (1, 16, 16), args.points, args.repeats),
    ]
    torch.manual_seed(0)
    width = [
        bench_width("mlp", _mlp(), (32,), args.width_steps),
        bench_width("cnn", _cnn(), (1, 16, 16), args.width_steps // 4),
    ]
    report = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "slices": results,
        "width": width,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
