"""``gd-vs-sgd-nets``: full-batch gradient descent against SGD on two network sizes, same step budget.

Sagun et al. §3.2.2, Table 2, Fig. 8: a noisy gradient is often credited with escaping bad critical points,
which would make gradient descent (GD) stall above SGD; on MNIST with two-hidden-layer networks 50-50 and
500-300 the paper finds instead that "within the same stepsize SGD and GD perform very similar on the
training surface" (Table 2: training cost 4.52e-4 vs 3.86e-4 for 50-50, 1.55e-4 vs 1.38e-4 for 500-300),
while SGD generalizes somewhat better (test errors 299 vs 256 and 194 vs 174 of 10,000).

Both methods take the same number of steps S with the same step size η from the same initializations (one
gradient evaluation per step: the full training set for GD, a mini-batch of ``batch_size`` for SGD; Fig. 8
plots both against the step number): GD ``w ← w − η ∇L(w)``, SGD ``w ← w − η ∇L_B(w)`` over shuffled
mini-batches B. Bands in the figure span the seeds (min to max) around the mean.

Data: the embedded 8×8 digits with networks 64-h1-h2-10 (default 10-10 and 50-30) or ``data=mnist`` with
``mnist_path=`` at paper scale (784-50-50-10 and 784-500-300-10).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplandscape import data as dl_data
from deeplandscape import nets, optim
from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, Param, Unit, UnitResult
from deeplandscape.rundir import save_npz

# Sagun et al. Table 2 (MNIST): training cost, test cost, test errors (of 10,000), std of test errors.
PAPER_TABLE2 = {
    ("50-50", "GD"): (4.52e-4, 2.02e-1, 299, 15.5),
    ("50-50", "SGD"): (3.86e-4, 1.57e-1, 256, 11.6),
    ("500-300", "GD"): (1.55e-4, 1.02e-1, 194, 6.9),
    ("500-300", "SGD"): (1.38e-4, 8.47e-2, 174, 5.3),
}
METHODS = ("GD", "SGD")

PARAMS = {
    "data": Param("str", "digits", "data set", choices=("digits", "mnist"), paper="mnist"),
    "mnist_path": Param("str", "", "directory or file of MNIST (only for data=mnist)"),
    "networks": Param(
        "ints", [10, 10, 50, 30], "hidden widths, pairs h1,h2 (two networks)", quick=[10, 10, 30, 20],
        paper=[50, 50, 500, 300], low=1, distinct=False,
    ),
    "seeds": Param("int", 8, "independent initializations per network (shared by GD and SGD)", quick=3,
                   paper=10, low=1),
    "epochs": Param("int", 60, "SGD epochs; GD takes the same number of steps", quick=6, paper=200, low=1),
    "batch_size": Param("int", 32, "SGD mini-batch size", low=1),
    "lr": Param("float", 0.1, "step size η of both methods", low=1e-8),
}  # fmt: skip


def _load(config: dict[str, Any]) -> dl_data.DataSplits:
    if config["data"] == "digits":
        return dl_data.load("digits", seed=0)
    return dl_data.load("mnist", config["mnist_path"] or None, seed=0)


def _pairs(config: dict[str, Any]) -> list[tuple[int, int]]:
    s = config["networks"]
    if len(s) % 2:
        raise ValueError(f"Invalid networks: {s!r} (expected pairs h1,h2: an even number of widths)")
    return [(s[i], s[i + 1]) for i in range(0, len(s), 2)]


def units(config: dict[str, Any]) -> list[Unit]:
    return [
        Unit(f"{h1}-{h2}-{m.lower()}", {"h1": h1, "h2": h2, "method": m})
        for h1, h2 in _pairs(config)
        for m in METHODS
    ]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    h1, h2, method = unit.params["h1"], unit.params["h2"], unit.params["method"]
    splits = _load(config)
    x, y = splits.train.x.flatten(1), splits.train.y
    xt, yt = splits.test.x.flatten(1), splits.test.y
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / config["batch_size"])
    steps = config["epochs"] * steps_per_epoch
    # The same initializations for GD and SGD: seeded by the network, not by the unit.
    init_seed = 1000 * h1 + h2
    ensemble = nets.Ensemble.from_name(
        "sagun-teacher", config["seeds"], seed=init_seed, h1=h1, h2=h2, in_features=x.shape[1]
    )
    optimizer = optim.EnsembleSGD(ensemble, config["lr"])
    if method == "GD":  # one full-batch step per "epoch", losses recorded after each of the S steps
        history = optim.train_ensemble(
            ensemble, optimizer, (x, y), test=(xt, yt), epochs=steps, batch_size=n, shuffle="none"
        )
        keep = np.arange(0, steps + 1, steps_per_epoch)
    else:
        history = optim.train_ensemble(
            ensemble, optimizer, (x, y), test=(xt, yt), epochs=config["epochs"],
            batch_size=config["batch_size"], seed=seed,
        )  # fmt: skip
        keep = np.arange(config["epochs"] + 1)
    assert history.steps == steps
    with torch.no_grad():
        errors = (ensemble(xt).argmax(-1) != yt).sum(1).double().numpy()
    train_curve = history.train_loss.double().numpy()[keep]
    test_curve = history.test_loss.double().numpy()[keep]
    return UnitResult(
        values={
            "net": f"{h1}-{h2}",
            "sizes": [x.shape[1], h1, h2, splits.num_classes],
            "method": method,
            "steps": steps,
            "test_samples": int(yt.numel()),
        },
        arrays={
            "step": keep * (1 if method == "GD" else steps_per_epoch),
            "train_curve": train_curve,
            "test_curve": test_curve,
            "test_errors": errors,
        },
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    rows = []
    for r in results:
        net, method = r.values["net"], r.values["method"]
        paper = PAPER_TABLE2.get((net, method)) if config["data"] == "mnist" else None
        tr, te, err = r.arrays["train_curve"], r.arrays["test_curve"], r.arrays["test_errors"]
        rows.append(
            {
                "net": net,
                "sizes": r.values["sizes"],
                "method": method,
                "steps": r.values["steps"],
                "initial_train_cost": float(tr[0].mean()),
                "train_cost": float(tr[-1].mean()),
                "train_cost_std": float(tr[-1].std(ddof=1)) if tr.shape[1] > 1 else 0.0,
                "test_cost": float(te[-1].mean()),
                "test_errors": float(err.mean()),
                "test_errors_std": float(err.std(ddof=1)) if err.size > 1 else 0.0,
                "test_samples": r.values["test_samples"],
                "paper": None
                if paper is None
                else dict(
                    zip(("train_cost", "test_cost", "test_errors", "test_errors_std"), paper, strict=True)
                ),
            }
        )
    save_npz(
        out / "gd_vs_sgd_nets.npz",
        **{f"{r.values['net']}_{r.values['method']}_{k}": a for r in results for k, a in r.arrays.items()},
    )
    save(plot_curves(results), out / "cost_curves.png")
    body = [
        f"{config['seeds']} initializations per network, shared by GD and SGD; both take "
        f"{results[0].values['steps']} steps of size η = {config['lr']} (SGD: mini-batches of "
        f"{config['batch_size']}) on `{config['data']}`. Test errors are counts over "
        f"{results[0].values['test_samples']} test samples.",
        table(
            ["net", "method", "steps", "training cost", "std", "test cost", "test errors", "std",
             "paper training cost", "paper test cost", "paper test errors (of 10,000)", "paper std"],
            [[w["net"], w["method"], w["steps"], w["train_cost"], w["train_cost_std"], w["test_cost"],
              w["test_errors"], w["test_errors_std"],
              *(["—"] * 4 if w["paper"] is None else list(w["paper"].values()))] for w in rows],
        ),
        "Paper (Table 2, MNIST): 50-50 GD 4.52e-4 / 0.202 / 299 errors, SGD 3.86e-4 / 0.157 / 256; "
        "500-300 GD 1.55e-4 / 0.102 / 194, SGD 1.38e-4 / 0.0847 / 174 (training cost / test cost / test "
        "errors of 10,000): the training costs are close, SGD's test error a little lower.",
        "![cost curves](cost_curves.png)",
    ]  # fmt: skip
    return {"data": config["data"], "runs": rows}, "\n\n".join(body)


def plot_curves(results: list[UnitResult]):
    nets_ = list(dict.fromkeys(r.values["net"] for r in results))
    fig, axes = plt.subplots(1, len(nets_), figsize=(5.5 * len(nets_), 3.8), squeeze=False)
    colors = {"GD": "tab:blue", "SGD": "tab:red"}
    for ax, net in zip(axes[0], nets_, strict=True):
        for r in (r for r in results if r.values["net"] == net):
            m, step = r.values["method"], r.arrays["step"]
            for key, style in (("train_curve", "-"), ("test_curve", "--")):
                c = r.arrays[key]
                ax.plot(step, c.mean(1), style, color=colors[m], label=f"{m} {key.split('_')[0]}")
                ax.fill_between(step, c.min(1), c.max(1), color=colors[m], alpha=0.2)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("cost")
        ax.set_title(f"Cost vs step, {net} network (Sagun Fig. 8)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


EXPERIMENT = Experiment(
    name="gd-vs-sgd-nets",
    description="full-batch gradient descent vs SGD at the same number of steps on two network sizes",
    reproduces="Sagun et al. §3.2.2, Table 2, Fig. 8",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    order=220,
)
