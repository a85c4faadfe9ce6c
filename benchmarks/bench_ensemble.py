"""Networks trained per second as one :class:`deeplandscape.nets.Ensemble` versus one at a time.

E networks of the zoo (default: 100 × ``choromanska-25``, Choromanska et al. §5.1, 10×10 inputs) are
trained for ``--steps`` mini-batch SGD steps (momentum 0.9, batch 64, random inputs in [−1, 1] and random
labels; shared batches) in two ways in the same process: as one ensemble (stacked parameters,
:class:`EnsembleSGD`; the batched-MLP route for plain MLPs, ``--vmap`` forces the generic vmap route), and
one network after another with torch.optim.SGD (zero_grad, forward, cross entropy, backward, step). Each
way is timed ``--rounds`` times, interleaved; the figure is network-steps per second from the median times,
and their ratio ``speedup``. float32, CPU.

Prints one JSON object.
Usage: python benchmarks/bench_ensemble.py [--net NAME] [--members E] [--steps S] [--batch B] [--rounds R]
       [--threads T] [--vmap]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from deeplandscape import nets
from deeplandscape.nets.ensemble import Ensemble
from deeplandscape.optim import EnsembleSGD


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", default="choromanska-25")
    ap.add_argument("--members", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--vmap", action="store_true", help="force the vmap route (batched_mlp=False)")
    a = ap.parse_args()
    if a.threads is not None:
        torch.set_num_threads(a.threads)
    E, S = a.members, a.steps
    g = torch.Generator().manual_seed(0)
    shape = nets.spec(a.net).input_shape
    xs = torch.rand((S, a.batch, *shape), generator=g) * 2 - 1
    ys = torch.randint(10, (S, a.batch), generator=g)

    models = [nets.get(a.net, seed=k) for k in range(E)]
    ens = Ensemble(models, batched_mlp=not a.vmap)
    ens_opt = EnsembleSGD(ens, 0.01, momentum=0.9)
    opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) for m in models]

    def run_ensemble() -> float:
        t = time.perf_counter()
        for s in range(S):
            ens_opt.zero_grad()
            ens.losses(xs[s], ys[s]).sum().backward()
            ens_opt.step()
        return time.perf_counter() - t

    def run_single() -> float:
        t = time.perf_counter()
        for m, opt in zip(models, opts, strict=True):
            for s in range(S):
                opt.zero_grad()
                F.cross_entropy(m(xs[s]), ys[s]).backward()
                opt.step()
        return time.perf_counter() - t

    run_ensemble(), run_single()  # warm-up
    t_ens, t_one = [], []
    for _ in range(a.rounds):
        t_ens.append(run_ensemble())
        t_one.append(run_single())
    me, mo = statistics.median(t_ens), statistics.median(t_one)
    print(
        json.dumps(
            {
                "net": a.net,
                "members": E,
                "steps": S,
                "batch": a.batch,
                "route": "vmap" if ens._mlp is None else "batched-mlp",
                "parameters_per_net": nets.parameter_count(models[0]),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "machine": platform.machine(),
                "ensemble_s": me,
                "one_at_a_time_s": mo,
                "ensemble_net_steps_per_s": E * S / me,
                "one_at_a_time_net_steps_per_s": E * S / mo,
                "speedup": mo / me,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
