"""Curvature and mini-batch-noise instruments: cost ratios measured side by side in one process.

    .venv/bin/python benchmarks/bench_curvature.py [--threads 1] [--quick] [--only SECTION]

Prints one JSON object:
  hvp_vs_grad        one Hessian–vector product (HessianOperator.matvec: each mode, and the default) against
                     one eager ``loss.backward()`` on the same batch, for MLPs and CNNs (target: the default
                     within 1.05× of the fastest mode);
  lanczos_top10      top-10 (by magnitude) Hessian eigenvalues of a ≥100k-parameter MLP: Lanczos (full
                     re-orthogonalization) against power iteration with deflation, HVPs, residuals, time,
                     agreement;
  per_sample         per-sample gradients of a batch of 256 (``per_sample_gradients``: the layer path for
                     these nn.Sequential models, into fresh memory and into a reused ``out=`` buffer; and its
                     vmap path, forced) against a Python loop (target ≥ 8×);
  diffusion          D(x) spectrum for d ≈ 400k, N = 512 by the Gram route: peak resident memory above the
                     baseline against the N × d gradient matrix (target ≤ 1.2×), and the spectrum's time
                     against a plain C·Cᵀ (target ≤ 1.2×).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch
from torch import nn

from deeplandscape.analysis import per_sample
from deeplandscape.analysis.hvp import HessianOperator
from deeplandscape.analysis.lanczos import lanczos
from deeplandscape.analysis.noise import diffusion_spectrum, diffusion_spectrum_from_gradients
from deeplandscape.analysis.per_sample import per_sample_gradients

CE = nn.CrossEntropyLoss()


def _paired_times(base, other, repeats: int) -> tuple[float, float, float]:
    """Median times of ``base`` and ``other`` run alternately, and the median of the per-pair ratios
    (a burst of load on a shared machine then hits both members of a pair alike)."""
    base()
    other()
    tb, to, ratios = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        base()
        t1 = time.perf_counter()
        other()
        t2 = time.perf_counter()
        tb.append(t1 - t0)
        to.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(tb), statistics.median(to), statistics.median(ratios)


def _mlp(hidden: int = 128) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, hidden), nn.Tanh(), nn.Linear(hidden, 10))


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.Tanh(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 5), nn.Tanh(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.Tanh(), nn.Linear(64, 10),
    )  # fmt: skip


def _data(n: int, shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


def _mlp_1m() -> nn.Module:
    """MLP 784–1024–256–10 with ReLU: 1,068,810 parameters (the model of bench_optim.py)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 10)
    )  # fmt: skip


