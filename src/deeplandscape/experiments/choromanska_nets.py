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
import torch.nn.functional as F

from deeplandscape import data as dl_data
from deeplandscape import nets, optim
from deeplandscape.analysis import spectrum_statistics
from deeplandscape.experiments import _memory
from deeplandscape.experiments._annealing import anneal_ternary_mlp, calibrated_loss, ternary_logits
from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, MemoryNeed, Param, Unit, UnitResult
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
    "anneal": Param("bool", True, "also compare simulated annealing of ternary nets with SGD (Fig. 6)"),
    "anneal_widths": Param(
        "ints", [10, 25], "hidden widths n1 of the annealing comparison", quick=[10], paper=[10, 25, 50, 100],
        low=1,
    ),
    "anneal_nets": Param("int", 24, "networks per width, for SA and for SGD", quick=8, paper=100, low=1),
    "anneal_samples": Param(
        "int", 400, "training subset of the annealing comparison (first images of the train split)",
        quick=200, paper=1000, low=1,
    ),
    "anneal_sweeps": Param(
        "int", 30, "SA proposals per network, in units of its parameter count d", quick=10, paper=200, low=1,
    ),
    "anneal_sgd_epochs": Param("int", 200, "SGD epochs on the subset", quick=60, low=1),
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


def units(config: dict[str, Any]) -> list[Unit]:
    widths = [Unit(f"n{n1}", {"n1": n1}) for n1 in config["widths"]]
    if not config["anneal"]:
        return widths
    return widths + [Unit(f"anneal-n{n1}", {"n1": n1, "kind": "anneal"}) for n1 in config["anneal_widths"]]


