"""Time per mini-batch gradient of each optimizer of deeplandscape.optim, relative to torch.optim.SGD.

For each model (an MLP of about 1M parameters and a small CNN, CPU, float32) and each optimizer, one
"step" is a full training iteration: zero_grad, forward, backward, optimizer.step(), on 64 random batches
with random labels taken in turn (a single repeated batch lets the large default steps of Entropy-SGD/HJ
drive the loss to 0, and the denormal gradients that follow slow down forward and backward passes). All
optimizers run in the same process, interleaved round by round, each on its own copy of the model; the
reported ratio is median(step time) / median(step time of SGD(momentum=0.9, foreach=True)). The memory
figures count the optimizer-state tensors (saved in state_dict) and the per-step work buffers the optimizer
keeps, in units of the model's parameter count.

Prints one JSON object.
Usage: python benchmarks/bench_optim.py [--quick] [--rounds R] [--steps S] [--mlp-batch B] [--threads T]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time

import torch
from torch import nn

import deeplandscape.optim as dlo


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 10))


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


OPTIMIZERS = {
    "torch-sgd": lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, foreach=True),
    # AnnealSGD's base below: torch's own Nesterov path, for reference
    "torch-sgd(nesterov)": lambda ps: torch.optim.SGD(ps, lr=0.01, momentum=0.9, nesterov=True, foreach=True),
    "anneal-sgd": lambda ps: dlo.AnnealSGD(ps, lr=0.01, momentum=0.9, nesterov=True, foreach=True, seed=0),
    "gradient-noise": lambda ps: dlo.GradientNoise(ps, lr=0.01, momentum=0.9, foreach=True, seed=0),
    "sgld": lambda ps: dlo.SGLD(ps, lr=0.01, seed=0),
    "entropy-sgd": lambda ps: dlo.EntropySGD(ps, seed=0),
    "entropy-sgd(noise=0)": lambda ps: dlo.EntropySGD(ps, noise=0.0, seed=0),
    "entropy-adam": lambda ps: dlo.EntropyAdam(ps, seed=0),
    "hj": lambda ps: dlo.HJ(ps, seed=0),
    "heat": lambda ps: dlo.Heat(ps, seed=0),
}


def synchronous(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """``opt`` drawing its noise in the step (no drawing ahead on the worker thread)."""
    opt.prefetch_noise = False
    return opt


for _name in ("gradient-noise", "sgld", "entropy-sgd", "entropy-adam", "heat"):
    OPTIMIZERS[f"{_name}(sync)"] = lambda ps, make=OPTIMIZERS[_name]: synchronous(make(ps))


def wait_for_noise(opt: torch.optim.Optimizer) -> None:
    """Wait until the noise drawn ahead by ``opt`` is ready, so that a timed block pays for every draw it
    starts (the first step of a block uses the draw paid by the block before)."""
    pending = opt.__dict__.get("_prefetch")
    if pending is not None:
        pending.future.result()


def work_buffers(opt: torch.optim.Optimizer, num_params: int) -> float:
    """Per-step work buffers kept by the optimizer (not saved), in parameter-sized units."""
    return sum(t.numel() for t in getattr(opt, "_scratch", {}).values()) / num_params


def state_buffers(opt: torch.optim.Optimizer, num_params: int) -> float:
    """Persistent optimizer-state tensors, in parameter-sized units (a wrapped base optimizer included)."""
    total = 0
    opts = [opt] + ([opt.base] if hasattr(opt, "base") else [])
    for o in opts:
        for state in o.state.values():
            for v in state.values():
                if isinstance(v, torch.Tensor) and v.numel() > 1:
                    total += v.numel()
    return total / num_params


def bench_model(
    name: str, make_model, batches: list[tuple[torch.Tensor, torch.Tensor]], rounds: int, steps: int
) -> dict:
    torch.manual_seed(0)
    base_model = make_model()
    num_params = sum(p.numel() for p in base_model.parameters())
    runs = {}
    for opt_name, make_opt in OPTIMIZERS.items():
        model = copy.deepcopy(base_model)
        runs[opt_name] = (model, make_opt(model.parameters()), [], [0], [])
    loss_fn = nn.CrossEntropyLoss()

    def one_step(model, opt, counter) -> float:
        """A training iteration; returns the time spent in ``opt.step()``."""
        x, y = batches[counter[0] % len(batches)]
        counter[0] += 1
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        t0 = time.perf_counter()
        opt.step()
        return time.perf_counter() - t0

    for model, opt, _, counter, _ in runs.values():  # warm-up (allocations, first-step state)
        for _ in range(3):
            one_step(model, opt, counter)
    for _ in range(rounds):
        for model, opt, times, counter, step_times in runs.values():
            t0 = time.perf_counter()
            in_step = sum(one_step(model, opt, counter) for _ in range(steps))
            wait_for_noise(opt)
            times.append((time.perf_counter() - t0) / steps)
            step_times.append(in_step / steps)
    ref = statistics.median(runs["torch-sgd"][2])
    x, y = batches[0]
    out = {"params": num_params, "batch": int(x.shape[0]), "sgd_ms_per_step": 1e3 * ref, "optimizers": {}}
    for opt_name, (model, opt, times, _, step_times) in runs.items():
        with torch.no_grad():
            final_loss = loss_fn(model(x), y).item()
        out["optimizers"][opt_name] = {
            "ratio_vs_sgd": statistics.median(times) / ref,
            # the part of a training iteration spent in step() (waits for noise drawn ahead included)
            "step_ms": 1e3 * statistics.median(step_times),
            "state_buffers": round(state_buffers(opt, num_params), 3),
            "work_buffers": round(work_buffers(opt, num_params), 3),
            # a loss driven to ~0 makes gradients denormal and fwd/bwd slow: shown to rule that out
            "final_loss": final_loss,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (smoke test)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--mlp-batch", type=int, default=128)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: unchanged)"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rounds, steps = (2, 3) if args.quick else (args.rounds, args.steps)
    g = torch.Generator().manual_seed(0)
    b = args.mlp_batch
    # 64 random batches with random labels, cycled: no optimizer can drive the loss to 0 in the run
    mlp_batches = [
        (torch.randn(b, 784, generator=g), torch.randint(0, 10, (b,), generator=g)) for _ in range(64)
    ]
    cnn_batches = [
        (torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)) for _ in range(64)
    ]
    result = {
        "benchmark": "optim: step time / step time of torch.optim.SGD(momentum=0.9, foreach=True)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "rounds": rounds,
        "steps_per_round": steps,
        "mlp": bench_model("mlp", mlp, mlp_batches, rounds, steps),
        "cnn": bench_model("cnn", cnn, cnn_batches, rounds, steps),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
