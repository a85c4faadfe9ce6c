"""``choromanska-nets``: many one-hidden-layer ReLU networks per width n1, their test losses and indices.

Choromanska et al. §5 (Fig. 3 right, Fig. 4–5, Fig. 7–10, Table 1): for each hidden width n1, train many
networks ``input → fc_{n1} → ReLU → fc_{10}`` from independent starts drawn uniformly in the unit cube with
SGD and learning-rate decay (the paper: 1000 networks, 200 epochs, 10×10 MNIST). The scaled test losses
``L / e^{α n1^β}`` concentrate as n1 grows (the variance falls even after scaling, Fig. 3 right, Fig. 9),
the correlation between train and test loss falls with n1 (Table 1, Fig. 7), and the solutions are minima
or saddles of low normalized index (Fig. 4–5: full Hessian, eigenvalues with ``|λ| < 1e-3`` counted as
zero).

An index describes a critical point; the paper takes it at the end of SGD without reporting the gradient
there. Here the first ``hessian_nets`` solutions of each width in ``hessian_widths`` are trained on to a
full-batch gradient-norm tolerance ``grad_tol`` (full-batch L-BFGS, then a Levenberg–Marquardt polish that
converges to a critical point of any index: :mod:`deeplandscape.experiments._critical`), and ``‖∇L‖`` is
reported at every point where the index is taken — at SGD's end (the paper's protocol) and at the end of
the refinement; the index claim is decided only on points whose gradient norm is below the tolerance.

Data: the embedded 8×8 digits by default (64 inputs), or ``data=mnist-10x10`` with ``mnist_path=`` (100
inputs, the paper's setting; the reference scale uses it with the first ``train_samples`` training images,
the test losses on the whole test split). Pixels are mapped to [0, 1] for this experiment: with every
weight and bias in U[0, 1] at the start and inputs in [−1, 1] (background −1) nearly every hidden unit
would start dead; the paper does not state its pixel range.

Simulated annealing (Choromanska §5.1, supplementary §12.2, Fig. 6; units ``anneal-n<n1>``, switched off
by ``anneal=false``): for each width in ``anneal_widths``, ``anneal_nets`` networks whose weights take the 3
values {−1, 0, 1} ("3 values uniformly spaced in [−1, 1]") are annealed on a subset of the training data
(its first ``anneal_samples`` images), and as many real-valued networks are trained by SGD on the same
subset (from the unit cube, η0 = ``lr``, decay ``anneal_lr_decay`` per epoch for ``anneal_sgd_epochs``
epochs; the paper does not give the SGD settings of this comparison). The paper reports "less than 2.5%
drop in accuracy" for SA. Move set, acceptance, temperature schedule and the logit scale κ, which the paper
does not state, are our choices, described in :mod:`deeplandscape.experiments._annealing` (single-weight
moves to one of the two other values, Metropolis acceptance, geometric cooling from T₀ with the mean uphill
step accepted with probability 1/2 down to 10⁻³ T₀, ``anneal_sweeps`` · d proposals per network). Test
losses of the ternary networks are taken at the logit multiplier that minimizes their training loss (the
accuracy does not depend on it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from deeplandscape import data as dl_data
from deeplandscape import nets, optim
from deeplandscape.analysis import spectrum_statistics
from deeplandscape.experiments import _memory
from deeplandscape.experiments._annealing import anneal_ternary_mlp, calibrated_loss, ternary_logits
from deeplandscape.experiments._critical import refine_critical_point
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    LEVEL,
    Claim,
    NotChecked,
    RunData,
    Statistic,
    Undecidable,
    Verdict,
    all_of,
    bootstrap,
    decide,
    error_difference,
    guarded,
    proportion,
    require_above_chance,
    require_at_most,
    require_gradient_checked,
    std_ratio,
)
from deeplandscape.experiments.spec import (
    Diagnostic,
    Experiment,
    Figure,
    MemoryNeed,
    Param,
    Table,
    Unit,
    UnitResult,
)
from deeplandscape.rundir import save_npz

# Choromanska et al. Table 1: the Pearson correlation between training and test loss per n1.
PAPER_PEARSON = {25: 0.7616, 50: 0.6861, 100: 0.5983, 250: 0.5302, 500: 0.4081}
# Choromanska et al. §5.1: "saddle points of very low normalized index (of the order 0.01)"; "All eigenvalues
# less than 0.001 in magnitude were set to 0".
PAPER_INDEX_ORDER = 0.01
PAPER_ZERO_THRESHOLD = 1e-3
# Ours: "of the order 0.01" read as below the geometric midpoint of 0.01 and 0.1, 10^(−1.5) ≈ 0.032; "all
# solutions" read as at least 80% of them (a proportion of exactly 1 cannot be shown from a finite sample).
LOW_INDEX = 10**-1.5
ALL_FRACTION = 0.8
# Choromanska et al. §5.1: "We obtained less than 2.5% drop in accuracy" (SA with 3 weight values vs SGD).
PAPER_ANNEAL_DROP = 2.5  # percentage points

PARAMS = {
    "data": Param("str", "digits", "data set", choices=("digits", "mnist-10x10"), reference="mnist-10x10",
                  paper="mnist-10x10"),
    "mnist_path": Param("str", "", "directory or file of MNIST (only for data=mnist-10x10)"),
    "train_samples": Param(
        "int", 0, "training images used (the first ones of the training split; 0: all)", reference=10_000,
        low=0,
    ),
    "widths": Param(
        "ints", [5, 10, 25, 50, 100], "hidden widths n1", quick=[5, 25], reference=[10, 25, 50, 100],
        paper=[10, 25, 50, 100, 250, 500], low=1,
    ),
    "nets": Param("int", 200, "networks per width", quick=32, reference=100, paper=1000, low=4),
    "epochs": Param("int", 40, "training epochs", quick=20, reference=15, paper=200, low=1),
    "batch_size": Param("int", 32, "mini-batch size", low=1),
    "lr": Param("float", 0.1, "initial learning rate η0", low=1e-8),
    "lr_decay": Param(
        "float", 0.9, "learning-rate factor γ per epoch (η0·γ^epoch)", quick=0.85, paper=0.98, low=1e-6,
        high=1.0,
    ),
    "hessian_widths": Param(
        "ints", [5, 10], "widths whose solutions get the exact Hessian", quick=[5], reference=[10],
        paper=[10, 25, 50, 100], low=1,
    ),
    "hessian_nets": Param("int", 16, "networks per width with the exact Hessian", quick=3, reference=16,
                          paper=100, low=0),
    "zero_threshold": Param("float", PAPER_ZERO_THRESHOLD, "|λ| below this counts as zero (Choromanska §5.1)",
                            low=0.0),
    "grad_tol": Param(
        "float", PAPER_ZERO_THRESHOLD / 10, "gradient-norm tolerance of the points whose index is taken",
        low=1e-300,
    ),
    "lbfgs_iterations": Param("int", 500, "full-batch L-BFGS iterations towards grad_tol after SGD",
                              quick=20, low=0),
    "newton_steps": Param("int", 4, "Hessians of the Levenberg–Marquardt polish towards grad_tol", quick=2,
                          low=1),
    "anneal": Param("bool", True, "also compare simulated annealing of ternary nets with SGD (Fig. 6)"),
    "anneal_widths": Param(
        "ints", [10, 25], "hidden widths n1 of the annealing comparison", quick=[10], paper=[10, 25, 50, 100],
        low=1,
    ),
    "anneal_nets": Param("int", 24, "networks per width, for SA and for SGD", quick=8, paper=100, low=2),
    "anneal_samples": Param(
        "int", 400, "training subset of the annealing comparison (first images of the train split)",
        quick=200, reference=1000, paper=1000, low=1,
    ),
    "anneal_sweeps": Param(
        "int", 30, "SA proposals per network, in units of its parameter count d", quick=10, paper=200, low=1,
    ),
    "anneal_sgd_epochs": Param("int", 200, "SGD epochs on the subset", quick=40, low=1),
    "anneal_lr_decay": Param(
        "float", 0.98, "learning-rate factor per epoch of SGD on the subset", low=1e-6, high=1.0,
    ),
}  # fmt: skip


def _load(config: dict[str, Any]) -> dl_data.DataSplits:
    if config["data"] == "digits":
        return dl_data.load("digits", seed=0)
    return dl_data.load("mnist-10x10", config["mnist_path"] or None, seed=0)


def _unit_interval(x: torch.Tensor) -> torch.Tensor:
    """Pixels from [−1, 1] to [0, 1] (see the module docstring), flattened."""
    return ((x + 1) / 2).flatten(1)


def _train(
    config: dict[str, Any], splits: dl_data.DataSplits, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` training images (all for 0), pixels in [0, 1]."""
    if count > splits.train.x.shape[0]:
        raise ValueError(
            f"Invalid train_samples or anneal_samples: {count} (the training split of {config['data']} has "
            f"{splits.train.x.shape[0]} images)"
        )
    count = count or splits.train.x.shape[0]
    return _unit_interval(splits.train.x[:count]), splits.train.y[:count]