def _net_name(n1: int) -> str:
    return f"choromanska-{n1}" if n1 in nets.CHOROMANSKA_WIDTHS else "choromanska-10"


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    if unit.params.get("kind") == "anneal":
        return run_anneal_unit(config, unit.params["n1"], seed)
    n1 = unit.params["n1"]
    splits = _load(config)
    x, y = _unit_interval(splits.train.x), splits.train.y
    xt, yt = _unit_interval(splits.test.x), splits.test.y
    name = _net_name(n1)
    ensemble = nets.Ensemble.from_name(name, config["nets"], seed=seed, n1=n1, in_features=x.shape[1])
    optimizer = optim.EnsembleSGD(ensemble, config["lr"])
    lr, gamma = config["lr"], config["lr_decay"]
    history = optim.train_ensemble(
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


def run_anneal_unit(config: dict[str, Any], n1: int, seed: int) -> UnitResult:
    """SA of ``anneal_nets`` ternary networks and SGD of as many real-valued ones on the same subset
    (module docstring; Choromanska §5.1, Fig. 6)."""
    splits = _load(config)
    n = config["anneal_samples"]
    if n > splits.train.x.shape[0]:
        raise ValueError(
            f"Invalid anneal_samples: {n} (the training split of {config['data']} has "
            f"{splits.train.x.shape[0]} images)"
        )
    x, y = _unit_interval(splits.train.x[:n]), splits.train.y[:n]
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
    sa_acc = (test_logits.argmax(-1) == yt).double().mean(1)
    ensemble = nets.Ensemble.from_name(_net_name(n1), count, seed=seed, n1=n1, in_features=x.shape[1])
    lr, gamma = config["lr"], config["anneal_lr_decay"]
    history = optim.train_ensemble(
        ensemble, optim.EnsembleSGD(ensemble, lr), (x, y), test=(xt, yt), epochs=config["anneal_sgd_epochs"],
        batch_size=config["batch_size"], lr_schedule=lambda e: lr * gamma**e, seed=seed,
    )  # fmt: skip
    with torch.no_grad():
        sgd_acc = (ensemble(xt).argmax(-1) == yt).double().mean(1)
    return UnitResult(
        values={
            "kind": "anneal",
            "n1": n1,
            "nets": count,
            "samples": n,
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
            "sa_test_accuracy": sa_acc.numpy(),
            "sa_acceptance": sa.acceptance.numpy(),
            "sa_curve": sa.loss_curve.double().numpy(),
            "sa_curve_steps": sa.curve_steps.numpy(),
            "sgd_train_loss": history.train_loss[-1].double().numpy(),
            "sgd_test_loss": history.test_loss[-1].double().numpy(),
            "sgd_test_accuracy": sgd_acc.numpy(),
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
    annealed = [r for r in results if r.values.get("kind") == "anneal"]
    results = [r for r in results if r.values.get("kind") != "anneal"]
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
    if annealed:
        anneal_rows, anneal_md = _finalize_anneal(config, annealed, out)
        results_json["annealing"] = anneal_rows
        parts += anneal_md
    return results_json, "\n\n".join(parts)


PAPER_ANNEAL_DROP = 0.025  # Choromanska §5.1: "less than 2.5% drop in accuracy" of SA against SGD


def _finalize_anneal(config: dict[str, Any], annealed: list[UnitResult], out: Path) -> tuple[list, list]:
    rows = []
    for r in annealed:
        a, v = r.arrays, r.values
        sa_acc, sgd_acc = float(a["sa_test_accuracy"].mean()), float(a["sgd_test_accuracy"].mean())
        rows.append(
            {
                "n1": v["n1"],
                "nets": v["nets"],
                "samples": v["samples"],
                "parameters": v["parameters"],
                "proposals": v["proposals"],
                "sa_test_accuracy": sa_acc,
                "sgd_test_accuracy": sgd_acc,
                "accuracy_drop": sgd_acc - sa_acc,
                "sa_test_accuracy_std": float(a["sa_test_accuracy"].std(ddof=1)) if v["nets"] > 1 else 0.0,
                "sgd_test_accuracy_std": float(a["sgd_test_accuracy"].std(ddof=1)) if v["nets"] > 1 else 0.0,
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
    md = [
        "Simulated annealing of networks with weights in {−1, 0, 1} against SGD of real-valued networks on "
        f"the first {config['anneal_samples']} training images ({config['anneal_sweeps']} proposals per "
        f"weight for SA; {config['anneal_sgd_epochs']} epochs of SGD, η0 = {config['lr']}, decay "
        f"{config['anneal_lr_decay']} per epoch); accuracies on the whole test split. Choromanska et al. "
        "§5.1 (Fig. 6): SA loses less than 2.5% accuracy against SGD.",
        table(
            ["n1", "nets", "SA test acc. (%)", "SGD test acc. (%)", "drop (points)", "paper drop",
             "SA train loss", "(start)", "SGD train loss", "SA test loss*", "SGD test loss", "SA acceptance"],
            [[w["n1"], w["nets"], 100 * w["sa_test_accuracy"], 100 * w["sgd_test_accuracy"],
              100 * w["accuracy_drop"], "< 2.5", w["sa_train_loss"], w["sa_initial_train_loss"],
              w["sgd_train_loss"], w["sa_test_loss"], w["sgd_test_loss"], w["sa_acceptance"]] for w in rows],
        ),
        "*SA test loss at the logit multiplier that minimizes each network's training loss (the logit "
        "scale κ of the ternary networks is arbitrary). A negative drop means SA did better than SGD.",
        "![annealing](annealing.png)",
    ]  # fmt: skip
    return rows, md


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
        what = f"the exact Hessian at width {n1} (d = {d(n1)})"
        needs.append(MemoryNeed("hessian_widths", _memory.dense_hessian(d(n1), _memory.FLOAT64), what))
    if config["anneal"]:
        needs.append(ensemble("anneal_widths", max(config["anneal_widths"]), config["anneal_nets"]))
    return needs


EXPERIMENT = Experiment(
    name="choromanska-nets",
    description="test losses, train–test correlation and Hessian index of many 1-hidden-layer nets per width",
    reproduces="Choromanska et al. Fig. 3 (right), Fig. 4–6, Fig. 8–9, Table 1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    order=200,
)