def _cnn_421k() -> nn.Module:
    """conv32–pool–conv64–pool–fc128–fc10 on 28×28 inputs, ReLU: 421,642 parameters (bench_optim.py)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip


HVP_MODES = ("double", "forward", "reverse")


def bench_hvp_vs_grad(repeats: int, batch: int) -> dict:
    """Every HVP mode and the default against one gradient, all run in turn within each round (so a burst
    of load hits them alike); per-round ratios, medians over rounds."""
    out = {}
    models = [
        ("mlp_1m", _mlp_1m(), (784,)),
        ("cnn_421k", _cnn_421k(), (1, 28, 28)),
        ("mlp_100k", _mlp(), (784,)),
        ("cnn_47k", _cnn(), (1, 28, 28)),
    ]
    for name, model, shape in models:
        x, y = _data(batch, shape)

        def grad_step(model=model, x=x, y=y):
            model.zero_grad(set_to_none=True)
            CE(model(x), y).backward()

        ops = {mode: HessianOperator(model, CE, (x, y), mode=mode) for mode in HVP_MODES}
        ops["default"] = HessianOperator(model, CE, (x, y))
        v = torch.randn(ops["default"].dim, generator=torch.Generator().manual_seed(1))
        runs = {"grad": grad_step, **{k: (lambda op=op, v=v: op.matvec(v)) for k, op in ops.items()}}
        for run in runs.values():  # warm-up
            run()
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(repeats):
            for key, run in runs.items():
                t0 = time.perf_counter()
                run()
                times[key].append(time.perf_counter() - t0)
        ratios = {
            k: statistics.median(t / g for t, g in zip(times[k], times["grad"], strict=True)) for k in ops
        }
        default_over_fastest = ratios["default"] / min(ratios[m] for m in HVP_MODES)
        out[name] = {
            "params": ops["default"].dim,
            "batch": batch,
            "grad_s": statistics.median(times["grad"]),
            "default_mode": ops["default"].mode,
            "hvp_over_grad": ratios,
            "default_over_fastest_mode": default_over_fastest,
        }
    return out


def _power_iteration_deflation(op: HessianOperator, k: int, tol: float, max_iter: int, seed: int) -> dict:
    """Plain power iteration on H − Σ_j λ_j u_j u_jᵀ, one eigenpair at a time (largest magnitude)."""
    g = torch.Generator().manual_seed(seed)
    values, vectors, hvps = [], [], 0
    for _ in range(k):
        v = torch.randn(op.dim, generator=g)
        v /= v.norm()
        lam = 0.0
        for _ in range(max_iter):
            w = op.matvec(v)
            hvps += 1
            for lj, uj in zip(values, vectors, strict=True):
                w -= lj * (uj @ v) * uj
            new = float(v @ w)
            v = w / w.norm()
            if abs(new - lam) <= tol * abs(new):
                lam = new
                break
            lam = new
        values.append(lam)
        vectors.append(v)
    residuals = [float((op.matvec(u) - lj * u).norm()) for lj, u in zip(values, vectors, strict=True)]
    return {"eigenvalues": values, "hvps": hvps, "residuals": residuals}


def bench_lanczos(n: int, hidden: int) -> dict:
    model = _mlp(hidden)
    x, y = _data(n, (784,))
    op = HessianOperator(model, CE, [(x[i : i + 256], y[i : i + 256]) for i in range(0, n, 256)])
    t0 = time.perf_counter()
    result = lanczos(op, k=10, which="LM", tol=1e-3, seed=0)
    t_lanczos = time.perf_counter() - t0
    op_power = HessianOperator(model, CE, [(x[i : i + 256], y[i : i + 256]) for i in range(0, n, 256)])
    t0 = time.perf_counter()
    power = _power_iteration_deflation(op_power, 10, tol=1e-4, max_iter=500, seed=0)
    t_power = time.perf_counter() - t0  # includes the 10 HVPs of its residual check
    lam = result.eigenvalues.tolist()
    # Power iteration orders by |λ| too; compare sorted by magnitude.
    order = sorted(range(10), key=lambda i: abs(power["eigenvalues"][i]), reverse=True)
    power_sorted = [power["eigenvalues"][i] for i in order]
    rel = [abs(a - b) / abs(a) for a, b in zip(lam, power_sorted, strict=True)]
    return {
        "params": op.dim,
        "samples": n,
        "lanczos": {
            "eigenvalues": lam,
            "residuals": result.residuals.tolist(),
            "relative_residual_max": float(result.residuals.max()) / max(abs(v) for v in lam),
            "converged": bool(result.converged.all()),
            "hvps": result.num_matvecs,
            "time_s": t_lanczos,
        },
        "power_deflation": {
            "eigenvalues": power_sorted,
            "residuals": [power["residuals"][i] for i in order],
            "hvps": power["hvps"],
            "time_s": t_power,
        },
        "max_relative_disagreement": max(rel),
        "hvp_ratio_power_over_lanczos": power["hvps"] / result.num_matvecs,
        "time_ratio_power_over_lanczos": t_power / t_lanczos,
    }


def _small_fc() -> nn.Module:
    """Thesis §6.3.1 small-fc without BatchNorm: 7×7 inputs, 64 hidden units, 10 classes (in-place ReLU)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(49, 64), nn.ReLU(inplace=True), nn.Linear(64, 10))


def _small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.Tanh(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 12 * 12, 10)
    )


def bench_per_sample(batch: int) -> dict:
    out = {}
    for name, model, shape in [
        ("small_fc", _small_fc(), (49,)),
        ("small_cnn", _small_cnn(), (1, 28, 28)),
        ("mlp_100k", _mlp(128), (784,)),
    ]:
        x, y = _data(batch, shape)

        def loop(model=model, x=x, y=y):
            rows = []
            params = list(model.parameters())
            for k in range(x.shape[0]):
                grads = torch.autograd.grad(CE(model(x[k : k + 1]), y[k : k + 1]), params)
                rows.append(torch.cat([gr.reshape(-1) for gr in grads]))
            return torch.stack(rows)

        def fast(model=model, x=x, y=y):
            return per_sample_gradients(model, CE, (x, y))

        def vmapped(model=model, x=x, y=y):
            layer_plan = per_sample.plan
            per_sample.plan = lambda loss: None  # force the torch.func.vmap path
            try:
                return per_sample_gradients(model, CE, (x, y))
            finally:
                per_sample.plan = layer_plan

        buffer = torch.empty(batch, sum(p.numel() for p in model.parameters()))

        def reused(model=model, x=x, y=y, buffer=buffer):
            return per_sample_gradients(model, CE, (x, y), out=buffer)

        reference = loop()
        max_err = float((fast().gradients - reference).abs().max())
        max_err_vmap = float((vmapped().gradients - reference).abs().max())
        t_fast, t_loop, speedup = _paired_times(fast, loop, 7)
        t_reused, _, speedup_reused = _paired_times(reused, loop, 7)
        t_vmap, _, speedup_vmap = _paired_times(vmapped, loop, 5)

        def fresh_fill(buffer=buffer):  # what the first touch of a fresh N × d matrix costs by itself
            return torch.empty_like(buffer).fill_(1.0)

        t_fill, _, _ = _paired_times(fresh_fill, loop, 5)
        out[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "batch": batch,
            "method": fast().method,
            "loop_s": t_loop,
            "per_sample_gradients_s": t_fast,
            "speedup": speedup,
            "into_reused_out_s": t_reused,
            "into_reused_out_speedup": speedup_reused,
            "fresh_matrix_fill_s": t_fill,
            "vmap_path_s": t_vmap,
            "vmap_path_speedup": speedup_vmap,
            "max_abs_difference": max_err,
            "max_abs_difference_vmap_path": max_err_vmap,
        }
    return out


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return -1