def units(config: dict[str, Any]) -> list[Unit]:
    widths = [Unit(f"n{n1}", {"n1": n1}) for n1 in config["widths"]]
    if not config["anneal"]:
        return widths
    return widths + [Unit(f"anneal-n{n1}", {"n1": n1, "kind": "anneal"}) for n1 in config["anneal_widths"]]


def _net_name(n1: int) -> str:
    return f"choromanska-{n1}" if n1 in nets.CHOROMANSKA_WIDTHS else "choromanska-10"


def _sgd(config: dict[str, Any], n1: int, count: int, seed: int, train, test, epochs: int, decay: float):
    """``count`` networks of width n1 from the unit cube, SGD with η0·γ^epoch; ``(ensemble, history)``."""
    ensemble = nets.Ensemble.from_name(_net_name(n1), count, seed=seed, n1=n1, in_features=train[0].shape[1])
    lr = config["lr"]
    history = optim.train_ensemble(
        ensemble, optim.EnsembleSGD(ensemble, lr), train, test=test, epochs=epochs,
        batch_size=config["batch_size"], lr_schedule=lambda e: lr * decay**e, seed=seed,
    )  # fmt: skip
    return ensemble, history


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    if unit.params.get("kind") == "anneal":
        return run_anneal_unit(config, unit.params["n1"], seed)
    n1 = unit.params["n1"]
    splits = _load(config)
    x, y = _train(config, splits, config["train_samples"])
    xt, yt = _unit_interval(splits.test.x), splits.test.y
    ensemble, history = _sgd(
        config, n1, config["nets"], seed, (x, y), (xt, yt), config["epochs"], config["lr_decay"]
    )
    with torch.no_grad():
        test_error = (ensemble(xt).argmax(-1) != yt).double().mean(1).numpy()
    arrays = {
        "train_loss": history.train_loss[-1].double().numpy(),
        "test_loss": history.test_loss[-1].double().numpy(),
        "test_error": test_error,
        "train_curve": history.train_loss.double().mean(1).numpy(),
    }
    if n1 in config["hessian_widths"]:
        arrays.update(_indices(config, ensemble, x, y))
    return UnitResult(
        values={
            "n1": n1,
            "nets": config["nets"],
            "steps": history.steps,
            "parameters": nets.parameter_count(ensemble.member(0)),
            "train_samples": int(x.shape[0]),
            "test_samples": int(yt.numel()),
        },
        arrays=arrays,
    )


