"""``gd-vs-sgd-nets``: full-batch gradient descent against SGD on two network sizes, same step budget.

Sagun et al. §3.2.2, Table 2, Fig. 8: a noisy gradient is often credited with escaping bad critical points,
which would make gradient descent (GD) stall above SGD; on MNIST with two-hidden-layer networks 50-50 and
500-300 the paper finds instead that "within the same stepsize SGD and GD perform very similar on the
training surface" (Table 2: training cost 4.52e-4 vs 3.86e-4 for 50-50, 1.55e-4 vs 1.38e-4 for 500-300),
while SGD's test errors are a little lower (299 vs 256 and 194 vs 174 of 10,000).

Both methods take the same number of steps S with the same step size η from the same initializations (one
gradient evaluation per step: the training set for GD, a mini-batch of ``batch_size`` for SGD; Fig. 8
plots both against the step number): GD ``w ← w − η ∇L(w)``, SGD ``w ← w − η ∇L_B(w)`` over shuffled
mini-batches B. Seed k of GD and seed k of SGD start from the same weights, so the comparisons are paired.

Data: the embedded 8×8 digits with networks 64-h1-h2-10 (default 10-10 and 50-30); at the reference scale
real MNIST (``data=mnist``, ``mnist_path=``) with the paper's networks 784-50-50-10 and 784-500-300-10 on
the first ``train_samples`` training images (GD costs a pass over them per step) for fewer steps than the
paper's 50,000; at the paper scale the whole training split. Test errors always on the whole test split.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplandscape import data as dl_data
from deeplandscape import nets, optim
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    Claim,
    RunData,
    Verdict,
    all_of,
    decide,
    error_difference,
    paired_difference,
    require_above_chance,
)
from deeplandscape.experiments.spec import Diagnostic, Experiment, Figure, Param, Table, Unit, UnitResult
from deeplandscape.rundir import save_npz

# Sagun et al. Table 2 (MNIST): training cost, test cost, test errors (of 10,000) and their std.
PAPER_TABLE2 = {
    ("50-50", "GD"): (4.52e-4, 2.02e-1, 299, 15.5),
    ("50-50", "SGD"): (3.86e-4, 1.57e-1, 256, 11.6),
    ("500-300", "GD"): (1.55e-4, 1.02e-1, 194, 6.9),
    ("500-300", "SGD"): (1.38e-4, 8.47e-2, 174, 5.3),
}
PAPER_TEST_IMAGES = 10_000
METHODS = ("GD", "SGD")


# "Very similar" in the paper's own numbers: the largest ratio of GD's to SGD's training cost in Table 2
# (50-50: 4.52e-4 / 3.86e-4 = 1.171). Training costs whose ratio lies within [1/R, R] are "similar".
def _paper_costs(net: str) -> str:
    return f"{PAPER_TABLE2[(net, 'GD')][0]:.3g} and {PAPER_TABLE2[(net, 'SGD')][0]:.3g}"


SIMILAR_RATIO = max(
    PAPER_TABLE2[(net, "GD")][0] / PAPER_TABLE2[(net, "SGD")][0] for net in ("50-50", "500-300")
)

PARAMS = {
    "data": Param("str", "digits", "data set", choices=("digits", "mnist"), reference="mnist", paper="mnist"),
    "mnist_path": Param("str", "", "directory or file of MNIST (only for data=mnist)"),
    "networks": Param(
        "ints", [10, 10, 50, 30], "hidden widths, pairs h1,h2 (two networks)", quick=[10, 10, 30, 20],
        reference=[50, 50, 500, 300], paper=[50, 50, 500, 300], low=1, distinct=False,
    ),
    "train_samples": Param(
        "int", 0, "training images used (the first ones of the training split; 0: all)", reference=1000,
        low=0,
    ),
    "seeds": Param("int", 8, "independent initializations per network (shared by GD and SGD)", quick=3,
                   reference=6, paper=10, low=2),
    "epochs": Param("int", 60, "SGD epochs; GD takes the same number of steps", quick=6, reference=25,
                    paper=200, low=1),
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


def _train_split(config: dict[str, Any], splits: dl_data.DataSplits) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``train_samples`` training images (all for 0), flattened."""
    x, y = splits.train.x.flatten(1), splits.train.y
    n = config["train_samples"]
    if n > x.shape[0]:
        raise ValueError(
            f"Invalid train_samples: {n} (the training split of {config['data']} has {x.shape[0]} images)"
        )
    return (x[:n], y[:n]) if n else (x, y)


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    h1, h2, method = unit.params["h1"], unit.params["h2"], unit.params["method"]
    splits = _load(config)
    x, y = _train_split(config, splits)
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
    if method == "GD":
        train_curve, test_curve = _gradient_descent(
            ensemble, optimizer, (x, y), (xt, yt), steps, steps_per_epoch
        )
        keep = np.arange(0, steps + 1, steps_per_epoch)
        taken = steps
    else:
        history = optim.train_ensemble(
            ensemble, optimizer, (x, y), test=(xt, yt), epochs=config["epochs"],
            batch_size=config["batch_size"], seed=seed,
        )  # fmt: skip
        train_curve, test_curve = history.train_loss.double().numpy(), history.test_loss.double().numpy()
        keep, taken = np.arange(config["epochs"] + 1) * steps_per_epoch, history.steps
    if taken != steps:
        raise RuntimeError(f"{method} took {taken} steps, not {steps}")
    with torch.no_grad():
        wrong = (ensemble(xt).argmax(-1) != yt).numpy()
    return UnitResult(
        values={
            "net": f"{h1}-{h2}",
            "sizes": [x.shape[1], h1, h2, splits.num_classes],
            "method": method,
            "steps": steps,
            "train_samples": n,
            "test_samples": int(yt.numel()),
        },
        arrays={
            "step": keep,
            "train_curve": train_curve,
            "test_curve": test_curve,
            "wrong": wrong,
        },
    )


