"""``deeplandscape inspect``: a landscape report of any model, in one run directory.

Given a model factory and a data factory (``package.module:function``), an optional checkpoint and a loss
name, the command measures the loss landscape at the model's weights and writes

    <out>/config.json     the resolved configuration (factories, loss, sizes, seed, library version)
    <out>/results.json    every number below
    <out>/*.png           spectral density, Fisher diagonal histogram, D(x) spectrum, width, 1-D/2-D slices
    <out>/landscape.npz   the arrays behind the figures
    <out>/report.md       the report a person reads first

with, for the Hessian H of the data-set loss: its spectral density by stochastic Lanczos quadrature, the
top and bottom eigenvalues by Lanczos (with residuals), the index and normalized index (|λ| ≤ threshold
counts as zero, Choromanska et al. §5.1), arithmetic and harmonic means, Hutchinson's trace with its
standard error, and the exact spectrum when the model is small; the diagonal of the empirical Fisher
(Thesis §3.3.1); the spectrum, rank, mean and standard deviation of the mini-batch diffusion matrix D(x)
(Thesis Lemma 6.3, §6.3.2); Local Entropy at a few scopes γ and the robust width γ* (Thesis Def. 3.3,
Def. 4.20); filter-normalized 1-D and 2-D loss slices (Li et al. 2018) and the slice along the top Hessian
eigenvector. Every file is written atomically (temporary file, then rename). The model is evaluated in
eval mode unless ``--train-mode``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from deeplandscape.analysis._model import Batch, as_batches, trainable_parameters
from deeplandscape.htmlreport import markdown_to_html
from deeplandscape.rundir import (
    RunDirError,
    check_memory,
    discard,
    entries,
    hold,
    new_run_dir,
    read_json,
    save_figure,
    save_npz,
    with_version,
    write_json,
    write_text,
)

LOSSES: dict[str, Callable[[], nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss,
    "nll": nn.NLLLoss,
    "bce_logits": nn.BCEWithLogitsLoss,
}
INSTRUMENTS = ("spectrum", "fisher", "noise", "width", "slices")
DTYPES = {"float32": torch.float32, "float64": torch.float64}

# (full, --quick) defaults of the instrument sizes; an explicit option overrides both.
SIZES: dict[str, tuple[Any, Any]] = {
    "top_k": (5, 3),
    "slq_probes": (8, 2),
    "slq_steps": (60, 20),
    "trace_probes": (50, 10),
    "noise_samples": (512, 64),
    "gammas": ([1e-4, 1e-3, 1e-2, 1e-1], [1e-3, 1e-2]),
    "width_chains": (4, 2),
    "width_steps": (100, 20),
    "width_burnin": (50, 10),
    "width_nodes": (6, 3),
    "line_points": (41, 11),
    "plane_points": (21, 5),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``inspect`` options to ``parser`` (a sub-command parser of the ``deeplandscape`` CLI)."""
    parser.add_argument("--model", required=True, help="model factory, package.module:function")
    parser.add_argument("--data", required=True, help="data factory, package.module:function (batches)")
    parser.add_argument("--model-kwargs", default="{}", help="JSON object of keyword arguments for --model")
    parser.add_argument("--data-kwargs", default="{}", help="JSON object of keyword arguments for --data")
    parser.add_argument("--checkpoint", default=None, help="state_dict file (torch.save), optional")
    parser.add_argument(
        "--loss", default="cross_entropy", choices=sorted(LOSSES), help="loss (mean reduction)"
    )
    parser.add_argument("--out", default=None, help="run directory (default runs/inspect-<UTC timestamp>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random probe and direction")
    parser.add_argument("--dtype", default="float64", choices=sorted(DTYPES), help="evaluation precision")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument(
        "--train-mode", action="store_true", help="evaluate in train mode (BatchNorm, Dropout)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes everywhere, for smoke tests")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=INSTRUMENTS, help="instruments to leave out", metavar="NAME"
    )
    parser.add_argument(
        "--threshold", type=float, default=1e-3, help="|λ| below which eigenvalues count as 0"
    )
    parser.add_argument(
        "--exact-max", type=int, default=2000, help="exact Hessian spectrum up to this many d"
    )
    parser.add_argument("--top-k", type=int, default=None, help="Lanczos eigenvalues at each end (5)")
    parser.add_argument("--slq-probes", type=int, default=None, help="SLQ random probes (8)")
    parser.add_argument("--slq-steps", type=int, default=None, help="Lanczos steps per SLQ probe (60)")
    parser.add_argument("--trace-probes", type=int, default=None, help="Hutchinson probes (50)")
    parser.add_argument("--noise-samples", type=int, default=None, help="samples N for D(x) (512)")
    parser.add_argument("--lr", type=float, default=None, help="SGD learning rate, to report β⁻¹ = η/(2b)")
    parser.add_argument("--gammas", type=float, nargs="+", default=None, help="Local Entropy scopes γ")
    parser.add_argument("--epsilon", type=float, default=0.01, help="tolerance ε of the robust width")
    parser.add_argument("--width-chains", type=int, default=None, help="Langevin replicates (4)")
    parser.add_argument("--width-steps", type=int, default=None, help="Langevin steps after burn-in (100)")
    parser.add_argument("--width-burnin", type=int, default=None, help="Langevin burn-in steps (50)")
    parser.add_argument("--width-nodes", type=int, default=None, help="quadrature nodes in s (6)")
    parser.add_argument("--line-points", type=int, default=None, help="points of the 1-D slices (41)")
    parser.add_argument(
        "--plane-points", type=int, default=None, help="points per axis of the 2-D slice (21)"
    )
    parser.add_argument("--span", type=float, default=1.0, help="slices cover α, β ∈ [−span, span]")


