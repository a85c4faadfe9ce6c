"""The instruments of ``deeplandscape inspect``, one unit of work each: what each computes (numbers for
``results.json`` and arrays), the figure it draws and the table the report shows.

Every instrument takes a :class:`Target` (the model at its weights, the loss, the data, the output the loss
takes) and the resolved configuration, and draws its randomness from ``config["seed"]`` plus a fixed offset,
so that leaving an instrument out (``--skip``) does not change the numbers of the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from deeplandscape import progress
from deeplandscape.analysis._model import Batch, Output
from deeplandscape.experiments.spec import Table, UnitResult
from deeplandscape.rundir import save_figure

#: The instruments, in the order they run.
INSTRUMENTS = ("spectrum", "fisher", "noise", "width", "slices")


@dataclass(frozen=True)
class Target:
    """What the instruments measure: ``model`` at its weights (device and dtype set), ``loss_fn``, the
    ``batches`` of data, the ``output`` the loss takes (key, index or ``None``), and the mode (``train``)."""

    model: nn.Module
    loss_fn: nn.Module
    batches: list[Batch]
    output: Output
    train: bool
    num_parameters: int
    num_samples: int


def _floats(values: Tensor | np.ndarray | list) -> list[float]:
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _array(values: Tensor) -> np.ndarray:
    return values.detach().cpu().double().numpy()


def _figure(width: float = 5.0, height: float = 3.6):
    from matplotlib.figure import Figure  # no pyplot: no global backend state, safe headless

    figure = Figure(figsize=(width, height))
    return figure, figure.add_subplot()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


# ------------------------------------------------------------------------------------------- the loss


def loss_at_weights(target: Target, config: dict[str, Any]) -> UnitResult:
    """The data-set loss at the weights, the number of trainable parameters d and of samples N."""
    import torch

    from deeplandscape.analysis._functional import dataset_loss, parameter_vector
    from deeplandscape.analysis._model import preserved

    with preserved(target.model, train=target.train), torch.no_grad():
        vector = parameter_vector(target.model)
        loss = dataset_loss(
            target.model, target.loss_fn, target.batches, vector, where="the weights", output=target.output
        )
    values = {"num_parameters": target.num_parameters, "num_samples": target.num_samples, "loss": float(loss)}
    return UnitResult(values=values)


# ------------------------------------------------------------------------------------------- the Hessian


def spectrum(target: Target, config: dict[str, Any]) -> UnitResult:
    """Lanczos extremes, SLQ density and counts, Hutchinson's trace, the exact spectrum up to ``exact_max``
    parameters, and (unless ``slices`` is skipped) the 1-D slice along the top eigenvector."""
    from deeplandscape.analysis.hessian import exact_hessian
    from deeplandscape.analysis.hvp import HessianOperator
    from deeplandscape.analysis.lanczos import lanczos
    from deeplandscape.analysis.slq import spectral_density
    from deeplandscape.analysis.spectrum import density_statistics, spectrum_statistics
    from deeplandscape.analysis.trace import hutchinson_trace

    seed, threshold = config["seed"], config["threshold"]
    common = {"train": target.train, "output": target.output}
    op = HessianOperator(target.model, target.loss_fn, target.batches, **common)
    d = op.dim
    exact_wanted = d <= config["exact_max"]
    steps_total = 4 + exact_wanted + ("slices" not in _skipped(config))
    k = min(config["top_k"], d)
    top = lanczos(op, k, which="LA", seed=seed)
    progress.advance(1, steps_total, "steps (Lanczos top)")
    bottom = lanczos(op, k, which="SA", seed=seed + 1)
    progress.advance(2, steps_total, "steps (Lanczos bottom)")
    steps = min(config["slq_steps"], d)
    density = spectral_density(op, num_probes=config["slq_probes"], num_steps=steps, seed=seed + 2)
    stats = density_statistics(density, threshold=threshold)
    progress.advance(3, steps_total, "steps (SLQ)")
    trace = hutchinson_trace(op, num_probes=config["trace_probes"], seed=seed + 3)
    progress.advance(4, steps_total, "steps (trace)")
    values: dict[str, Any] = {
        "num_parameters": d,
        "top_eigenvalues": _floats(top.eigenvalues),
        "top_residuals": _floats(top.residuals),
        "top_converged": [bool(c) for c in top.converged],
        "bottom_eigenvalues": _floats(bottom.eigenvalues),
        "bottom_residuals": _floats(bottom.residuals),
        "bottom_converged": [bool(c) for c in bottom.converged],
        "lanczos_hvps": int(top.num_matvecs + bottom.num_matvecs),
        "slq": _slq_counts(config["slq_probes"], steps, density, stats),
        "trace": float(trace.trace),
        "trace_std_error": float(trace.std_error),
        "trace_hvps": int(trace.num_matvecs),
        "threshold": threshold,
    }
    arrays = {"density_grid": _array(density.grid), "density": _array(density.density)}
    if exact_wanted:
        exact = exact_hessian(
            target.model, target.loss_fn, target.batches, max_params=config["exact_max"], **common
        )
        ex = spectrum_statistics(exact.eigenvalues, threshold=threshold)
        values["exact"] = {
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
        arrays["hessian_eigenvalues"] = _array(exact.eigenvalues)
        progress.advance(5, steps_total, "steps (exact Hessian)")
    if "slices" not in _skipped(config):
        values["eigen_line"] = _eigen_line(target, config, top.eigenvectors[:, 0])
        arrays["eigen_line_losses"] = np.asarray(values["eigen_line"]["losses"])
        progress.advance(steps_total, steps_total, "steps (slice along the top eigenvector)")
    return UnitResult(values=values, arrays=arrays)


def _eigen_line(target: Target, config: dict[str, Any], vector: Tensor) -> dict[str, list[float]]:
    """The loss along the top eigenvector (unit norm) over the distances of the random 1-D slice: α‖δ‖ for
    the α of the slice and δ its filter-normalized direction, so both curves cover the same distance."""
    from deeplandscape.analysis.slices import loss_line, random_direction

    norm = float(random_direction(target.model, seed=config["seed"] + 20).norm())
    distances = _alphas(config) * norm
    line = loss_line(
        target.model,
        target.loss_fn,
        target.batches,
        vector,
        distances,
        train=target.train,
        output=target.output,
    )
    return {"distances": _floats(distances), "losses": _floats(line.losses)}


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


COUNTS_NOTE = (
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


def _count_row(name: str, s: dict, key: str) -> tuple[str, str]:
    """A row: the SLQ estimate ± its probe standard error, and the bounds that include the bias."""
    slq, d = s["slq"], s["num_parameters"]
    low, high = slq["bounds"][key]
    bounds = f"between {low:.3g} and {high:.3g} ({low * d:.0f}–{high * d:.0f} of {d})"
    if slq[key] is None:
        return f"{name} (SLQ)", f"not resolved: {bounds}; {slq['reasons'][key]}"
    return f"{name} (SLQ)", f"{slq[key]:.4g} ± {slq['std_error'][key]:.2g}; {bounds}"


def spectrum_table(s: dict[str, Any], config: dict[str, Any]) -> Table:
    rows = [
        ("top eigenvalues (Lanczos)", _fmt(s["top_eigenvalues"])),
        ("their residuals ‖Hy − θy‖", _fmt(s["top_residuals"])),
        ("converged (relative accuracy)", _fmt(s["top_converged"])),
        ("bottom eigenvalues (Lanczos)", _fmt(s["bottom_eigenvalues"])),
        ("their residuals", _fmt(s["bottom_residuals"])),
        ("converged (relative accuracy)", _fmt(s["bottom_converged"])),
        (
            f"trace (Hutchinson, {config['trace_probes']} probes)",
            f"{s['trace']:.6g} ± {s['trace_std_error']:.2g}",
        ),
        _count_row(f"normalized index (|λ| ≤ {s['threshold']:g} is zero)", s, "normalized_index"),
        _count_row("fraction near zero", s, "fraction_near_zero"),
    ]
    if "exact" in s:
        e = s["exact"]
        rows += [
            ("index (exact)", f"{e['index']} of {s['num_parameters']}"),
            ("normalized index (exact)", f"{e['normalized_index']:.4g}"),
            ("fraction near zero (exact)", f"{e['fraction_near_zero']:.4g}"),
            ("trace (exact)", f"{e['trace']:.6g}"),
            (
                "arithmetic / harmonic (λ > threshold) mean (exact)",
                f"{e['arithmetic_mean']:.4g} / {e['harmonic_mean_positive']:.4g}",
            ),
        ]
    note = COUNTS_NOTE.format(steps=s["slq"]["num_steps"], probes=s["slq"]["num_probes"])
    return Table("hessian", "Hessian", ("quantity", "value"), tuple(rows), note)


def spectrum_figure(s: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
    figure, ax = _figure()
    ax.semilogy(arrays["density_grid"], np.maximum(arrays["density"], 1e-12), label="SLQ density")
    if "hessian_eigenvalues" in arrays:
        ax.hist(arrays["hessian_eigenvalues"], bins=80, density=True, alpha=0.35, label="exact eigenvalues")
    for value in s["top_eigenvalues"] + s["bottom_eigenvalues"]:
        ax.axvline(value, color="tab:red", lw=0.6, alpha=0.6)
    ax.set_ylim(bottom=1e-6)
    ax.set_xlabel("eigenvalue λ of the Hessian")
    ax.set_ylabel("density")
    ax.set_title(f"Hessian spectrum (d = {s['num_parameters']}); red: Lanczos extremes")
    ax.legend(fontsize=8)
    save_figure(out / "hessian_spectrum.png", figure)


# ------------------------------------------------------------------------------------------- the Fisher


def fisher(target: Target, config: dict[str, Any]) -> UnitResult:
    """The diagonal of the empirical Fisher, E[g²] − (E g)² over the samples (Thesis §3.3.1)."""
    from deeplandscape.analysis.fisher import fisher_diagonal

    result = fisher_diagonal(
        target.model, target.loss_fn, target.batches, train=target.train, output=target.output
    )
    diag = _array(result.diagonal)
    values = {
        "num_samples": int(result.num_samples),
        "mean": float(diag.mean()),
        "median": float(np.median(diag)),
        "max": float(diag.max()),
        "sum": float(diag.sum()),
        "fraction_below_1e-8": float((diag < 1e-8).mean()),
    }
    return UnitResult(values=values, arrays={"fisher_diagonal": diag})


def fisher_table(f: dict[str, Any], config: dict[str, Any]) -> Table:
    rows = (
        ("mean", f"{f['mean']:.4g}"),
        ("median", f"{f['median']:.4g}"),
        ("max", f"{f['max']:.4g}"),
        ("sum", f"{f['sum']:.4g}"),
        ("entries below 1e-8", f"{100 * f['fraction_below_1e-8']:.1f}%"),
        ("samples N", str(f["num_samples"])),
    )
    return Table("fisher", "Fisher diagonal", ("quantity", "value"), rows)


def fisher_figure(f: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
    diag = arrays["fisher_diagonal"]
    positive = diag[diag > 0]
    figure, ax = _figure()
    if positive.size:
        ax.hist(np.log10(positive), bins=60)
    ax.set_xlabel("log10 of the Fisher diagonal entry E[g²] − (E g)²")
    ax.set_ylabel("parameters")
    ax.set_title(f"Fisher diagonal ({diag.size - positive.size} of {diag.size} entries are 0)")
    save_figure(out / "fisher_diagonal.png", figure)


# ------------------------------------------------------------------------------------------- D(x)


def _subset(batches: list[Batch], n: int, batch_size: int = 256) -> list[Batch]:
    import torch

    inputs = torch.cat([x for x, _ in batches])[:n]
    targets = torch.cat([y for _, y in batches])[:n]
    return [
        (inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, len(inputs), batch_size)
    ]


def noise(target: Target, config: dict[str, Any]) -> UnitResult:
    """The spectrum of the mini-batch diffusion matrix D(x) from the first ``noise_samples`` per-sample
    gradients (Thesis Lemma 6.3, §6.3.2), and with ``lr`` the temperature β⁻¹ = η/(2b)."""
    from deeplandscape.analysis.noise import diffusion_spectrum, sgd_temperature

    subset = _subset(target.batches, config["noise_samples"])
    n = sum(len(x) for x, _ in subset)
    result = diffusion_spectrum(
        target.model, target.loss_fn, subset, train=target.train, output=target.output
    )
    eigenvalues = _array(result.eigenvalues)
    values: dict[str, Any] = {
        "num_samples": n,
        "num_parameters": int(result.num_params),
        "method": result.method,
        "rank": int(result.rank),
        "relative_rank": float(result.relative_rank),
        "rank_threshold": float(result.rank_threshold),
        "mean": float(result.mean),
        "std": float(result.std),
        "trace": float(result.trace),
        "top_eigenvalues": _floats(eigenvalues[:10]),
    }
    if config["lr"] > 0:
        b = len(target.batches[0][0])
        temperature = sgd_temperature(config["lr"], b, target.num_samples)
        values["temperature"] = {
            "lr": config["lr"],
            "batch_size": b,
            "with_replacement": float(temperature.with_replacement),
            "without_replacement": float(temperature.without_replacement),
        }
    return UnitResult(values=values, arrays={"diffusion_eigenvalues": eigenvalues})


def noise_table(n: dict[str, Any], config: dict[str, Any]) -> Table:
    rows = [
        ("rank", f"{n['rank']} of d = {n['num_parameters']} (relative {n['relative_rank']:.4g})"),
        ("rank threshold", f"{n['rank_threshold']:.3g}"),
        ("eigenvalue mean / std", f"{n['mean']:.4g} / {n['std']:.4g}"),
        ("trace", f"{n['trace']:.4g}"),
        ("per-sample gradients", f"N = {n['num_samples']} ({n['method']} route)"),
    ]
    if "temperature" in n:
        t = n["temperature"]
        rows.append(
            (
                f"temperature β⁻¹ = η/(2b), η = {t['lr']:g}, b = {t['batch_size']}",
                f"{t['with_replacement']:.4g} (without replacement {t['without_replacement']:.4g})",
            )
        )
    return Table("noise", "Mini-batch noise D(x)", ("quantity", "value"), tuple(rows))


def noise_figure(n: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
    eigenvalues = arrays["diffusion_eigenvalues"]
    positive = eigenvalues[eigenvalues > n["rank_threshold"]]
    figure, ax = _figure()
    ax.semilogy(np.arange(1, positive.size + 1), positive, ".", ms=3)
    ax.set_xlabel("eigenvalue rank")
    ax.set_ylabel("eigenvalue of D(x)")
    ax.set_title(f"D(x) spectrum: rank {n['rank']} of d = {n['num_parameters']} (N = {n['num_samples']})")
    save_figure(out / "diffusion_spectrum.png", figure)


# ------------------------------------------------------------------------------------------- width


def width(target: Target, config: dict[str, Any]) -> UnitResult:
    """Local Entropy f_γ(x) at the scopes ``gammas`` and the robust width γ* for ``epsilon`` (Thesis
    Def. 3.3, Def. 4.20)."""
    from deeplandscape.analysis.width import local_entropy, robust_width_from_estimates

    estimates = []
    for i, gamma in enumerate(config["gammas"]):
        estimates.append(
            local_entropy(
                target.model,
                target.loss_fn,
                target.batches,
                gamma,
                train=target.train,
                output=target.output,
                n_chains=config["width_chains"],
                n_steps=config["width_steps"],
                burnin=config["width_burnin"],
                n_nodes=config["width_nodes"],
                seed=config["seed"] + 10 + i,
            )
        )
        progress.advance(i + 1, len(config["gammas"]), "scopes γ")
    robust = robust_width_from_estimates(estimates, config["epsilon"])
    gammas = np.asarray([e.gamma for e in estimates])
    excess = np.asarray([e.excess for e in estimates])
    errors = np.asarray([e.standard_error for e in estimates])
    values = {
        "loss": float(estimates[0].loss),
        "gammas": _floats(gammas),
        "local_entropy": [float(e.value) for e in estimates],
        "excess": _floats(excess),
        "standard_errors": _floats(errors),
        "acceptance": [float(e.acceptance) for e in estimates],
        "epsilon": config["epsilon"],
        "gamma_star": float(robust.gamma_star),
        "gamma_star_upper": float(robust.upper),
        "gradients": int(sum(e.n_gradients for e in estimates)),
    }
    arrays = {"width_gammas": gammas, "width_excess": excess, "width_standard_errors": errors}
    return UnitResult(values=values, arrays=arrays)


def width_table(w: dict[str, Any], config: dict[str, Any]) -> Table:
    rows = tuple(
        (f"{g:g}", f"{v:.6g}", f"{x:.4g}", f"{se:.2g}")
        for g, v, x, se in zip(
            w["gammas"], w["local_entropy"], w["excess"], w["standard_errors"], strict=True
        )
    )
    upper = "∞" if math.isinf(w["gamma_star_upper"]) else f"{w['gamma_star_upper']:g}"
    note = f"Robust width γ* = {w['gamma_star']:g} for ε = {w['epsilon']:g} (next γ: {upper})."
    header = ("γ", "f_γ(x)", "f_γ(x) − f(x)", "standard error")
    return Table("width", "Width (Local Entropy)", header, rows, note)


def width_figure(w: dict[str, Any], arrays: dict[str, np.ndarray], out: Path) -> None:
    figure, ax = _figure()
    ax.errorbar(
        arrays["width_gammas"],
        arrays["width_excess"],
        yerr=2 * arrays["width_standard_errors"],
        fmt="o-",
        capsize=3,
        label="f_γ(x) − f(x) ± 2 SE",
    )
    ax.axhline(w["epsilon"], color="tab:red", ls="--", label=f"ε = {w['epsilon']:g}")
    ax.set_xscale("log")
    ax.set_xlabel("scope γ")
    ax.set_ylabel("Local Entropy excess")
    ax.set_title(f"Width: robust γ* = {w['gamma_star']:g}")
    ax.legend(fontsize=8)
    save_figure(out / "width.png", figure)


# ------------------------------------------------------------------------------------------- slices


def _alphas(config: dict[str, Any]) -> np.ndarray:
    return np.linspace(-config["span"], config["span"], config["line_points"])


def slices(target: Target, config: dict[str, Any]) -> UnitResult:
    """Filter-normalized 1-D and 2-D loss slices over [−span, span] (Li et al. 2018 §4)."""
    from deeplandscape.analysis.slices import loss_line, loss_plane, random_direction

    d1 = random_direction(target.model, seed=config["seed"] + 20)
    d2 = random_direction(target.model, seed=config["seed"] + 21)
    alphas = _alphas(config)
    grid = np.linspace(-config["span"], config["span"], config["plane_points"])
    common = {"train": target.train, "output": target.output}
    line = loss_line(target.model, target.loss_fn, target.batches, d1, alphas, **common)
    progress.advance(1, 2, "slices")
    plane = loss_plane(target.model, target.loss_fn, target.batches, d1, d2, grid, **common)
    progress.advance(2, 2, "slices")
    values = {
        "span": config["span"],
        "line_alphas": _floats(alphas),
        "line_losses": _floats(line.losses),
        "direction_norm": line.direction_norm,
        "plane_points": config["plane_points"],
        "plane_min": float(plane.losses.min()),
        "plane_max": float(plane.losses.max()),
        "evaluations": int(line.n_evaluations + plane.n_evaluations),
    }
    arrays = {
        "line_alphas": alphas,
        "line_losses": line.losses,
        "plane_grid": grid,
        "plane_losses": plane.losses,
    }
    return UnitResult(values=values, arrays=arrays)


def slices_table(s: dict[str, Any], config: dict[str, Any]) -> Table:
    rows = (
        ("norm ‖δ‖ of the filter-normalized direction", f"{s['direction_norm']:.4g}"),
        ("range of the 2-D slice", f"[{s['plane_min']:.4g}, {s['plane_max']:.4g}]"),
        ("loss evaluations", str(s["evaluations"])),
    )
    return Table(
        "slices", "Loss slices", ("quantity", "value"), rows, f"α, β ∈ [−{s['span']:g}, {s['span']:g}]."
    )


def slices_figure(
    s: dict[str, Any], arrays: dict[str, np.ndarray], out: Path, eigen_line: dict[str, Any] | None
) -> None:
    figure, ax = _figure()
    ax.plot(arrays["line_alphas"], arrays["line_losses"], label="filter-normalized random direction")
    if eigen_line is not None:
        ax.plot(arrays["line_alphas"], eigen_line["losses"], label="top Hessian eigenvector (same distance)")
    ax.set_xlabel("α (in units of the direction's norm)")
    ax.set_ylabel("loss")
    ax.set_title("1-D loss slices through the weights")
    ax.legend(fontsize=8)
    save_figure(out / "slice_1d.png", figure)

    grid, losses = arrays["plane_grid"], arrays["plane_losses"]
    figure, ax = _figure(4.6, 4.0)
    contour = ax.contourf(grid, grid, losses.T, levels=30, cmap="viridis")
    ax.contour(grid, grid, losses.T, levels=15, colors="k", linewidths=0.4)
    figure.colorbar(contour, ax=ax, label="loss")
    ax.plot([0], [0], "r+", ms=10)
    ax.set_xlabel("α (direction 1)")
    ax.set_ylabel("β (direction 2)")
    ax.set_title("2-D filter-normalized loss slice")
    save_figure(out / "slice_2d.png", figure)


def _skipped(config: dict[str, Any]) -> set[str]:
    return {name.strip() for name in config["skip"].split(",") if name.strip()}


COMPUTE = {"spectrum": spectrum, "fisher": fisher, "noise": noise, "width": width, "slices": slices}
TABLES = {
    "spectrum": spectrum_table,
    "fisher": fisher_table,
    "noise": noise_table,
    "width": width_table,
    "slices": slices_table,
}
