"""``choromanska-nets``: many one-hidden-layer ReLU networks per width n1, their test losses and indices.

Choromanska et al. §5 (Fig. 3 right, Fig. 4–5, Fig. 8–10, Table 1): for each hidden width n1, train many
networks ``input → fc_{n1} → ReLU → fc_{10}`` from independent starts drawn uniformly in the unit cube with
SGD and learning-rate decay (the paper: 1000 networks, 200 epochs, 10×10 MNIST). The scaled test losses
``L / e^{α n1^β}`` concentrate as n1 grows (the variance falls even after scaling, Fig. 3 right, Fig. 9),
the correlation between train and test loss falls with n1 (Table 1), and the solutions of small networks
are minima or saddles of low normalized index (Fig. 4–5, full Hessian, eigenvalues with ``|λ| < 1e-3``
counted as zero).

Data: the embedded 8×8 digits by default (64 inputs), or ``data=mnist-10x10`` with ``mnist_path=`` pointing
at a user-provided MNIST (100 inputs, the paper's setting). Pixels are mapped to [0, 1] for this experiment:
with every weight and bias in U[0, 1] at the start and inputs in [−1, 1] (background −1) nearly every
hidden unit would start dead; the paper does not state its pixel range.

The simulated-annealing comparison with weights restricted to 3 values (Fig. 6) is not part of this
experiment.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deeplandscape import data as dl_data
from deeplandscape import nets
from deeplandscape.analysis import spectrum_statistics
from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.runner import Experiment, Param, Unit, UnitResult
from deeplandscape.rundir import save_npz

PAPER_PEARSON = {25: 0.7616, 50: 0.6861, 100: 0.5983, 250: 0.5302, 500: 0.4081}  # Choromanska Table 1

PARAMS = {
    "data": Param("str", "digits", "data set", choices=("digits", "mnist-10x10"), paper="mnist-10x10"),
    "mnist_path": Param("str", "", "directory or file of MNIST (only for data=mnist-10x10)"),
    "widths": Param(
        "ints", [5, 10, 25, 50, 100], "hidden widths n1", quick=[5, 25],
        paper=[10, 25, 50, 100, 250, 500], low=1,
    ),
    "nets": Param("int", 200, "networks per width", quick=32, paper=1000, low=2),
    "epochs": Param("int", 40, "training epochs", quick=20, paper=200, low=1),
    "batch_size": Param("int", 32, "mini-batch size", low=1),
    "lr": Param("float", 0.1, "initial learning rate η0", low=1e-8),
    "lr_decay": Param(
        "float", 0.9, "learning-rate factor γ per epoch (η0·γ^epoch)", quick=0.85, paper=0.98, low=1e-6,
        high=1.0,
    ),
    "hessian_widths": Param(
        "ints", [5, 10, 25], "widths whose solutions get the exact Hessian", quick=[5],
        paper=[10, 25, 50, 100], low=1,
    ),
    "hessian_nets": Param("int", 20, "networks per width with the exact Hessian", quick=3, paper=100, low=0),
    "zero_threshold": Param("float", 1e-3, "|λ| below this counts as zero (Choromanska §5.1)", low=0.0),
}  # fmt: skip


def _load(config: dict[str, Any]) -> dl_data.DataSplits:
    if config["data"] == "digits":
        return dl_data.load("digits", seed=0)
    return dl_data.load("mnist-10x10", config["mnist_path"] or None, seed=0)


def _unit_interval(x: torch.Tensor) -> torch.Tensor:
    """Pixels from [−1, 1] to [0, 1] (see the module docstring), flattened."""
    return ((x + 1) / 2).flatten(1)


def units(config: dict[str, Any]) -> list[Unit]:
    return [Unit(f"n{n1}", {"n1": n1}) for n1 in config["widths"]]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    n1 = unit.params["n1"]
    splits = _load(config)
    x, y = _unit_interval(splits.train.x), splits.train.y
    xt, yt = _unit_interval(splits.test.x), splits.test.y
    name = f"choromanska-{n1}" if n1 in nets.CHOROMANSKA_WIDTHS else "choromanska-10"
    ensemble = nets.Ensemble.from_name(name, config["nets"], seed=seed, n1=n1, in_features=x.shape[1])
    optimizer = nets.EnsembleSGD(ensemble, config["lr"])
    lr, gamma = config["lr"], config["lr_decay"]
    history = nets.train_ensemble(
        ensemble, optimizer, (x, y), test=(xt, yt), epochs=config["epochs"], batch_size=config["batch_size"],
        lr_schedule=lambda e: lr * gamma**e, seed=seed,
    )  # fmt: skip
    train_loss = history.train_loss[-1].double().numpy()
    test_loss = history.test_loss[-1].double().numpy()
    with torch.no_grad():
        test_error = (ensemble(xt).argmax(-1) != yt).double().mean(1).numpy()
    indices, near_zero = [], []
    if n1 in config["hessian_widths"]:
        for k in range(min(config["hessian_nets"], config["nets"])):
            member = ensemble.member(k).double()
            eigenvalues = torch.linalg.eigvalsh(dense_hessian(member, x.double(), y))
            stats = spectrum_statistics(eigenvalues, threshold=config["zero_threshold"])
            indices.append(stats.normalized_index)
            near_zero.append(stats.fraction_near_zero)
    return UnitResult(
        values={
            "n1": n1,
            "nets": config["nets"],
            "steps": history.steps,
            "parameters": nets.parameter_count(ensemble.member(0)),
        },
        arrays={
            "train_loss": train_loss,
            "test_loss": test_loss,
            "test_error": test_error,
            "train_curve": history.train_loss.double().mean(1).numpy(),
            "normalized_index": np.asarray(indices, dtype=float),
            "near_zero_fraction": np.asarray(near_zero, dtype=float),
        },
    )


def dense_hessian(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, chunk_size: int = 256):
    """The full Hessian ``H_ij = ∂²L/∂θ_i∂θ_j`` of the mean cross entropy
    ``L(θ) = (1/N) Σ_n ℓ(f(θ, x_n), y_n)`` over all parameters (flattened in ``named_parameters`` order),
    one column ``H e_j`` per basis vector by forward-over-reverse differentiation, ``chunk_size`` columns per
    vectorized call.

    The same matrix as :func:`deeplandscape.analysis.exact_hessian` (checked in the tests), computed with one
    ``vmap`` over basis vectors of a closure on the flat parameter vector, which is several times faster for
    these small one-hidden-layer networks.
    """
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(v: torch.Tensor) -> torch.Tensor:
        params, start = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            params[name] = v[start : start + shape.numel()].view(shape)
            start += shape.numel()
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    def column(v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(torch.func.grad(loss), (flat,), (v,))[1]

    eye = torch.eye(flat.numel(), dtype=flat.dtype, device=flat.device)
    h = torch.vmap(column, chunk_size=chunk_size)(eye)
    return (h + h.T) / 2


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


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    widths = [r.values["n1"] for r in results]
    raw = {r.values["n1"]: r.arrays["test_loss"] for r in results}
    means = np.array([raw[n].mean() for n in widths])
    fit = fit_exponential_power_law(np.array(widths), means)
    if fit is not None:
        _, alpha, beta = fit
        scale = {n: math.exp(alpha * n**beta) for n in widths}
        scaling = f"L / e^(α n1^β) with α = {alpha:.4g}, β = {beta:.4g} (least-squares fit of log mean loss)"
    else:  # with ≤ 3 widths the fit interpolates the means exactly: dividing by the mean is the same
        scale = {n: float(raw[n].mean()) for n in widths}
        scaling = "L / mean(L) per width (fewer than 4 widths: the power-law fit is not over-determined)"
    scaled = {n: raw[n] / scale[n] for n in widths}
    rows = []
    for r in results:
        n1 = r.values["n1"]
        tr, te = r.arrays["train_loss"], r.arrays["test_loss"]
        pearson = float(np.corrcoef(tr, te)[0, 1]) if tr.std() > 0 and te.std() > 0 else float("nan")
        idx = r.arrays["normalized_index"]
        rows.append(
            {
                "n1": n1,
                "nets": int(te.size),
                "parameters": r.values["parameters"],
                "train_loss_mean": float(tr.mean()),
                "test_loss_mean": float(te.mean()),
                "test_loss_std": float(te.std(ddof=1)),
                "scaled_test_loss_mean": float(scaled[n1].mean()),
                "scaled_test_loss_std": float(scaled[n1].std(ddof=1)),
                "test_error_mean": float(r.arrays["test_error"].mean()),
                "train_test_pearson": pearson,
                "paper_pearson": PAPER_PEARSON.get(n1),
                "hessian_nets": int(idx.size),
                "mean_normalized_index": float(idx.mean()) if idx.size else None,
                "mean_near_zero_fraction": float(r.arrays["near_zero_fraction"].mean()) if idx.size else None,
            }
        )
    save_npz(
        out / "choromanska_nets.npz",
        **{f"n{n}_{k}": r.arrays[k] for r in results for n in [r.values["n1"]] for k in r.arrays},
    )
    save(plot_losses(scaled), out / "scaled_test_loss.png")
    indexed = {
        r.values["n1"]: r.arrays["normalized_index"] for r in results if r.arrays["normalized_index"].size
    }
    if indexed:
        save(plot_index(indexed), out / "normalized_index.png")
    results_json = {
        "data": config["data"],
        "scaling": scaling,
        "fit": None if fit is None else {"C": fit[0], "alpha": fit[1], "beta": fit[2]},
        "widths": rows,
    }
    parts = [
        f"{config['nets']} networks per width, {config['epochs']} epochs of SGD (η0 = {config['lr']}, "
        f"decay {config['lr_decay']} per epoch) from the unit cube on `{config['data']}`. "
        f"Scaling: {scaling}. "
        "Choromanska et al. (Fig. 3 right, Fig. 9): the spread of the scaled test loss falls as n1 grows; "
        "Table 1: the train–test Pearson correlation falls from 0.76 (n1 = 25) to 0.41 (n1 = 500).",
        table(
            ["n1", "nets", "params", "train loss", "test loss", "std", "scaled std", "test error",
             "Pearson", "paper Pearson"],
            [[w["n1"], w["nets"], w["parameters"], w["train_loss_mean"], w["test_loss_mean"],
              w["test_loss_std"], w["scaled_test_loss_std"], w["test_error_mean"], w["train_test_pearson"],
              "—" if w["paper_pearson"] is None else w["paper_pearson"]] for w in rows],
        ),
        "![scaled test loss](scaled_test_loss.png)",
    ]  # fmt: skip
    if indexed:
        parts += [
            "Normalized index (fraction of Hessian eigenvalues below −ε, ε = "
            f"{config['zero_threshold']:g}) of the solutions (Choromanska Fig. 4–5: mostly 0 or small, "
            "i.e. minima or saddles of low index):",
            table(
                ["n1", "Hessians", "mean normalized index", "max", "fraction |λ| ≤ ε"],
                [
                    [
                        w["n1"],
                        w["hessian_nets"],
                        w["mean_normalized_index"],
                        float(indexed[w["n1"]].max()),
                        w["mean_near_zero_fraction"],
                    ]
                    for w in rows
                    if w["hessian_nets"]
                ],
            ),
            "![normalized index](normalized_index.png)",
        ]
    return results_json, "\n\n".join(parts)


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


def plot_index(indexed: dict[int, np.ndarray]):
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for n1, v in indexed.items():
        ax.hist(v, bins=20, histtype="step", lw=1.5, label=f"n1 = {n1}")
    ax.set_xlabel("normalized index")
    ax.set_ylabel("networks")
    ax.set_title("Normalized index of the solutions (Fig. 5)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


EXPERIMENT = Experiment(
    name="choromanska-nets",
    description="test losses, train–test correlation and Hessian index of many 1-hidden-layer nets per width",
    reproduces="Choromanska et al. Fig. 3 (right), Fig. 4–5, Fig. 8–9, Table 1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
)