def _indices(config: dict[str, Any], ensemble, x: torch.Tensor, y: torch.Tensor) -> dict[str, np.ndarray]:
    """The Hessian index at SGD's end and after training on towards ``grad_tol``, for the first
    ``hessian_nets`` members, with ``‖∇L‖`` at both points."""
    keys = ("normalized_index", "near_zero_fraction", "grad_norm", "lambda_min", "normalized_index_sgd",
            "grad_norm_sgd", "relative_distance", "loss_drop")  # fmt: skip
    out: dict[str, list[float]] = {k: [] for k in keys}
    eps = config["zero_threshold"]
    for k in range(min(config["hessian_nets"], len(ensemble))):
        point = refine_critical_point(
            ensemble.member(k).double(), x.double(), y, tol=config["grad_tol"],
            lbfgs_iterations=config["lbfgs_iterations"], max_hessians=config["newton_steps"],
        )  # fmt: skip
        end = spectrum_statistics(point.eigenvalues, threshold=eps)
        out["normalized_index"].append(end.normalized_index)
        out["near_zero_fraction"].append(end.fraction_near_zero)
        out["grad_norm"].append(point.grad_norm)
        out["lambda_min"].append(float(point.eigenvalues[0]))
        out["normalized_index_sgd"].append(
            spectrum_statistics(point.eigenvalues_start, threshold=eps).normalized_index
        )
        out["grad_norm_sgd"].append(point.grad_norm_start)
        out["relative_distance"].append(point.relative_distance)
        out["loss_drop"].append(point.loss_start - point.loss)
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def run_anneal_unit(config: dict[str, Any], n1: int, seed: int) -> UnitResult:
    """SA of ``anneal_nets`` ternary networks and SGD of as many real-valued ones on the same subset
    (module docstring; Choromanska §5.1, Fig. 6)."""
    splits = _load(config)
    x, y = _train(config, splits, config["anneal_samples"])
    xt, yt = _unit_interval(splits.test.x), splits.test.y
    count = config["anneal_nets"]
    d = n1 * (x.shape[1] + 1) + 10 * (n1 + 1)
    proposals = config["anneal_sweeps"] * d
    sa = anneal_ternary_mlp(
        x, y, n1, chains=count, proposals=proposals, record_every=max(1, proposals // 50), seed=seed
    )
    train_logits = ternary_logits(sa.w1, sa.w2, x, sa.logit_scale)
    test_logits = ternary_logits(sa.w1, sa.w2, xt, sa.logit_scale)
    _, sa_test_loss = calibrated_loss(train_logits, y, test_logits, yt)
    ensemble, history = _sgd(
        config, n1, count, seed, (x, y), (xt, yt), config["anneal_sgd_epochs"], config["anneal_lr_decay"]
    )
    with torch.no_grad():
        sgd_wrong = (ensemble(xt).argmax(-1) != yt).numpy()
    return UnitResult(
        values={
            "kind": "anneal",
            "n1": n1,
            "nets": count,
            "samples": int(x.shape[0]),
            "parameters": d,
            "proposals": proposals,
            "logit_scale": sa.logit_scale,
            "t_start": sa.t_start,
            "t_end": sa.t_end,
            "sgd_steps": history.steps,
        },
        arrays={
            "sa_w1": sa.w1.to(torch.int8).numpy(),
            "sa_w2": sa.w2.to(torch.int8).numpy(),
            "sa_initial_loss": sa.initial_loss.double().numpy(),
            "sa_train_loss": sa.final_loss.double().numpy(),
            "sa_test_loss": sa_test_loss.double().numpy(),
            "sa_wrong": (test_logits.argmax(-1) != yt).numpy(),
            "sa_acceptance": sa.acceptance.numpy(),
            "sa_curve": sa.loss_curve.double().numpy(),
            "sa_curve_steps": sa.curve_steps.numpy(),
            "sgd_train_loss": history.train_loss[-1].double().numpy(),
            "sgd_test_loss": history.test_loss[-1].double().numpy(),
            "sgd_wrong": sgd_wrong,
        },
    )


def fit_exponential_power_law(widths: np.ndarray, means: np.ndarray) -> tuple[float, float, float] | None:
    """Choromanska et al. §5.1: ``E[L] ≈ C·e^{α n1^β}``, fitted as ``log E[L] = log C + α n1^β`` by least
    squares (β on a grid, then ``log C`` and α linear). Returns ``(C, α, β)``, or ``None`` when fewer than
    four widths make the three-parameter fit not over-determined.
    """
    widths, means = np.asarray(widths, float), np.asarray(means, float)
    if widths.size < 4 or np.any(means <= 0):
        return None
    logm = np.log(means)
    best = None
    for beta in np.linspace(-2.0, 2.0, 801):
        if abs(beta) < 1e-6:
            continue
        design = np.stack([np.ones_like(widths), widths**beta], axis=1)
        coef, *_ = np.linalg.lstsq(design, logm, rcond=None)
        residual = float(np.sum((design @ coef - logm) ** 2))
        if best is None or residual < best[0]:
            best = (residual, float(math.exp(coef[0])), float(coef[1]), float(beta))
    return best[1], best[2], best[3]


def _scales(widths: list[int], means: np.ndarray) -> tuple[dict[int, float], dict[str, float] | None]:
    """The divisor of each width's losses: ``e^{α n1^β}`` of the fit, or the mean loss with fewer than four
    widths (where the fit interpolates the means exactly); and the fit."""
    fit = fit_exponential_power_law(np.array(widths), means)
    if fit is None:
        return {n: float(m) for n, m in zip(widths, means, strict=True)}, None
    c, alpha, beta = fit
    return {n: math.exp(alpha * n**beta) for n in widths}, {"C": c, "alpha": alpha, "beta": beta}


def _pearson(train: np.ndarray, test: np.ndarray) -> tuple[float, float, float]:
    """Pearson's ρ with its 95% interval (Fisher's z, ``scipy.stats.pearsonr(...).confidence_interval``)."""
    result = stats.pearsonr(train, test)
    ci = result.confidence_interval(confidence_level=LEVEL)
    return float(result.statistic), float(ci.low), float(ci.high)


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    annealed = [r for r in results if r.values.get("kind") == "anneal"]
    results = [r for r in results if r.values.get("kind") != "anneal"]
    widths = [r.values["n1"] for r in results]
    means = np.array([r.arrays["test_loss"].mean() for r in results])
    scale, fit = _scales(widths, means)
    rows = []
    for r in results:
        n1, a = r.values["n1"], r.arrays
        tr, te = a["train_loss"], a["test_loss"]
        rho, lo, hi = _pearson(tr, te)
        row = {
            "n1": n1,
            "nets": int(te.size),
            "parameters": r.values["parameters"],
            "train_loss_mean": float(tr.mean()),
            "test_loss_mean": float(te.mean()),
            "test_loss_std": float(te.std(ddof=1)),
            "scale": scale[n1],
            "scaled_test_loss_std": float((te / scale[n1]).std(ddof=1)),
            "test_error_mean": float(a["test_error"].mean()),
            "train_test_pearson": rho,
            "pearson_ci": [lo, hi],
            "hessian_nets": int(a["normalized_index"].size) if "normalized_index" in a else 0,
        }
        if row["hessian_nets"]:
            row.update(
                {
                    "normalized_index_mean": float(a["normalized_index"].mean()),
                    "normalized_index_max": float(a["normalized_index"].max()),
                    "low_index_count": int((a["normalized_index"] <= LOW_INDEX).sum()),
                    "near_zero_fraction_mean": float(a["near_zero_fraction"].mean()),
                    "near_zero_fraction_max": float(a["near_zero_fraction"].max()),
                    "grad_norm_max": float(a["grad_norm"].max()),
                    "grad_norm_median": float(np.median(a["grad_norm"])),
                    "normalized_index_sgd_mean": float(a["normalized_index_sgd"].mean()),
                    "grad_norm_sgd_median": float(np.median(a["grad_norm_sgd"])),
                    "relative_distance_median": float(np.median(a["relative_distance"])),
                    "loss_drop_median": float(np.median(a["loss_drop"])),
                }
            )
        rows.append(row)
    save_npz(
        out / "choromanska_nets.npz",
        **{f"n{r.values['n1']}_{k}": v for r in results for k, v in r.arrays.items()},
    )
    scaled = {r.values["n1"]: r.arrays["test_loss"] / scale[r.values["n1"]] for r in results}
    save(plot_losses(scaled), out / "scaled_test_loss.png")
    save(plot_train_test(results), out / "train_test.png")
    indexed = [r for r in results if "normalized_index" in r.arrays]
    if indexed:
        save(plot_index(indexed, config["grad_tol"]), out / "normalized_index.png")
    summary = {
        "data": config["data"],
        "train_samples": results[0].values["train_samples"],
        "test_samples": results[0].values["test_samples"],
        "epochs": config["epochs"],
        "lr": config["lr"],
        "lr_decay": config["lr_decay"],
        "grad_tol": config["grad_tol"],
        "zero_threshold": config["zero_threshold"],
        "fit": fit,
        "widths": rows,
    }
    if annealed:
        summary["annealing"] = _finalize_anneal(annealed, out)
    return summary


def _finalize_anneal(annealed: list[UnitResult], out: Path) -> list[dict[str, Any]]:
    rows = []
    for r in annealed:
        a, v = r.arrays, r.values
        sa_error, sgd_error = 100 * a["sa_wrong"].mean(1), 100 * a["sgd_wrong"].mean(1)
        rows.append(
            {
                "n1": v["n1"],
                "nets": v["nets"],
                "samples": v["samples"],
                "parameters": v["parameters"],
                "proposals": v["proposals"],
                "test_samples": int(a["sa_wrong"].shape[1]),
                "sa_test_error": float(sa_error.mean()),
                "sa_test_error_std": float(sa_error.std(ddof=1)),
                "sgd_test_error": float(sgd_error.mean()),
                "sgd_test_error_std": float(sgd_error.std(ddof=1)),
                "sa_wrong": int(a["sa_wrong"].sum()),
                "sgd_wrong": int(a["sgd_wrong"].sum()),
                "accuracy_drop": float(sa_error.mean() - sgd_error.mean()),
                "sa_initial_train_loss": float(a["sa_initial_loss"].mean()),
                "sa_train_loss": float(a["sa_train_loss"].mean()),
                "sa_test_loss": float(a["sa_test_loss"].mean()),
                "sgd_train_loss": float(a["sgd_train_loss"].mean()),
                "sgd_test_loss": float(a["sgd_test_loss"].mean()),
                "sa_acceptance": float(a["sa_acceptance"].mean()),
                "logit_scale": v["logit_scale"],
                "t_start": v["t_start"],
                "t_end": v["t_end"],
            }
        )
    save_npz(
        out / "annealing.npz", **{f"n{r.values['n1']}_{k}": x for r in annealed for k, x in r.arrays.items()}
    )
    save(plot_annealing(annealed), out / "annealing.png")
    return rows


# ---------------------------------------------------------------------------------------------- tables


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    out = [_table_1(results)]
    if any(w["hessian_nets"] for w in results["widths"]):
        out.append(_index_table(results))
    if results.get("annealing"):
        out.append(_annealing_table(results, config))
    return out


def _pm(mean: float, std: float, digits: int = 2) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table_1(results: dict[str, Any]) -> Table:
    mnist = results["data"] == "mnist-10x10"
    fit = results["fit"]
    scaling = (
        f"L / e^(α n1^β), α = {fit['alpha']:.4g}, β = {fit['beta']:.4g} (least-squares fit of the log mean "
        "loss)"
        if fit
        else "L / mean(L) per width (fewer than four widths: the power-law fit is not over-determined)"
    )
    rows = []
    for w in results["widths"]:
        low, high = w["pearson_ci"]
        paper = PAPER_PEARSON[w["n1"]] if mnist and w["n1"] in PAPER_PEARSON else "–"
        rows.append(
            (w["n1"], w["nets"], w["parameters"], f"{w['train_loss_mean']:.4f}",
             _pm(w["test_loss_mean"], w["test_loss_std"], 4), f"{w['scaled_test_loss_std']:.4f}",
             f"{100 * w['test_error_mean']:.2f}", f"{w['train_test_pearson']:.3f}",
             f"[{low:.3f}, {high:.3f}]", paper)
        )  # fmt: skip
    return Table(
        "table-1",
        "test losses and the train–test correlation per width (Choromanska et al. Table 1, Fig. 3, 9)",
        ("n1", "nets", "params", "train loss", "test loss", "scaled std", "test error (%)", "Pearson ρ",
         "95% interval", "paper ρ"),
        tuple(rows),
        f"Ours: {results['widths'][0]['nets']} networks per width, {results['epochs']} epochs of SGD (η0 = "
        f"{results['lr']}, decay {results['lr_decay']} per epoch) from the unit cube on the first "
        f"{results['train_samples']} training images of `{results['data']}`; losses on its "
        f"{results['test_samples']} test images. Scaled test loss: {scaling}. Pearson ρ over the networks "
        "of each width with Fisher's 95% interval. Paper: Choromanska et al. Table 1 (1000 networks, 200 "
        "epochs, 10×10 MNIST), beside the same width on MNIST only.",
    )  # fmt: skip


def _index_table(results: dict[str, Any]) -> Table:
    paper = f"order {PAPER_INDEX_ORDER:g}" if results["data"] == "mnist-10x10" else "–"
    rows = tuple(
        (w["n1"], w["hessian_nets"], f"{w['grad_norm_sgd_median']:.2e}",
         f"{w['normalized_index_sgd_mean']:.4f}", f"{w['grad_norm_median']:.2e}", f"{w['grad_norm_max']:.2e}",
         f"{w['normalized_index_mean']:.4f}",
         f"{w['normalized_index_max']:.4f}", f"{w['low_index_count']} of {w['hessian_nets']}",
         f"{w['near_zero_fraction_mean']:.3f}", f"{w['relative_distance_median']:.2e}", paper)
        for w in results["widths"]
        if w["hessian_nets"]
    )  # fmt: skip
    return Table(
        "index",
        "normalized index of the solutions and the gradient norm where it is taken (Choromanska et al. "
        "Fig. 4–5)",
        ("n1", "Hessians", "‖∇L‖ at SGD's end (median)", "index at SGD's end (mean)", "‖∇L‖ refined (median)",
         "‖∇L‖ refined (max)", "index refined (mean)", "index refined (max)", f"index ≤ {LOW_INDEX:.3g}",
         "|λ| ≤ ε", "moved (median, relative)", "paper"),
        rows,
        "Ours: the first networks of each width, their exact Hessian (float64, closed form) on the training "
        "images at SGD's end (the paper's protocol) and after training on towards the gradient-norm "
        f"tolerance {results['grad_tol']:g} (full-batch L-BFGS, then a Levenberg–Marquardt polish that "
        "converges to critical points of any index); normalized index = fraction of eigenvalues below −ε, "
        f"ε = {results['zero_threshold']:g}; \"moved\": ‖θ_refined − θ_SGD‖ / ‖θ_SGD‖. Paper: Choromanska "
        "et al. §5.1, Fig. 4–5 (n1 = 10, 25, 50, 100; gradient norm not reported).",
    )  # fmt: skip


def _annealing_table(results: dict[str, Any], config: dict[str, Any]) -> Table:
    rows = tuple(
        (w["n1"], w["nets"], w["samples"], _pm(w["sa_test_error"], w["sa_test_error_std"]),
         _pm(w["sgd_test_error"], w["sgd_test_error_std"]), f"{w['accuracy_drop']:.2f}",
         f"< {PAPER_ANNEAL_DROP:g}", f"{w['sa_train_loss']:.3f}", f"{w['sa_initial_train_loss']:.3f}",
         f"{w['sgd_train_loss']:.3f}", f"{w['sa_test_loss']:.3f}", f"{w['sgd_test_loss']:.3f}",
         f"{w['sa_acceptance']:.3f}")
        for w in results["annealing"]
    )  # fmt: skip
    return Table(
        "annealing",
        "simulated annealing with weights in {−1, 0, 1} against SGD (Choromanska et al. §5.1, Fig. 6)",
        ("n1", "nets", "train images", "SA test error (%)", "SGD test error (%)", "drop (points)",
         "paper drop", "SA train loss", "(start)", "SGD train loss", "SA test loss*", "SGD test loss",
         "SA acceptance"),
        rows,
        f"Ours: {config['anneal_sweeps']} SA proposals per weight; {config['anneal_sgd_epochs']} epochs of "
        f"SGD (η0 = {config['lr']}, decay {config['anneal_lr_decay']}) from the unit cube; both on the first "
        "training images, errors (mean ± std over networks) on the whole test split. *SA test loss at the "
        "logit multiplier that minimizes each network's training loss. Drop: SA's test error minus SGD's "
        "(negative: SA did better). Paper: Choromanska et al. §5.1 (a subset of 10×10 MNIST).",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- claims


def _ends(results: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The smallest and the largest width, each guarded against networks at chance level."""
    rows = sorted(results["widths"], key=lambda w: w["n1"])
    if len(rows) < 2:
        raise NotChecked("a single width")
    for w in (rows[0], rows[-1]):
        trials = w["nets"] * results["test_samples"]
        require_above_chance(
            f"the networks of n1 = {w['n1']}", round(w["test_error_mean"] * trials), trials, 10
        )
    return rows[0], rows[-1]


def _decide_concentration(run: RunData) -> Verdict:
    small, large = _ends(run.results)
    arrays = run.arrays("choromanska_nets.npz")
    a, b = (arrays[f"n{w['n1']}_test_loss"] / w["scale"] for w in (small, large))
    with np.errstate(invalid="ignore"):  # resamples of equal values: see std_ratio
        name = f"std of the scaled test loss, n1 = {large['n1']} / n1 = {small['n1']}"
        stat = bootstrap([a, b], std_ratio, name, what="network")
    evidence = ", ".join(f"n1 = {w['n1']}: {w['scaled_test_loss_std']:.4g}" for w in run.results["widths"])
    return decide(stat, below=1.0, evidence=f"scaled std {evidence}")


def fisher_difference(r_a: float, n_a: int, r_b: float, n_b: int, name: str) -> Statistic:
    """``z(r_a) − z(r_b)`` of two independent Pearson correlations on ``n_a`` and ``n_b`` pairs, Fisher's
    ``z = artanh r`` with the normal interval ``± Φ⁻¹(0.975) √(1/(n_a − 3) + 1/(n_b − 3))``."""
    if min(n_a, n_b) < 4:
        raise Undecidable(f"{name}: fewer than 4 networks, Fisher's interval is not defined")
    diff = math.atanh(r_a) - math.atanh(r_b)
    half = stats.norm.ppf(0.5 + LEVEL / 2) * math.sqrt(1 / (n_a - 3) + 1 / (n_b - 3))
    return Statistic(name, diff, diff - half, diff + half, LEVEL, "Fisher's z, normal interval")


def _decide_decorrelation(run: RunData) -> Verdict:
    small, large = _ends(run.results)
    stat = fisher_difference(
        small["train_test_pearson"], small["nets"], large["train_test_pearson"], large["nets"],
        f"z(ρ at n1 = {small['n1']}) − z(ρ at n1 = {large['n1']})",
    )  # fmt: skip
    evidence = ", ".join(f"n1 = {w['n1']}: ρ = {w['train_test_pearson']:.3f}" for w in run.results["widths"])
    return decide(stat, above=0.0, evidence=evidence)


def _decide_low_index(run: RunData) -> Verdict:
    indexed = [w for w in run.results["widths"] if w.get("hessian_nets")]
    if not indexed:
        raise NotChecked("no Hessian computed (hessian_widths and widths share no width, or hessian_nets=0)")
    tol = run.results["grad_tol"]
    parts = []
    for w in indexed:
        label = f"n1 = {w['n1']}"
        stat = proportion(
            w["low_index_count"], w["hessian_nets"], f"{label}: fraction with index ≤ {LOW_INDEX:.3g}"
        )
        evidence = (
            f"mean index {w['normalized_index_mean']:.4f}, max ‖∇L‖ {w['grad_norm_max']:.2e}, up to "
            f"{w['near_zero_fraction_max']:.3f} of the eigenvalues within ±ε, "
            f"{w['relative_distance_median']:.2g}× the weight norm away from SGD's end (there: median ‖∇L‖ "
            f"{w['grad_norm_sgd_median']:.2e}, mean index {w['normalized_index_sgd_mean']:.4f})"
        )

        def guard(w: dict[str, Any] = w, label: str = label) -> None:
            require_gradient_checked(f"the solutions of {label}", w["grad_norm_max"], tol)
            # index ≤ 1 − (fraction within ±ε): below the bound by construction where nearly all are within
            require_at_most(
                f"the solutions of {label}", w["near_zero_fraction_max"], 1 - LOW_INDEX,
                "the largest fraction of Hessian eigenvalues within ±ε (the index cannot exceed one minus "
                "it: a vacuous test)",
            )  # fmt: skip

        parts.append((label, guarded(guard, stat, above=ALL_FRACTION, evidence=evidence)))
    return all_of(parts)


def _decide_annealing(run: RunData) -> Verdict:
    rows = run.results.get("annealing")
    if not rows:
        raise NotChecked("the run has no annealing comparison (anneal=false)")
    arrays = run.arrays("annealing.npz")
    parts = []
    for w in rows:
        label = f"n1 = {w['n1']}"
        trials = w["nets"] * w["test_samples"]
        require_above_chance(f"SA at {label}", w["sa_wrong"], trials, 10)
        require_above_chance(f"SGD at {label}", w["sgd_wrong"], trials, 10)
        stat = error_difference(
            arrays[f"n{w['n1']}_sa_wrong"],
            arrays[f"n{w['n1']}_sgd_wrong"],
            f"{label}: SA − SGD test error (points)",
        )
        evidence = f"SA {w['sa_test_error']:.2f}%, SGD {w['sgd_test_error']:.2f}%"
        parts.append((label, decide(stat, below=PAPER_ANNEAL_DROP, evidence=evidence)))
    return all_of(parts)


CLAIMS = (
    Claim(
        "choromanska-nets.concentration",
        "“We see that qualitatively the distribution of losses for the neural network experiments (right "
        "plot) exhibits similar behavior. Even after scaling, the variance decreases with higher network "
        "sizes.”",
        "Choromanska et al. §5.2, Fig. 3 (right), Fig. 8–9",
        "the standard deviation of the scaled test loss at the largest width, over that at the smallest, is "
        "below 1 (BCa bootstrap over networks, the fitted scaling held fixed); the networks of both widths "
        "must be above twice chance",
        _decide_concentration,
        shown_in="scaled_test_loss.png",
    ),
    Claim(
        "choromanska-nets.decorrelation",
        "“The training and test error become increasingly decorrelated as the network size increases.” "
        f"(Table 1: ρ = {', '.join(f'{v:g}' for v in PAPER_PEARSON.values())} for n1 = "
        f"{', '.join(map(str, PAPER_PEARSON))})",
        "Choromanska et al. §5.3, Table 1, Fig. 7",
        "Fisher's z of the train–test Pearson correlation at the smallest width minus that at the largest is "
        "above 0 (normal interval for two independent correlations); the networks of both widths must be "
        "above twice chance",
        _decide_decorrelation,
        shown_in="table-1",
    ),
    Claim(
        "choromanska-nets.low-index",
        "“It can be seen that all solutions are either minima or saddle points of very low normalized index "
        f"(of the order {PAPER_INDEX_ORDER:g}).”",
        "Choromanska et al. §5.1, Fig. 4–5",
        f"at each width with Hessians, the fraction of solutions whose normalized index (ε = "
        f"{PAPER_ZERO_THRESHOLD:g}) is at most {LOW_INDEX:.3g} lies above {ALL_FRACTION:g} (Wilson "
        f"interval); both thresholds are ours ({LOW_INDEX:.3g} = 10^−1.5, the geometric midpoint of 0.01 "
        f"and 0.1; {ALL_FRACTION:g}: “all” up to what a finite sample can show). Guard: every point's ‖∇L‖ "
        "must be at most grad_tol (default ε/10, ours: over a step of the size of one weight, 1, a curvature "
        "of ε then changes the loss by ε/2, five times more than the gradient can, so the signs of the "
        "eigenvalues describe the point's neighbourhood); and at every point more than "
        f"{LOW_INDEX:.3g} of the eigenvalues must lie outside ±ε (the index is at most that fraction, so "
        "the test would be vacuous)",
        _decide_low_index,
        shown_in="index",
    ),
    Claim(
        "choromanska-nets.annealing",
        "“we also trained a neural network on a subset of MNIST using simulated annealing (SA) where 95% of "
        "parameters were assumed to be redundant. Specifically, we allowed the weights to take one of 3 "
        f"values uniformly spaced in the interval [−1, 1]. We obtained less than {PAPER_ANNEAL_DROP:g}% drop "
        "in accuracy”",
        "Choromanska et al. §5.1, Fig. 6",
        f"at each width, SA's test error minus SGD's (percentage points) lies below {PAPER_ANNEAL_DROP:g}: "
        "the union of the t interval over networks (SA network k paired with SGD network k) and the "
        "bootstrap interval over test images; both methods must be above twice chance",
        _decide_annealing,
        shown_in="annealing",
    ),
)

FIGURES = (
    Figure(
        "scaled_test_loss.png",
        "histograms and boxplot of the scaled test losses per width n1",
        "Choromanska et al. Fig. 3 (right), Fig. 8 (bottom), Fig. 9: the scaled test losses of 1000 networks "
        "per n1 on 10×10 MNIST concentrate as n1 grows (“even after scaling, the variance decreases”).",
    ),
    Figure(
        "train_test.png",
        "test loss against training loss of every network, per width, with Pearson's ρ",
        "Choromanska et al. Fig. 7, Table 1: test against train loss; ρ = "
        + ", ".join(f"{v:g}" for v in PAPER_PEARSON.values())
        + f" for n1 = {', '.join(map(str, PAPER_PEARSON))}.",
    ),
    Figure(
        "normalized_index.png",
        "normalized index at SGD's end and after training on towards the gradient tolerance, and the "
        "gradient norm at each point",
        f"Choromanska et al. Fig. 4–5: the normalized index of the solutions is 0 or of the order "
        f"{PAPER_INDEX_ORDER:g} (minima or low-index saddles), n1 = 10, 25, 50, 100; eigenvalues below "
        f"{PAPER_ZERO_THRESHOLD:g} in magnitude set to 0.",
    ),
    Figure(
        "annealing.png",
        "test loss distributions of SGD and of SA with weights in {−1, 0, 1}, and SA's training loss",
        "Choromanska et al. Fig. 6: test loss distributions for SGD and SA for n_h = 10, 25, 50, 100; SA "
        f"with weights restricted to 3 values loses less than {PAPER_ANNEAL_DROP:g}% accuracy (§5.1).",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "choromanska-nets-longer-sgd",
        "choromanska-nets",
        ("epochs=120", "lr_decay=0.97", "anneal=false", "hessian_nets=0"),
        ("choromanska-nets.concentration", "choromanska-nets.decorrelation"),
        "with a schedule closer to the paper's (3× the epochs, a slower decay), does the trend in n1 appear "
        "(our SGD stopped early)?",
    ),
    Diagnostic(
        "choromanska-nets-longer-annealing",
        "choromanska-nets",
        ("anneal_sweeps=150", "hessian_nets=0", "nets=4", "epochs=1"),
        ("choromanska-nets.annealing",),
        "with five times as many SA proposals, does SA come within 2.5 points of SGD (our annealing was "
        "too short)?",
    ),
)


# ---------------------------------------------------------------------------------------------- figures


def _labels(ax, x: str, y: str, title: str, *, legend: int = 8) -> None:
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.legend(fontsize=legend)


def plot_losses(scaled: dict[int, np.ndarray]):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.8))
    lo = min(v.min() for v in scaled.values())
    hi = max(v.max() for v in scaled.values())
    for n1, v in scaled.items():
        ax.hist(v, bins=40, range=(lo, hi), histtype="step", lw=1.5, density=True, label=f"n1 = {n1}")
    ax.set_xlabel("scaled test loss")
    ax.set_ylabel("density")
    ax.set_title("Scaled test losses (Choromanska Fig. 3 right)")
    ax.legend(fontsize=8)
    bx.boxplot(list(scaled.values()))
    bx.set_xticks(range(1, len(scaled) + 1), [str(n) for n in scaled])
    bx.set_xlabel("n1")
    bx.set_ylabel("scaled test loss")
    bx.set_title("Boxplot (Fig. 9)")
    fig.tight_layout()
    return fig


def plot_train_test(results: list[UnitResult]):
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in results:
        tr, te = r.arrays["train_loss"], r.arrays["test_loss"]
        ax.scatter(
            tr, te, s=6, alpha=0.6, label=f"n1 = {r.values['n1']} (ρ = {np.corrcoef(tr, te)[0, 1]:.2f})"
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    _labels(ax, "training loss", "test loss", "Test vs train loss (Choromanska Fig. 7)", legend=7)
    fig.tight_layout()
    return fig


def plot_index(indexed: list[UnitResult], tol: float):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in indexed:
        a, n1 = r.arrays, r.values["n1"]
        line = ax.scatter(
            a["grad_norm_sgd"], a["normalized_index_sgd"], marker="x", label=f"n1 = {n1}, SGD's end"
        )
        ax.scatter(a["grad_norm"], a["normalized_index"], color=line.get_facecolor(), marker="o",
                   label=f"n1 = {n1}, refined")  # fmt: skip
        bx.hist(a["normalized_index"], bins=20, histtype="step", lw=1.5, label=f"n1 = {n1}")
    ax.axvline(tol, color="black", lw=1, ls="--", label="gradient tolerance")
    ax.set_xscale("log")
    _labels(ax, "‖∇L‖ where the index is taken", "normalized index", "Index against gradient norm", legend=7)
    _labels(
        bx, "normalized index (refined points)", "networks", "Normalized index of the solutions (Fig. 4–5)"
    )
    fig.tight_layout()
    return fig


def plot_annealing(annealed: list[UnitResult]):
    fig, axes = plt.subplots(1, len(annealed) + 1, figsize=(4 * (len(annealed) + 1), 3.4), squeeze=False)
    for ax, r in zip(axes[0], annealed, strict=False):
        sa, sgd = r.arrays["sa_test_loss"], r.arrays["sgd_test_loss"]
        lo, hi = min(sa.min(), sgd.min()), max(sa.max(), sgd.max())
        ax.hist(sgd, bins=20, range=(lo, hi), histtype="step", lw=1.5, label="SGD")
        ax.hist(sa, bins=20, range=(lo, hi), histtype="step", lw=1.5, label="SA, w ∈ {−1, 0, 1}")
        ax.set_xlabel("test loss")
        ax.set_title(f"n1 = {r.values['n1']} (Fig. 6)")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("networks")
    bx = axes[0][-1]
    for r in annealed:
        curve = r.arrays["sa_curve"]
        bx.plot(
            r.arrays["sa_curve_steps"] / r.values["parameters"], curve.mean(1), label=f"n1 = {r.values['n1']}"
        )
    bx.set_xlabel("proposals / d")
    bx.set_ylabel("SA training loss (mean)")
    bx.set_yscale("log")
    bx.set_title("Annealing")
    bx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    # the largest batch through every member at once: the test split (evaluation batches are ≤ 4096)
    features, samples = (64, 1797) if config["data"] == "digits" else (100, 10_000)

    def d(n1: int) -> int:  # features → n1 → 10
        return n1 * (features + 1) + 10 * (n1 + 1)

    def ensemble(param: str, n1: int, count: int) -> MemoryNeed:
        # weights, gradients, momentum and the update for every member; activations over the data set
        need = count * (6.0 * d(n1) + samples * (n1 + 10)) * _memory.FLOAT32
        return MemoryNeed(param, need, f"{count} networks of width {n1} (d = {d(n1)}) and their activations")

    needs = [ensemble("widths", max(config["widths"]), config["nets"])]
    exact = [n1 for n1 in config["widths"] if n1 in config["hessian_widths"]]
    if exact and config["hessian_nets"] > 0:
        n1 = max(exact)
        what = f"the exact Hessian and its eigenvectors at width {n1} (d = {d(n1)})"
        needs.append(MemoryNeed("hessian_widths", 3 * _memory.dense_hessian(d(n1), _memory.FLOAT64), what))
    if config["anneal"]:
        needs.append(ensemble("anneal_widths", max(config["anneal_widths"]), config["anneal_nets"]))
    return needs


EXPERIMENT = Experiment(
    name="choromanska-nets",
    description="test losses, train–test correlation and Hessian index of many 1-hidden-layer nets per width",
    reproduces="Choromanska et al. Fig. 3 (right), Fig. 4–9, Table 1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=200,
)
