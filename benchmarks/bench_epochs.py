"""Effective epochs per second of each optimizer on lenet, as the comparison experiments train it.

The comparisons (``deeplandscape run entropy-sgd`` etc.) count progress in effective epochs: per-sample
gradients computed / training-set size. This script trains the Thesis §4.6 lenet (131,220 parameters) on
the digits up-sampled to 28×28 with the experiments' own training step
(:func:`deeplandscape.experiments._compare.single_model_step`, the same optimizer settings as the
experiments) and reports, per optimizer, effective epochs per second and the ratio to SGD with Nesterov
momentum. Optimizers run interleaved round by round in one process, each on its own copy of the network,
so a burst of load on the shared machine hits all alike; figures are medians over rounds.

Prints one JSON object.
Usage: python benchmarks/bench_epochs.py [--rounds R] [--steps S] [--batch-size B] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from deeplandscape import nets
from deeplandscape.experiments import _compare as C

METHODS = {
    "sgd": C.Method("SGD", "sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    "adam": C.Method("Adam", "adam", {"lr": 1e-3}),
    "anneal-sgd": C.Method("AnnealSGD", "anneal-sgd", {"J": 1e-3, "tau0": 500.0}, base="adam",
                           base_kwargs={"lr": 1e-3}),
    "gradient-noise": C.Method("GradientNoise", "gradient-noise", {}, base="adam", base_kwargs={"lr": 1e-3}),
    "sgld": C.Method("SGLD", "sgld", {"lr": 0.1, "temperature": 1e-6}),
    "entropy-sgd": C.Method("Entropy-SGD", "entropy-sgd", {"lr": 1.0, "inner_lr": 0.1}, tune="inner_lr"),
    "entropy-adam": C.Method("Entropy-Adam", "entropy-adam", {"inner_lr": 0.1}, tune="inner_lr"),
    "hj": C.Method("HJ", "hj", {"inner_lr": 0.1}, tune="inner_lr"),
    "heat": C.Method("Heat", "heat", {"lr": 0.1}),
    "sam": C.Method("SAM", "sam", {"rho": 0.05}, base="sgd",
                    base_kwargs={"lr": 0.1, "momentum": 0.9, "nesterov": True}),
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per method and round")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    config = {"data": "digits", "mnist_path": "", "train_subset": 0}
    d = C.load_images(config)
    n = len(d.y)
    steppers = {}
    for key, method in METHODS.items():
        model = nets.get("lenet", seed=0)
        optimizer = method.build(model.parameters(), 1.0, seed=0)
        steppers[key] = (C.single_model_step(model, optimizer), C.batch_order(n, args.batch_size, seed=0))
    rates: dict[str, list[float]] = {k: [] for k in METHODS}
    ratios: dict[str, list[float]] = {k: [] for k in METHODS}
    for _ in range(args.rounds + 1):  # the first round warms up and is discarded
        this_round = {}
        for key, (step, batches) in steppers.items():
            samples = 0
            start = time.perf_counter()
            for _ in range(args.steps):
                idx = next(batches)
                samples += step(d.x[idx], d.y[idx])
            this_round[key] = samples / n / (time.perf_counter() - start)
        if _ == 0:
            continue
        for key, rate in this_round.items():
            rates[key].append(rate)
            ratios[key].append(this_round["sgd"] / rate)
    print(
        json.dumps(
            {
                "model": "lenet",
                "parameters": nets.parameter_count(nets.get("lenet")),
                "data": f"digits up-sampled to 28x28 ({n} training samples)",
                "batch_size": args.batch_size,
                "threads": args.threads,
                "torch": torch.__version__,
                "machine": platform.machine(),
                "effective_epochs_per_second": {k: round(statistics.median(v), 3) for k, v in rates.items()},
                "time_per_effective_epoch_vs_sgd": {
                    k: round(statistics.median(v), 3) for k, v in ratios.items()
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
