"""Parle and Elastic-SGD: time per mini-batch gradient against torch.optim.SGD, memory, communication.

Prints one JSON object:

- ``per_gradient``: median time of (zero_grad, forward, backward, step) per mini-batch gradient for each
  optimizer on a ~1M-parameter MLP (CPU), and its ratio to ``torch.optim.SGD(momentum=0.9, foreach=True)``
  timed side by side in this process (rounds interleaved, so that load changes hit all alike);
- ``extra_buffers``: optimizer state in parameter-sized buffers per replica (SGD with momentum: 1);
- ``distributed``: DistributedParle over 2 CPU processes (gloo, 127.0.0.1, launched with torchrun,
  one thread each), L = 25: the fraction of the training time spent in the all_reduce of the outer step.

Run: ``python benchmarks/bench_parle.py`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from deeplandscape.optim.distributed import DistributedParle
from deeplandscape.optim.elastic import ElasticSGD
from deeplandscape.optim.parle import Parle

SIZES = (512, 1024, 512, 10)  # 1,055,242 parameters
BATCH = 128


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(len(SIZES) - 1):
        layers += [nn.Linear(SIZES[i], SIZES[i + 1]), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def make_optimizers(n_parle: int) -> dict[str, tuple[list[nn.Module], torch.optim.Optimizer]]:
    out = {}
    m = mlp()
    out["sgd"] = ([m], torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, foreach=True))
    m = mlp()
    out["parle"] = ([m], Parle(m.parameters(), lr=0.01))
    m = mlp()
    out["parle_single_tensor"] = ([m], Parle(m.parameters(), lr=0.01, foreach=False))
    ms = [mlp(a) for a in range(n_parle)]
    out[f"parle_n{n_parle}_one_process"] = (ms, Parle([x.parameters() for x in ms], lr=0.01))
    m = mlp()
    out["elastic_sgd"] = ([m], ElasticSGD(m.parameters(), lr=0.01))
    return out


def time_steps(models, opt, X, Y, steps: int) -> float:
    """Seconds per mini-batch gradient (each replica computes one per step)."""
    crit = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        for m in models:
            crit(m(X), Y).backward()
        opt.step()
    return (time.perf_counter() - t0) / (steps * len(models))


def bench_per_gradient(rounds: int, steps: int, batch: int) -> dict:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(batch, SIZES[0], generator=g)
    Y = torch.randint(0, SIZES[-1], (batch,), generator=g)
    opts = make_optimizers(3)
    times: dict[str, list[float]] = {k: [] for k in opts}
    for models, opt in opts.values():  # warm-up, and allocates the optimizer state
        time_steps(models, opt, X, Y, 3)
    for _ in range(rounds):
        for name, (models, opt) in opts.items():
            times[name].append(time_steps(models, opt, X, Y, steps))
    sgd = statistics.median(times["sgd"])
    result = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        result[name] = {"ms_per_gradient": round(1e3 * med, 3), "ratio_to_sgd": round(med / sgd, 3)}
    buffers = {}
    for name, (models, opt) in opts.items():
        numel = sum(p.numel() for m in models for p in m.parameters())
        state = sum(
            t.numel() for st in opt.state.values() for t in st.values() if isinstance(t, torch.Tensor)
        )
        buffers[name] = round(state / numel, 3)
    return {"batch": batch, "per_gradient": result, "extra_buffers_per_replica": buffers}


def _worker(steps: int, L: int) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = mlp(rank)
    opt = DistributedParle(model.parameters(), lr=0.01, L=L)
    averager = opt._averager
    spent = [0.0, 0.0]  # time blocked in the collective: issuing it (flatten + all_reduce), finishing it
    real_mean = averager.mean_

    def timed_mean(out, replicas):
        t0 = time.perf_counter()
        finish = real_mean(out, replicas)
        spent[0] += time.perf_counter() - t0

        def timed_finish() -> None:  # wait, divide, copy into the master
            t1 = time.perf_counter()
            finish()
            spent[1] += time.perf_counter() - t1

        return timed_finish

    averager.mean_ = timed_mean
    g = torch.Generator().manual_seed(rank)
    X = torch.randn(BATCH, SIZES[0], generator=g)
    Y = torch.randint(0, SIZES[-1], (BATCH,), generator=g)
    crit = nn.CrossEntropyLoss()
    for _ in range(L):  # warm-up, one outer step included
        opt.zero_grad()
        crit(model(X), Y).backward()
        opt.step()
    dist.barrier()
    spent[:] = [0.0, 0.0]
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        crit(model(X), Y).backward()
        opt.step()
    t1 = time.perf_counter()
    opt.synchronize()  # the last outer step's average may still be in flight
    spent[1] += time.perf_counter() - t1
    total = time.perf_counter() - t0
    fractions = [None, None]
    dist.all_gather_object(fractions, {"issue_s": spent[0], "finish_s": spent[1], "total_s": total})
    if rank == 0:
        print(
            json.dumps(
                {
                    "processes": 2,
                    "L": L,
                    "steps": steps,
                    "outer_steps": steps // L,
                    "collective_fraction_per_rank": [
                        round((f["issue_s"] + f["finish_s"]) / f["total_s"], 5) for f in fractions
                    ],
                    "issue_ms_per_outer_step_per_rank": [
                        round(1e3 * f["issue_s"] / (steps // L), 3) for f in fractions
                    ],
                    "finish_ms_per_outer_step_per_rank": [
                        round(1e3 * f["finish_s"] / (steps // L), 3) for f in fractions
                    ],
                    "ms_per_step_per_rank": [round(1e3 * f["total_s"] / steps, 3) for f in fractions],
                }
            )
        )
    dist.destroy_process_group()


def bench_distributed(steps: int, L: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        __file__,
        "--worker",
        f"--steps={steps}",
        f"--L={L}",
    ]
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = proc.stdout
    line = [s for s in out.splitlines() if s.startswith("{")][-1]
    result = json.loads(line)
    result["command"] = " ".join(["torchrun", *cmd[3:]])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--steps", type=int, default=212, help="distributed steps (8 outer steps + 12)")
    ap.add_argument("--L", type=int, default=25)
    ap.add_argument("--batches", type=int, nargs="+", default=[BATCH, 512])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.worker:
        _worker(args.steps, args.L)
        return
    rounds, steps, dsteps = (2, 3, 62) if args.quick else (7, 10, args.steps)
    result = {"model_parameters": sum(p.numel() for p in mlp().parameters())}
    result["runs"] = [bench_per_gradient(rounds, steps, b) for b in args.batches]
    result["distributed"] = bench_distributed(dsteps, args.L)
    result["torch_threads"] = torch.get_num_threads()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