def _gradient_descent(
    ensemble, optimizer, train, test, steps: int, every: int
) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` full-batch steps ``w ← w − η ∇L(w)``; the training and test losses of every member
    (``(steps / every + 1, members)`` each) before the first step and after every ``every`` steps."""
    x, y = train
    train_rows, test_rows = [], []
    for step in range(steps + 1):
        if step % every == 0:
            train_rows.append(nets.evaluate_ensemble(ensemble, x, y))
            test_rows.append(nets.evaluate_ensemble(ensemble, *test))
        if step == steps:
            break
        optimizer.zero_grad()
        ensemble.losses(x, y).sum().backward()
        optimizer.step()
    return torch.stack(train_rows).double().numpy(), torch.stack(test_rows).double().numpy()


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    rows = []
    for r in results:
        tr, te, wrong = r.arrays["train_curve"], r.arrays["test_curve"], r.arrays["wrong"]
        error = 100.0 * wrong.mean(axis=1)
        rows.append(
            {
                "net": r.values["net"],
                "sizes": r.values["sizes"],
                "method": r.values["method"],
                "steps": r.values["steps"],
                "seeds": int(wrong.shape[0]),
                "initial_train_cost": float(tr[0].mean()),
                "train_costs": [float(v) for v in tr[-1]],
                "train_cost": float(tr[-1].mean()),
                "train_cost_std": float(tr[-1].std(ddof=1)),
                "test_cost": float(te[-1].mean()),
                "test_error": float(error.mean()),
                "test_error_std": float(error.std(ddof=1)),
                "test_wrong": int(wrong.sum()),
            }
        )
    save_npz(
        out / "gd_vs_sgd_nets.npz",
        **{f"{r.values['net']}_{r.values['method']}_{k}": a for r in results for k, a in r.arrays.items()},
    )
    save(plot_curves(results), out / "cost_curves.png")
    first = results[0].values
    return {
        "data": config["data"],
        "train_samples": first["train_samples"],
        "test_samples": first["test_samples"],
        "lr": config["lr"],
        "batch_size": config["batch_size"],
        "runs": rows,
    }


def _pairs_of(results: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    pairs: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results["runs"]:
        pairs.setdefault(r["net"], {})[r["method"]] = r
    return {net: m for net, m in pairs.items() if set(METHODS) <= set(m)}


def _paper_net(results: dict[str, Any], net: str) -> str | None:
    """The network of Table 2 that ``net`` stands for: itself on MNIST, else none."""
    return net if results["data"] == "mnist" and (net, "GD") in PAPER_TABLE2 else None


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    rows = []
    for r in results["runs"]:
        paper_net = _paper_net(results, r["net"])
        cost, test_cost, errors, std = PAPER_TABLE2[(paper_net, r["method"])] if paper_net else ("–",) * 4
        if paper_net:
            cost, test_cost = f"{cost:.3g}", f"{test_cost:.3g}"
            errors = f"{100 * errors / PAPER_TEST_IMAGES:.2f} ± {100 * std / PAPER_TEST_IMAGES:.2f}"
        rows.append(
            ("-".join(map(str, r["sizes"])), r["method"], r["steps"],
             f"{r['train_cost']:.3g} ± {r['train_cost_std']:.2g}", cost, f"{r['test_cost']:.3g}", test_cost,
             f"{r['test_error']:.2f} ± {r['test_error_std']:.2f}", errors)
        )  # fmt: skip
    return [
        Table(
            "table-2",
            "GD and SGD after the same number of steps (Sagun et al. Table 2)",
            (
                "network",
                "method",
                "steps",
                "training cost",
                "paper",
                "test cost",
                "paper",
                "test error (%)",
                "paper (%)",
            ),
            tuple(rows),
            f"Ours: mean ± std over {results['runs'][0]['seeds']} initializations shared by GD and SGD, "
            f"η = {results['lr']}, SGD mini-batches of {results['batch_size']}, on "
            f"{results['train_samples']} training images of `{results['data']}`; test errors on its "
            f"{results['test_samples']} test images. Paper: Sagun et al. Table 2 on MNIST (errors of 10,000 "
            "test images given here in %), beside the same network only.",
        )
    ]


# ---------------------------------------------------------------------------------------------- claims


def _decide_costs(run: RunData) -> Verdict:
    parts = []
    for net, m in _pairs_of(run.results).items():
        gd, sgd = np.log(m["GD"]["train_costs"]), np.log(m["SGD"]["train_costs"])
        stat = paired_difference(gd, sgd, f"{net}: mean log(GD cost / SGD cost)")
        bound = math.log(SIMILAR_RATIO)
        parts.append((net, decide(stat, above=-bound, below=bound, evidence=_costs(m))))
    return all_of(parts)


def _costs(m: dict[str, dict[str, Any]]) -> str:
    return f"training cost GD {m['GD']['train_cost']:.3g}, SGD {m['SGD']['train_cost']:.3g}"


def _decide_errors(run: RunData) -> Verdict:
    arrays = run.arrays("gd_vs_sgd_nets.npz")
    parts = []
    for net, m in _pairs_of(run.results).items():
        for method in METHODS:
            require_above_chance(
                f"{method} on {net}",
                m[method]["test_wrong"],
                m[method]["seeds"] * run.results["test_samples"],
                10,
            )
        stat = error_difference(
            arrays[f"{net}_GD_wrong"], arrays[f"{net}_SGD_wrong"], f"{net}: GD − SGD test error (points)"
        )
        evidence = f"test error GD {m['GD']['test_error']:.2f}%, SGD {m['SGD']['test_error']:.2f}%"
        parts.append((net, decide(stat, above=0.0, evidence=evidence)))
    return all_of(parts)


CLAIMS = (
    Claim(
        "gd-vs-sgd-nets.train-cost",
        "“Within the same stepsize SGD and GD perfoms [sic] very similar on the training surface” (Table 2: "
        f"training cost (GD, SGD) {_paper_costs('50-50')} for 50-50, {_paper_costs('500-300')} for 500-300)",
        "Sagun et al. §3.2.2, Table 2, Fig. 8",
        "for each network, the paired mean over initializations of log(GD cost / SGD cost) after the same "
        f"number of steps lies within ±log {SIMILAR_RATIO:.3f}: the margin is the largest GD/SGD ratio of "
        f"the paper's own Table 2 (50-50: {_paper_costs('50-50')}), which the paper calls very similar",
        _decide_costs,
        shown_in="table-2",
    ),
    Claim(
        "gd-vs-sgd-nets.test-error",
        "SGD's test errors are a little lower than GD's after the same number of steps (Table 2: "
        f"{PAPER_TABLE2[('50-50', 'SGD')][2]} vs {PAPER_TABLE2[('50-50', 'GD')][2]} errors for 50-50, "
        f"{PAPER_TABLE2[('500-300', 'SGD')][2]} vs {PAPER_TABLE2[('500-300', 'GD')][2]} for 500-300, of "
        f"{PAPER_TEST_IMAGES:,})",
        "Sagun et al. §3.2.2, Table 2",
        "for each network, GD's test error minus SGD's (percentage points, paired by initialization) is "
        "above 0: the interval is the union of the paired t interval over initializations and the bootstrap "
        "interval over test images; both methods must be above twice chance",
        _decide_errors,
        shown_in="table-2",
    ),
)

FIGURES = (
    Figure(
        "cost_curves.png",
        "training (solid) and test (dashed) cost of GD and SGD against the step, mean and range over "
        "initializations",
        "Sagun et al. Fig. 8: mean costs of GD and SGD on MNIST, 50-50 and 500-300 networks, against the "
        "step number up to 50,000 (log scale); the two curves follow each other tightly; Table 2: training "
        f"costs (GD, SGD) {_paper_costs('50-50')} for 50-50, {_paper_costs('500-300')} for 500-300.",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "gd-vs-sgd-nets-small-step",
        "gd-vs-sgd-nets",
        ("lr=0.02", "epochs=300"),
        ("gd-vs-sgd-nets.train-cost", "gd-vs-sgd-nets.test-error"),
        "with a five times smaller step over five times as many steps (the same η·S), do GD and SGD follow "
        "each other, as small-step SGD should follow the gradient flow?",
    ),
)


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
        ax.set_ylabel("cost (cross entropy)")
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
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=220,
)