def bench_diffusion(n: int, hidden: int, repeats: int) -> dict:
    """``diffusion_spectrum`` of an MLP 784–hidden–10 on ``n`` samples: peak resident memory above the
    baseline (first, so that the process's high-water mark is this call's) against the ``n × d`` gradient
    matrix; then the spectrum from a gradient matrix (centring, Gram matrix, eigenvalues) against a plain
    ``C @ C.T`` of the same size, run alternately."""
    model = _mlp(hidden)
    x, y = _data(n, (784,))
    data = [(x[i : i + 128], y[i : i + 128]) for i in range(0, n, 128)]
    d = sum(p.numel() for p in model.parameters())
    base = _rss_kib("VmRSS:")
    t0 = time.perf_counter()
    spec = diffusion_spectrum(model, CE, data)
    elapsed = time.perf_counter() - t0
    extra = (_rss_kib("VmHWM:") - base) * 1024
    matrix_bytes = n * d * 4
    del spec
    grads = per_sample_gradients(model, CE, data).gradients
    work = torch.empty_like(grads)
    centred = grads - grads.mean(dim=0)

    def spectrum():
        work.copy_(grads)  # a fresh matrix each time (the copy is outside the timed call below)
        t = time.perf_counter()
        result = diffusion_spectrum_from_gradients(work, overwrite=True)
        return time.perf_counter() - t, result

    def gram():
        t = time.perf_counter()
        centred @ centred.T
        return time.perf_counter() - t

    def keeping():  # the gradients kept: centred chunk by chunk into copies
        t = time.perf_counter()
        diffusion_spectrum_from_gradients(grads)
        return time.perf_counter() - t

    spectrum(), gram()
    pairs = [(spectrum()[0], gram(), keeping()) for _ in range(repeats)]
    reference = diffusion_spectrum_from_gradients(grads.double())
    result = spectrum()[1]
    rank = reference.rank
    return {
        "params": d,
        "samples": n,
        "method": result.method,
        "diffusion_spectrum_s": elapsed,
        "peak_rss_above_baseline_bytes": extra,
        "gradient_matrix_bytes": matrix_bytes,
        "peak_over_gradient_matrix": extra / matrix_bytes,
        "spectrum_s": statistics.median(p[0] for p in pairs),
        "plain_gram_s": statistics.median(p[1] for p in pairs),
        "spectrum_over_plain_gram": statistics.median(p[0] / p[1] for p in pairs),
        "gradients_kept_s": statistics.median(p[2] for p in pairs),
        "gradients_kept_over_plain_gram": statistics.median(p[2] / p[1] for p in pairs),
        "rank": result.rank,
        "rank_float64": rank,
        "max_relative_eigenvalue_difference_vs_float64": float(
            (result.eigenvalues[:rank] - reference.eigenvalues[:rank]).abs().max() / reference.eigenvalues[0]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable ratios on a shared box)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--only", choices=["diffusion", "hvp", "per_sample", "lanczos"], help="run one section only"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = args.quick
    result = {"torch": torch.__version__, "threads": args.threads, "dtype": "float32"}
    sections = [args.only] if args.only else ["diffusion", "hvp", "per_sample", "lanczos"]
    # D(x) first: its peak resident memory is measured from this process's baseline.
    if "diffusion" in sections:
        result["diffusion"] = bench_diffusion(n=128 if quick else 512, hidden=500, repeats=2 if quick else 5)
    if "hvp" in sections:
        result["hvp_vs_grad"] = bench_hvp_vs_grad(repeats=3 if quick else 15, batch=256)
    if "per_sample" in sections:
        result["per_sample"] = bench_per_sample(batch=64 if quick else 256)
    if "lanczos" in sections:
        result["lanczos_top10"] = bench_lanczos(n=256 if quick else 1024, hidden=128)
    print(
        json.dumps(result, indent=2, default=lambda o: None if isinstance(o, float) and math.isnan(o) else o)
    )


if __name__ == "__main__":
    main()