def load_callable(spec: str, name: str) -> Callable:
    """Import ``package.module:function``; ``ValueError`` naming the option if that fails."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"Invalid {name}: {spec!r}; expected 'package.module:function'")
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"Invalid {name}: cannot import module {module_name!r} ({error})") from error
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"Invalid {name}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"Invalid {name}: {spec!r} is not callable")
    return target


def _json_object(text: str, name: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"Invalid {name}: {text!r} is not JSON ({error})") from error
    if not isinstance(value, dict):
        raise ValueError(f"Invalid {name}: {text!r}; expected a JSON object")
    return value


def _resolve_sizes(args: argparse.Namespace) -> dict[str, Any]:
    sizes = {}
    for key, (full, quick) in SIZES.items():
        value = getattr(args, key, None)
        sizes[key] = (quick if args.quick else full) if value is None else value
    for key in ("top_k", "slq_probes", "slq_steps", "trace_probes", "width_nodes", "width_steps"):
        if not (isinstance(sizes[key], int) and sizes[key] >= 1):
            raise ValueError(f"Invalid --{key.replace('_', '-')}: {sizes[key]!r}; must be an integer >= 1")
    if not (isinstance(sizes["noise_samples"], int) and sizes["noise_samples"] >= 2):
        raise ValueError(f"Invalid --noise-samples: {sizes['noise_samples']!r}; must be an integer >= 2")
    if not (isinstance(sizes["width_chains"], int) and sizes["width_chains"] >= 2):
        raise ValueError(f"Invalid --width-chains: {sizes['width_chains']!r}; must be an integer >= 2")
    if not (isinstance(sizes["width_burnin"], int) and sizes["width_burnin"] >= 0):
        raise ValueError(f"Invalid --width-burnin: {sizes['width_burnin']!r}; must be an integer >= 0")
    for key in ("line_points", "plane_points"):
        if not (isinstance(sizes[key], int) and sizes[key] >= 3):
            raise ValueError(f"Invalid --{key.replace('_', '-')}: {sizes[key]!r}; must be an integer >= 3")
    gammas = sizes["gammas"]
    if (
        not gammas
        or any(not (g > 0 and math.isfinite(g)) for g in gammas)
        or sorted(set(gammas)) != list(gammas)
    ):
        raise ValueError(f"Invalid --gammas: {gammas!r}; must be increasing finite values > 0")
    if not (args.epsilon > 0 and math.isfinite(args.epsilon)):
        raise ValueError(f"Invalid --epsilon: {args.epsilon!r}; must be a finite value > 0")
    if not (args.span > 0 and math.isfinite(args.span)):
        raise ValueError(f"Invalid --span: {args.span!r}; must be a finite value > 0")
    if not (args.threshold >= 0 and math.isfinite(args.threshold)):
        raise ValueError(f"Invalid --threshold: {args.threshold!r}; must be a finite value >= 0")
    if args.lr is not None and not (args.lr > 0 and math.isfinite(args.lr)):
        raise ValueError(f"Invalid --lr: {args.lr!r}; must be a finite value > 0")
    if args.exact_max < 0:
        raise ValueError(f"Invalid --exact-max: {args.exact_max!r}; must be an integer >= 0")
    return sizes


def _device(text: str) -> torch.device:
    """``--device`` as a torch device that exists on this machine; ``ValueError`` naming it otherwise."""
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"Invalid --device: {text!r} ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"Invalid --device: {text!r}: {why}; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"Invalid --device: {text!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"Invalid --device: {text!r}: MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Invalid --device: {text!r}; allowed: cpu, cuda[:N], mps")
    return device


def _call(factory: Callable, spec: str, kwargs: dict, option: str) -> Any:
    """``factory(**kwargs)``, with the keywords checked against its signature first; a failure is a
    ``ValueError`` naming ``option`` (the factory is the user's code: its error is part of the message)."""
    from inspect import signature

    try:
        signature(factory).bind(**kwargs)
    except TypeError as error:
        raise ValueError(
            f"Invalid {option}-kwargs: {spec} does not accept {json.dumps(kwargs)} ({error})"
        ) from None
    except ValueError:  # no signature to check (a builtin): the call decides
        pass
    try:
        return factory(**kwargs)
    except Exception as error:
        raise ValueError(
            f"Invalid {option}: {spec}(**{json.dumps(kwargs)}) raised {type(error).__name__}: {error}"
        ) from error


def _check_memory(args: argparse.Namespace, sizes: dict[str, Any], d: int, n: int, itemsize: int) -> None:
    """Refuse, before any instrument runs, sizes whose largest allocation exceeds the memory limit: the
    dense Hessian (about 5·d² numbers: the identity, the product, its transpose, the symmetrized matrix and
    the eigensolver's copy) and the N × d per-sample gradients of D(x) (twice, with the Gram matrix)."""
    needs = []
    if "spectrum" not in args.skip and d <= args.exact_max:
        needs.append(("--exact-max", args.exact_max, 5 * d * d * itemsize, f"the exact Hessian (d = {d})"))
    if "noise" not in args.skip:
        samples = min(sizes["noise_samples"], n)
        need = (2 * samples * d + min(samples, d) ** 2) * itemsize
        needs.append(
            ("--noise-samples", sizes["noise_samples"], need, f"D(x) from {samples} per-sample gradients")
        )
    for option, value, need, what in needs:
        check_memory(option, value, need, what)


def _check_out(out: Path) -> None:
    """``--out`` must be new or empty: inspect never writes into another run or the user's files."""
    names = entries(out)
    if not names:
        return
    what = "files"
    if "config.json" in names:
        config = read_json(out / "config.json")
        if isinstance(config, dict):
            what = f"a run of {config.get('experiment') or config.get('command', 'unknown')!r}"
    raise RunDirError(
        f"Invalid --out: {out} is not empty (it holds {what}: {', '.join(names[:5])}); inspect writes only "
        "into a new or empty directory"
    )


def _load_checkpoint(model: nn.Module, path: str) -> None:
    if not Path(path).is_file():
        raise ValueError(f"Invalid --checkpoint: {path!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file, or not one torch.save wrote: pickle, zip, EOF errors …
        raise ValueError(
            f"Invalid --checkpoint: {path!r} cannot be read: it is damaged or not a file written by "
            f"torch.save ({type(error).__name__})"
        ) from error
    if isinstance(state, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ValueError(f"Invalid --checkpoint: {path!r} holds a {type(state).__name__}, not a state_dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"Invalid --checkpoint: {path!r} does not match the model ({error})") from error


def _prepare_data(raw: Any, dtype: torch.dtype, device: torch.device) -> list[Batch]:
    batches = as_batches(raw)
    out = []
    for inputs, targets in batches:
        inputs = inputs.to(device, dtype) if inputs.is_floating_point() else inputs.to(device)
        targets = targets.to(device, dtype) if targets.is_floating_point() else targets.to(device)
        out.append((inputs, targets))
    return out


def _subset(batches: list[Batch], n: int, batch_size: int = 256) -> list[Batch]:
    inputs = torch.cat([x for x, _ in batches])[:n]
    targets = torch.cat([y for _, y in batches])[:n]
    return [
        (inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, len(inputs), batch_size)
    ]


def _log(message: str) -> None:
    print(f"[inspect] {message}", file=sys.stderr, flush=True)


def _figure(width: float = 5.0, height: float = 3.6):
    from matplotlib.figure import Figure  # no pyplot: no global backend state, safe headless

    figure = Figure(figsize=(width, height))
    return figure, figure.add_subplot()


def _floats(values: Tensor | np.ndarray | list) -> list[float]:
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _spectrum(model, loss_fn, batches, sizes, args, out: Path, arrays: dict) -> tuple[dict, Any]:
    from deeplandscape.analysis.hessian import exact_hessian
    from deeplandscape.analysis.hvp import HessianOperator
    from deeplandscape.analysis.lanczos import lanczos
    from deeplandscape.analysis.slq import spectral_density
    from deeplandscape.analysis.spectrum import density_statistics, spectrum_statistics
    from deeplandscape.analysis.trace import hutchinson_trace

    op = HessianOperator(model, loss_fn, batches, train=args.train_mode)
    d = op.dim
    k = min(sizes["top_k"], d)
    top = lanczos(op, k, which="LA", seed=args.seed)
    bottom = lanczos(op, k, which="SA", seed=args.seed + 1)
    steps = min(sizes["slq_steps"], d)
    density = spectral_density(op, num_probes=sizes["slq_probes"], num_steps=steps, seed=args.seed + 2)
    stats = density_statistics(density, threshold=args.threshold)
    trace = hutchinson_trace(op, num_probes=sizes["trace_probes"], seed=args.seed + 3)
    result: dict[str, Any] = {
        "num_parameters": d,
        "top_eigenvalues": _floats(top.eigenvalues),
        "top_residuals": _floats(top.residuals),
        "top_converged": [bool(c) for c in top.converged],
        "bottom_eigenvalues": _floats(bottom.eigenvalues),
        "bottom_residuals": _floats(bottom.residuals),
        "bottom_converged": [bool(c) for c in bottom.converged],
        "lanczos_hvps": int(top.num_matvecs + bottom.num_matvecs),
        "slq": _slq_counts(sizes["slq_probes"], steps, density, stats),
        "trace": float(trace.trace),
        "trace_std_error": float(trace.std_error),
        "trace_hvps": int(trace.num_matvecs),
        "threshold": args.threshold,
    }
    exact_values = None
    if d <= args.exact_max:
        exact = exact_hessian(model, loss_fn, batches, train=args.train_mode, max_params=args.exact_max)
        exact_values = exact.eigenvalues
        ex = spectrum_statistics(exact.eigenvalues, threshold=args.threshold)
        result["exact"] = {
            "index": round(float(ex.index)),
            "normalized_index": float(ex.normalized_index),
            "fraction_near_zero": float(ex.fraction_near_zero),
            "arithmetic_mean": float(ex.arithmetic_mean),
            "harmonic_mean_positive": float(ex.harmonic_mean_positive),
            "trace": float(exact.eigenvalues.sum()),
            "min_eigenvalue": float(exact.eigenvalues.min()),
            "max_eigenvalue": float(exact.eigenvalues.max()),
            "asymmetry": float(exact.asymmetry),
        }
        arrays["hessian_eigenvalues"] = exact.eigenvalues.detach().cpu().double().numpy()
    arrays["density_grid"] = density.grid.detach().cpu().double().numpy()
    arrays["density"] = density.density.detach().cpu().double().numpy()

    figure, ax = _figure()
    ax.semilogy(arrays["density_grid"], np.maximum(arrays["density"], 1e-12), label="SLQ density")
    if exact_values is not None:
        ax.hist(arrays["hessian_eigenvalues"], bins=80, density=True, alpha=0.35, label="exact eigenvalues")
    for value in result["top_eigenvalues"] + result["bottom_eigenvalues"]:
        ax.axvline(value, color="tab:red", lw=0.6, alpha=0.6)
    ax.set_ylim(bottom=1e-6)
    ax.set_xlabel("eigenvalue λ of the Hessian")
    ax.set_ylabel("density")
    ax.set_title(f"Hessian spectrum (d = {d}); red: Lanczos extremes")
    ax.legend(fontsize=8)
    save_figure(out / "hessian_spectrum.png", figure)
    return result, top


def _slq_counts(probes: int, steps: int, density, stats) -> dict[str, Any]:
    """The SLQ estimates for ``results.json``: each count with its probe standard error, its bounds
    (quadrature bias included, :meth:`~deeplandscape.analysis.slq.SpectralDensity.count`) and, where the
    quadrature cannot resolve it, ``null`` and the reason."""

    def value(x: float) -> float | None:
        return None if math.isnan(x) else float(x)

    return {
        "num_probes": probes,
        "num_steps": steps,
        "sigma": float(density.sigma),
        "hvps": int(density.num_matvecs),
        "index": value(stats.index),
        "normalized_index": value(stats.normalized_index),
        "fraction_near_zero": value(stats.fraction_near_zero),
        "arithmetic_mean": float(stats.arithmetic_mean),
        "harmonic_mean_positive": float(stats.harmonic_mean_positive),
        "std_error": {key: value(v) for key, v in stats.std_error.items()},
        "bounds": {key: [float(low), float(high)] for key, (low, high) in stats.intervals.items()},
        "resolved": dict(stats.resolved),
        "reasons": dict(stats.reasons),
    }


_COUNTS_NOTE = (
    "The SLQ counts are read off a Gauss quadrature of {steps} nodes per probe ({probes} probes): "
    "it resolves the extreme eigenvalues but the bulk only to the spacing of its nodes. "
    "The ± is the probe-to-probe standard error alone; "
    "the bounds also hold the quadrature's bias (Chebyshev–Markov–Stieltjes inequalities, "
    "with a 95% allowance for the probe noise). "
    "A count over an interval narrower than the node spacing is not resolved and only its bounds are shown; "
    "more steps (`--slq-steps`) narrow them. "
    "A Lanczos eigenvalue marked converged lies within √eps·|λ| of an eigenvalue of H "
    "(within eps·‖H‖ for one too close to zero for relative accuracy)."
)


def _count_row(name: str, s: dict, key: str, d: int) -> str:
    """A report row: the SLQ estimate ± its probe standard error, and the bounds that include the bias."""
    slq = s["slq"]
    low, high = slq["bounds"][key]
    bounds = f"between {low:.3g} and {high:.3g} ({low * d:.0f}–{high * d:.0f} of {d})"
    if slq[key] is None:
        return f"| {name} (SLQ) | not resolved: {bounds}; {slq['reasons'][key]} |"
    return f"| {name} (SLQ) | {slq[key]:.4g} ± {slq['std_error'][key]:.2g}; {bounds} |"


def _fisher(model, loss_fn, batches, args, out: Path, arrays: dict) -> dict:
    from deeplandscape.analysis.fisher import fisher_diagonal

    fisher = fisher_diagonal(model, loss_fn, batches, train=args.train_mode)
    diag = fisher.diagonal.detach().cpu().double().numpy()
    arrays["fisher_diagonal"] = diag
    positive = diag[diag > 0]
    figure, ax = _figure()
    if positive.size:
        ax.hist(np.log10(positive), bins=60)
    ax.set_xlabel("log10 of the Fisher diagonal entry E[g²] − (E g)²")
    ax.set_ylabel("parameters")
    ax.set_title(f"Fisher diagonal ({diag.size - positive.size} of {diag.size} entries are 0)")
    save_figure(out / "fisher_diagonal.png", figure)
    return {
        "num_samples": int(fisher.num_samples),
        "mean": float(diag.mean()),
        "median": float(np.median(diag)),
        "max": float(diag.max()),
        "sum": float(diag.sum()),
        "fraction_below_1e-8": float((diag < 1e-8).mean()),
    }


def _noise(model, loss_fn, batches, sizes, args, out: Path, arrays: dict) -> dict:
    from deeplandscape.analysis.noise import diffusion_spectrum, sgd_temperature

    subset = _subset(batches, sizes["noise_samples"])
    n = sum(len(x) for x, _ in subset)
    spectrum = diffusion_spectrum(model, loss_fn, subset, train=args.train_mode)
    eigenvalues = spectrum.eigenvalues.detach().cpu().double().numpy()
    arrays["diffusion_eigenvalues"] = eigenvalues
    result = {
        "num_samples": n,
        "num_parameters": int(spectrum.num_params),
        "method": spectrum.method,
        "rank": int(spectrum.rank),
        "relative_rank": float(spectrum.relative_rank),
        "rank_threshold": float(spectrum.rank_threshold),
        "mean": float(spectrum.mean),
        "std": float(spectrum.std),
        "trace": float(spectrum.trace),
        "top_eigenvalues": _floats(eigenvalues[:10]),
    }
    if args.lr is not None:
        b = len(batches[0][0])
        temp = sgd_temperature(args.lr, b, sum(len(x) for x, _ in batches))
        result["temperature"] = {
            "lr": args.lr,
            "batch_size": b,
            "with_replacement": float(temp.with_replacement),
            "without_replacement": float(temp.without_replacement),
        }
    figure, ax = _figure()
    positive = eigenvalues[eigenvalues > spectrum.rank_threshold]
    ax.semilogy(np.arange(1, positive.size + 1), positive, ".", ms=3)
    ax.set_xlabel("eigenvalue rank")
    ax.set_ylabel("eigenvalue of D(x)")
    ax.set_title(f"D(x) spectrum: rank {spectrum.rank} of d = {spectrum.num_params} (N = {n})")
    save_figure(out / "diffusion_spectrum.png", figure)
    return result


def _width(model, loss_fn, batches, sizes, args, out: Path, arrays: dict) -> dict:
    from deeplandscape.analysis.width import local_entropy, robust_width_from_estimates

    estimates = [
        local_entropy(
            model,
            loss_fn,
            batches,
            gamma,
            train=args.train_mode,
            n_chains=sizes["width_chains"],
            n_steps=sizes["width_steps"],
            burnin=sizes["width_burnin"],
            n_nodes=sizes["width_nodes"],
            seed=args.seed + 10 + i,
        )
        for i, gamma in enumerate(sizes["gammas"])
    ]
    robust = robust_width_from_estimates(estimates, args.epsilon)
    gammas = np.asarray([e.gamma for e in estimates])
    excess = np.asarray([e.excess for e in estimates])
    errors = np.asarray([e.standard_error for e in estimates])
    arrays["width_gammas"], arrays["width_excess"], arrays["width_standard_errors"] = gammas, excess, errors
    figure, ax = _figure()
    ax.errorbar(gammas, excess, yerr=2 * errors, fmt="o-", capsize=3, label="f_γ(x) − f(x) ± 2 SE")
    ax.axhline(args.epsilon, color="tab:red", ls="--", label=f"ε = {args.epsilon:g}")
    ax.set_xscale("log")
    ax.set_xlabel("scope γ")
    ax.set_ylabel("Local Entropy excess")
    ax.set_title(f"Width: robust γ* = {robust.gamma_star:g}")
    ax.legend(fontsize=8)
    save_figure(out / "width.png", figure)
    return {
        "loss": float(estimates[0].loss),
        "gammas": _floats(gammas),
        "local_entropy": [float(e.value) for e in estimates],
        "excess": _floats(excess),
        "standard_errors": _floats(errors),
        "acceptance": [float(e.acceptance) for e in estimates],
        "epsilon": args.epsilon,
        "gamma_star": float(robust.gamma_star),
        "gamma_star_upper": float(robust.upper),
        "gradients": int(sum(e.n_gradients for e in estimates)),
    }


def _slices(model, loss_fn, batches, sizes, args, out: Path, arrays: dict, top) -> dict:
    from deeplandscape.analysis.slices import loss_line, loss_plane, random_direction

    d1 = random_direction(model, seed=args.seed + 20)
    d2 = random_direction(model, seed=args.seed + 21)
    alphas = np.linspace(-args.span, args.span, sizes["line_points"])
    plane_grid = np.linspace(-args.span, args.span, sizes["plane_points"])
    line = loss_line(model, loss_fn, batches, d1, alphas, train=args.train_mode)
    plane = loss_plane(model, loss_fn, batches, d1, d2, plane_grid, train=args.train_mode)
    result: dict[str, Any] = {
        "span": args.span,
        "line_alphas": _floats(alphas),
        "line_losses": _floats(line.losses),
        "direction_norm": line.direction_norm,
        "plane_points": int(sizes["plane_points"]),
        "plane_min": float(plane.losses.min()),
        "plane_max": float(plane.losses.max()),
        "evaluations": int(line.n_evaluations + plane.n_evaluations),
    }
    arrays["line_alphas"], arrays["line_losses"] = alphas, line.losses
    arrays["plane_grid"], arrays["plane_losses"] = plane_grid, plane.losses
    figure, ax = _figure()
    ax.plot(alphas, line.losses, label="filter-normalized random direction")
    if top is not None:
        # the top eigenvector has unit norm: scale α so both curves cover the same distance ‖δ‖·span
        v = top.eigenvectors[:, 0]
        eig_alphas = alphas * line.direction_norm
        eig = loss_line(model, loss_fn, batches, v, eig_alphas, train=args.train_mode)
        result["eigen_line_losses"] = _floats(eig.losses)
        result["eigen_line_distances"] = _floats(eig_alphas)
        arrays["eigen_line_losses"] = eig.losses
        ax.plot(alphas, eig.losses, label="top Hessian eigenvector (same distance)")
    ax.set_xlabel("α (in units of the direction's norm)")
    ax.set_ylabel("loss")
    ax.set_title("1-D loss slices through the weights")
    ax.legend(fontsize=8)
    save_figure(out / "slice_1d.png", figure)

    figure, ax = _figure(4.6, 4.0)
    contour = ax.contourf(plane_grid, plane_grid, plane.losses.T, levels=30, cmap="viridis")
    ax.contour(plane_grid, plane_grid, plane.losses.T, levels=15, colors="k", linewidths=0.4)
    figure.colorbar(contour, ax=ax, label="loss")
    ax.plot([0], [0], "r+", ms=10)
    ax.set_xlabel("α (direction 1)")
    ax.set_ylabel("β (direction 2)")
    ax.set_title("2-D filter-normalized loss slice")
    save_figure(out / "slice_2d.png", figure)
    return result


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _report(config: dict, results: dict) -> str:
    lines = [
        "# Landscape report",
        "",
        f"Model `{config['model']}`, data `{config['data']}`, loss `{config['loss']}`, "
        f"{results['num_parameters']} trainable parameters, {results['num_samples']} samples, "
        f"{'train' if config['train_mode'] else 'eval'} mode, {config['dtype']}, seed {config['seed']}.",
        f"Loss at the weights: {results['loss']:.6g}.",
        "",
    ]
    if "spectrum" in results:
        s = results["spectrum"]
        d = s["num_parameters"]
        lines += [
            "## Hessian",
            "",
            "![Hessian spectrum](hessian_spectrum.png)",
            "",
            "| quantity | value |",
            "|---|---|",
            f"| top eigenvalues (Lanczos) | {_fmt(s['top_eigenvalues'])} |",
            f"| their residuals ‖Hy − θy‖ | {_fmt(s['top_residuals'])} |",
            f"| converged (relative accuracy) | {_fmt(s['top_converged'])} |",
            f"| bottom eigenvalues (Lanczos) | {_fmt(s['bottom_eigenvalues'])} |",
            f"| their residuals | {_fmt(s['bottom_residuals'])} |",
            f"| converged (relative accuracy) | {_fmt(s['bottom_converged'])} |",
            f"| trace (Hutchinson, {config['sizes']['trace_probes']} probes) | {s['trace']:.6g} ± "
            f"{s['trace_std_error']:.2g} |",
            _count_row(f"normalized index (\\|λ\\| ≤ {s['threshold']:g} is zero)", s, "normalized_index", d),
            _count_row("fraction near zero", s, "fraction_near_zero", d),
        ]
        if "exact" in s:
            e = s["exact"]
            lines += [
                f"| index (exact) | {e['index']} of {s['num_parameters']} |",
                f"| normalized index (exact) | {e['normalized_index']:.4g} |",
                f"| fraction near zero (exact) | {e['fraction_near_zero']:.4g} |",
                f"| trace (exact) | {e['trace']:.6g} |",
                f"| arithmetic / harmonic (λ > threshold) mean (exact) | {e['arithmetic_mean']:.4g} / "
                f"{e['harmonic_mean_positive']:.4g} |",
            ]
        lines += ["", _COUNTS_NOTE.format(steps=s["slq"]["num_steps"], probes=s["slq"]["num_probes"]), ""]
    if "fisher" in results:
        f = results["fisher"]
        lines += [
            "## Fisher diagonal",
            "",
            "![Fisher diagonal](fisher_diagonal.png)",
            "",
            f"Mean {f['mean']:.4g}, median {f['median']:.4g}, max {f['max']:.4g}, sum {f['sum']:.4g}; "
            f"{100 * f['fraction_below_1e-8']:.1f}% of entries below 1e-8 (N = {f['num_samples']}).",
            "",
        ]
    if "noise" in results:
        n = results["noise"]
        lines += [
            "## Mini-batch noise D(x)",
            "",
            "![D(x) spectrum](diffusion_spectrum.png)",
            "",
            f"Rank {n['rank']} of d = {n['num_parameters']} (relative {n['relative_rank']:.4g}, threshold "
            f"{n['rank_threshold']:.3g}), eigenvalue mean {n['mean']:.4g} and std {n['std']:.4g}, trace "
            f"{n['trace']:.4g}, from N = {n['num_samples']} per-sample gradients ({n['method']} route).",
        ]
        if "temperature" in n:
            t = n["temperature"]
            lines += [
                f"Temperature β⁻¹ = η/(2b) = {t['with_replacement']:.4g} (without replacement "
                f"{t['without_replacement']:.4g}) for η = {t['lr']:g}, b = {t['batch_size']}."
            ]
        lines += [""]
    if "width" in results:
        w = results["width"]
        upper = "∞" if math.isinf(w["gamma_star_upper"]) else f"{w['gamma_star_upper']:g}"
        lines += [
            "## Width (Local Entropy)",
            "",
            "![Width](width.png)",
            "",
            "| γ | f_γ(x) | f_γ(x) − f(x) | standard error |",
            "|---|---|---|---|",
        ]
        for g, v, x, se in zip(
            w["gammas"], w["local_entropy"], w["excess"], w["standard_errors"], strict=True
        ):
            lines.append(f"| {g:g} | {v:.6g} | {x:.4g} | {se:.2g} |")
        lines += [
            "",
            f"Robust width γ* = {w['gamma_star']:g} for ε = {w['epsilon']:g} (next γ: {upper}).",
            "",
        ]
    if "slices" in results:
        lines += [
            "## Loss slices",
            "",
            "![1-D slices](slice_1d.png) ![2-D slice](slice_2d.png)",
            "",
            f"Filter-normalized directions (‖δ‖ = {results['slices']['direction_norm']:.4g}); the 2-D slice "
            f"ranges over [{results['slices']['plane_min']:.4g}, {results['slices']['plane_max']:.4g}].",
            "",
        ]
    lines += [f"Timings (s): {', '.join(f'{k} {v:.1f}' for k, v in results['seconds'].items())}.", ""]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``deeplandscape inspect`` with parsed ``args`` (see :func:`add_arguments`); returns 0.

    Every argument is validated, the model and data built and the memory of the largest instruments
    checked before anything is written; ``--out`` must be new or empty, and is held (locked) for the whole
    run. ``results.json`` and ``landscape.npz`` are rewritten after each instrument, so an interruption (or
    a failure of a later instrument) keeps what was finished; wall times go to ``timing.json``.
    """
    sizes = _resolve_sizes(args)
    if args.dtype not in DTYPES:
        raise ValueError(f"Invalid --dtype: {args.dtype!r}; allowed values are {sorted(DTYPES)}")
    if args.loss not in LOSSES:
        raise ValueError(f"Invalid --loss: {args.loss!r}; allowed values are {sorted(LOSSES)}")
    dtype, device = DTYPES[args.dtype], _device(args.device)
    requested = Path(args.out) if args.out is not None else None
    if requested is not None:
        _check_out(requested)
    model_kwargs = _json_object(args.model_kwargs, "--model-kwargs")
    data_kwargs = _json_object(args.data_kwargs, "--data-kwargs")
    model_factory = load_callable(args.model, "--model")
    data_factory = load_callable(args.data, "--data")
    model = _call(model_factory, args.model, model_kwargs, "--model")
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"Invalid --model: {args.model!r} returned a {type(model).__name__}, not an nn.Module"
        )
    if args.checkpoint is not None:
        _load_checkpoint(model, args.checkpoint)
    model = model.to(device, dtype)
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if args.train_mode and has_batchnorm and not {"fisher", "noise"} <= set(args.skip):
        raise ValueError(
            "Invalid --train-mode: the model has BatchNorm, and the per-sample gradients of the Fisher "
            "diagonal and of D(x) need eval mode (a batch of one has no batch statistics); "
            "add --skip fisher noise or drop --train-mode"
        )
    batches = _prepare_data(_call(data_factory, args.data, data_kwargs, "--data"), dtype, device)
    loss_fn = LOSSES[args.loss]()
    d = sum(p.numel() for p in trainable_parameters(model).values())
    n = sum(len(x) for x, _ in batches)
    _check_memory(args, sizes, d, n, torch.empty((), dtype=dtype).element_size())

    config = with_version(
        {
            "command": "inspect",
            "model": args.model,
            "model_kwargs": model_kwargs,
            "data": args.data,
            "data_kwargs": data_kwargs,
            "checkpoint": args.checkpoint,
            "loss": args.loss,
            "seed": args.seed,
            "dtype": args.dtype,
            "device": str(device),
            "train_mode": bool(args.train_mode),
            "quick": bool(args.quick),
            "skip": list(args.skip),
            "threshold": args.threshold,
            "exact_max": args.exact_max,
            "epsilon": args.epsilon,
            "span": args.span,
            "lr": args.lr,
            "sizes": sizes,
            "torch": torch.__version__,
        }
    )
    out = requested if requested is not None else new_run_dir("inspect")
    created = requested is None or not requested.exists()
    with hold(out):
        _check_out(out)  # again, now that no other process can write there
        try:
            _instruments(model, loss_fn, batches, sizes, args, config, out, d, n)
        except BaseException:
            if not (out / "results.json").exists():  # no instrument finished: everything here is ours
                discard(out, entries(out) or [], created=created)
            raise
    return 0


def _instruments(model, loss_fn, batches, sizes, args, config, out: Path, d: int, n: int) -> None:
    """Write the configuration, run the instruments (saving results and arrays after each), then the
    report. ``results.json`` exists as soon as one instrument finished (with ``failed`` when a later one
    failed)."""
    from deeplandscape.analysis._functional import dataset_loss, parameter_vector
    from deeplandscape.analysis._model import preserved

    write_json(out / "config.json", config)
    with preserved(model, train=args.train_mode), torch.no_grad():
        loss_value = float(
            dataset_loss(model, loss_fn, batches, parameter_vector(model), where="the weights")
        )
    results: dict[str, Any] = {"num_parameters": d, "num_samples": n, "loss": loss_value}
    seconds: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    top = None
    _log(f"model {args.model}: d = {d}, N = {n}, loss = {loss_value:.6g}; writing {out}")
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("spectrum", lambda: _spectrum(model, loss_fn, batches, sizes, args, out, arrays)),
        ("fisher", lambda: _fisher(model, loss_fn, batches, args, out, arrays)),
        ("noise", lambda: _noise(model, loss_fn, batches, sizes, args, out, arrays)),
        ("width", lambda: _width(model, loss_fn, batches, sizes, args, out, arrays)),
        ("slices", lambda: _slices(model, loss_fn, batches, sizes, args, out, arrays, top)),
    ]
    for name, step in steps:
        if name in args.skip:
            continue
        start = time.perf_counter()
        try:
            value = step()
        except BaseException as error:
            if not seconds:
                raise
            results["failed"] = {"instrument": name, "error": f"{type(error).__name__}: {error}"}
            write_json(out / "results.json", results)
            _log(f"{name} failed; the instruments before it are saved in {out}")
            raise
        if name == "spectrum":
            value, top = value
        results[name] = value
        seconds[name] = time.perf_counter() - start
        _log(f"{name} done in {seconds[name]:.1f} s")
        # partial results survive an interruption or a later failure
        write_json(out / "results.json", results)
        save_npz(out / "landscape.npz", **arrays)
        write_json(out / "timing.json", {"seconds": seconds})
    write_json(out / "results.json", results)
    save_npz(out / "landscape.npz", **arrays)
    markdown = _report(config, {**results, "seconds": seconds})
    write_text(out / "report.md", markdown)
    write_text(out / "report.html", markdown_to_html(markdown, "deeplandscape inspect"))
    _log(f"report: {out / 'report.md'}")


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m deeplandscape.app.inspect --model ... --data ...``."""
    parser = argparse.ArgumentParser(prog="deeplandscape inspect", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
