"""``ensemble-alignment``: k independently trained networks, their ensemble, their averages, their overlap.

Thesis §5.0.1, Fig. 5.1: six allcnn networks trained independently with SGD on CIFAR-10 reach a training
error of 4.08 ± 0.9% and a validation error of 8.04 ± 0.16%; averaging their softmax predictions (the
ensemble) gives 7.84%, only slightly better; the *weights* averaged as they are ("one-shot averaging") give
89.9%, close to chance, since the average of points in different minima of a non-convex loss need not be
near any minimum; averaged after permuting each network's hidden units to match the first one (greedy
layer-wise matching) they give 18.7%. The overlap q_ab = ⟨x_a, x_b⟩/(|x_a||x_b|) of the aligned networks
(Fig. 5.1) stays far from 1: the copies are far apart even modulo permutations, which motivates Parle's
coupling of the replicas during training.

Here: k networks of the same architecture, network a built from seed a and trained with SGD (Nesterov
momentum) over the batch order of seed a (:mod:`deeplandscape.experiments._compare`: same data, budget in
epochs, evaluation in evaluation mode with batch-norm statistics recomputed on the training set); then

- the **softmax ensemble** p(y|x) = (1/k) Σ_a softmax(f(x; x_a));
- the **naive average** x̄ = (1/k) Σ_a x_a and the **aligned average** of the networks aligned to the first
  (:func:`~deeplandscape.analysis.alignment.average_models`), both evaluated with their batch-norm
  statistics recomputed on the training set (``error``) and with the running statistics averaged like the
  weights (``error_running_stats``);
- the **overlap matrices** before and after alignment
  (:func:`~deeplandscape.analysis.alignment.overlap_matrix`);
- the same three errors for the first j = 1, …, k networks, and the Hessian top eigenvalue and trace of
  each member at its solution.

Units are the k trainings; the averages are formed when the run is finalized, from the stored weights.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape import nets, optim
from deeplandscape.analysis.alignment import average_models, overlap_matrix
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, Param, Unit, UnitResult
from deeplandscape.rundir import save_npz

KINDS = ("member", "ensemble", "naive-average", "aligned-average")
STATE = "state."  # prefix of the arrays that hold a member's state dict

# Thesis §5.0.1 (allcnn, CIFAR-10, 6 networks): validation error %.
PAPER = {"member": 8.04, "member_std": 0.16, "member_train": 4.08, "ensemble": 7.84, "naive-average": 89.9,
         "aligned-average": 18.7}  # fmt: skip

_DATA = C.data_params()
PARAMS = {
    "data": _DATA["data"],
    "mnist_path": _DATA["mnist_path"],
    "train_subset": _DATA["train_subset"],
    "model": Param("str", "lenet", "network (an nn.Sequential, or a module whose .net is one)"),
    "k": Param("int", 6, "independently trained networks (Thesis Fig. 5.1: six)", quick=3, low=2),
    "epochs": Param("float", 10.0, "epochs of SGD per network", quick=2.0, paper=50.0, low=0.01),
    "batch_size": Param("int", 32, "mini-batch size", paper=128, low=1),
    "lr": Param("float", 0.1, "SGD step size (Nesterov momentum 0.9)", low=1e-8),
    "hessian_samples": Param("int", 128, "training samples for each member's Hessian (0: skip)", quick=32,
                             paper=1024, low=0),
    "hessian_probes": Param("int", 10, "Hutchinson probes for the Hessian trace", quick=2, paper=100, low=1),
}  # fmt: skip


def sequential(model: nn.Module) -> nn.Sequential:
    """The ``nn.Sequential`` that alignment permutes: the model, or its ``.net`` (the zoo's convention)."""
    if isinstance(model, nn.Sequential):
        return model
    inner = getattr(model, "net", None)
    if isinstance(inner, nn.Sequential):
        return inner
    raise ValueError(
        f"Invalid model: {type(model).__name__} is not an nn.Sequential and has no Sequential .net"
    )


def units(config: dict[str, Any]) -> list[Unit]:
    if config["model"] not in nets.available():
        raise ValueError(f"Invalid model: {config['model']!r} (known: {', '.join(nets.available())})")
    return [Unit(f"member-{a}", {"member": a}) for a in range(config["k"])]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    """Train member a (network, batch order, dropout of seed a) with SGD; return errors, Hessian, weights."""
    a = unit.params["member"]
    d = C.load_images(config)
    model = nets.get(config["model"], seed=a)
    sequential(model)
    optimizer = optim.get("sgd")(model.parameters(), lr=config["lr"], momentum=0.9, nesterov=True)
    with torch.random.fork_rng():
        torch.manual_seed(a)  # dropout masks: a function of the member alone
        curves = C.train(
            C.single_model_step(model, optimizer), lambda: C.evaluate(model, d), d, epochs=config["epochs"],
            batch_size=config["batch_size"], seed=a, evaluations=1,
        )  # fmt: skip
    top = trace = None
    if config["hessian_samples"]:
        top, trace = C.hessian_at_solution(
            model, d, samples=config["hessian_samples"], probes=config["hessian_probes"], seed=a
        )
    values = {
        "member": a,
        "error": float(curves.test_error[-1]),
        "val_error": float(curves.val_error[-1]),
        "train_error": float(curves.train_error[-1]),
        "train_loss": float(curves.train_loss[-1]),
        "effective_epochs": float(curves.effective_epochs[-1]),
        "wall_seconds": float(curves.wall_seconds[-1]),
        "hessian_top": top,
        "hessian_trace": trace,
    }
    # the state dict after evaluation: batch-norm statistics recomputed on the training set
    arrays = {STATE + k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    return UnitResult(values, arrays)


def load_member(config: dict[str, Any], result: UnitResult) -> nn.Module:
    """The trained member of a unit result, rebuilt from its stored state dict."""
    model = nets.get(config["model"], seed=result.values["member"])
    state = {k[len(STATE) :]: torch.from_numpy(v) for k, v in result.arrays.items() if k.startswith(STATE)}
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def _error(logits_or_probs: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * int((logits_or_probs.argmax(1) != y).sum()) / len(y)


@torch.no_grad()
def _probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([F.softmax(model(xb), dim=1) for xb in x.split(C.EVAL_BATCH)])


def ensemble_errors(members: list[nn.Module], d: C.Tensors) -> dict[str, float]:
    """Errors (%) of the softmax ensemble, argmax of (1/k) Σ_a softmax(f(x; x_a)), on train/val/test."""
    out = {}
    for name, x, y in (
        ("train_error", d.x, d.y),
        ("val_error", d.x_val, d.y_val),
        ("error", d.x_test, d.y_test),
    ):
        out[name] = _error(torch.stack([_probabilities(m, x) for m in members]).mean(0), y)
    return out


def averaged(members: list[nn.Module], aligned: bool) -> nn.Module:
    """The weight average of ``members`` (aligned to the first one if ``aligned``), as a model like them."""
    average = average_models([sequential(m) for m in members], aligned=aligned)
    out = copy.deepcopy(members[0])
    sequential(out).load_state_dict(average.state_dict())
    return out.eval()


def average_errors(model: nn.Module, d: C.Tensors) -> dict[str, float]:
    """Errors (%) of an averaged network with its running statistics as averaged, then recomputed."""
    as_averaged = _error(_probabilities(model, d.x_test), d.y_test)
    e = C.evaluate(model, d)
    return {"error": e["test_error"], "val_error": e["val_error"], "train_error": e["train_error"],
            "error_running_stats": as_averaged}  # fmt: skip


def _offdiag_mean(q: np.ndarray) -> float:
    k = q.shape[0]
    return float((q.sum() - np.trace(q)) / (k * (k - 1)))


def plot_overlap(before: np.ndarray, after: np.ndarray):
    """Fig. 5.1: the overlap matrices q_ab of the networks as trained and aligned to the first one."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    low = min(before.min(), after.min())
    for ax, q, title in zip(axes, (before, after), ("as trained", "aligned to network 0"), strict=True):
        image = ax.imshow(q, vmin=low, vmax=1.0, cmap="viridis")
        k = q.shape[0]
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{q[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_title(f"overlap ⟨x_a, x_b⟩/(|x_a||x_b|), {title}")
        fig.colorbar(image, ax=ax, shrink=0.85)
    fig.tight_layout()
    return fig


def plot_by_count(by_count: list[dict[str, float]], members: list[float]):
    """Test error of the ensemble and of the two averages of the first j networks, against j."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    j = [r["networks"] for r in by_count]
    for key, label in (("ensemble", "softmax ensemble"), ("naive-average", "naive weight average"),
                       ("aligned-average", "aligned weight average")):  # fmt: skip
        ax.plot(j, [r[key] for r in by_count], marker="o", label=label)
    ax.scatter(range(1, len(members) + 1), members, color="k", marker="x", label="member j alone", zorder=3)
    ax.axhline(90.0, color="gray", ls=":", lw=1, label="chance (10 classes)")
    ax.set_xticks(j)
    ax.set_xlabel("networks j (the first j)")
    ax.set_ylabel("test error %")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    d = C.load_images(config)
    members = [load_member(config, r) for r in results]
    rows: list[dict[str, Any]] = []
    for r in results:
        v = r.values
        rows.append({"kind": "member", "networks": 1, "member": v["member"], "error": v["error"],
                     "val_error": v["val_error"], "train_error": v["train_error"],
                     "error_running_stats": v["error"], "hessian_top": v["hessian_top"],
                     "hessian_trace": v["hessian_trace"]})  # fmt: skip
    k = len(members)
    ens = ensemble_errors(members, d)
    rows.append({"kind": "ensemble", "networks": k, **ens, "error_running_stats": ens["error"]})
    rows.append({"kind": "naive-average", "networks": k, **average_errors(averaged(members, False), d)})
    rows.append({"kind": "aligned-average", "networks": k, **average_errors(averaged(members, True), d)})

    # j = 1 is the degenerate case: the ensemble and the averages of one network are the network
    by_count = []
    for j in range(1, k + 1):
        if j == k:
            combined = {r["kind"]: r["error"] for r in rows[k:]}
        else:
            combined = {
                "ensemble": ensemble_errors(members[:j], d)["error"],
                "naive-average": average_errors(averaged(members[:j], False), d)["error"],
                "aligned-average": average_errors(averaged(members[:j], True), d)["error"],
            }
        by_count.append({"networks": j, **combined})

    q = overlap_matrix([sequential(m) for m in members], aligned=True)
    overlap = {
        "naive": q.before.tolist(),
        "aligned": q.after.tolist(),
        "naive_mean": _offdiag_mean(q.before),
        "aligned_mean": _offdiag_mean(q.after),
    }
    save_npz(out / "ensemble_alignment.npz", overlap_naive=q.before, overlap_aligned=q.after,
             by_count=np.array([[r["networks"], r["ensemble"], r["naive-average"], r["aligned-average"]]
                                for r in by_count]))  # fmt: skip
    save(plot_overlap(q.before, q.after), out / "overlap.png")
    save(plot_by_count(by_count, [r.values["error"] for r in results]), out / "averages.png")

    member_err = np.array([r.values["error"] for r in results])
    member_train = np.array([r.values["train_error"] for r in results])
    tops = [r.values["hessian_top"] for r in results]
    traces = [r.values["hessian_trace"] for r in results]
    hessian = None not in tops
    summary = {
        "member_error_mean": float(member_err.mean()),
        "member_error_std": float(member_err.std(ddof=1)),
        "member_train_error_mean": float(member_train.mean()),
        "member_hessian_top_mean": float(np.mean(tops)) if hessian else None,
        "member_hessian_trace_mean": float(np.mean(traces)) if hessian else None,
    }

    def f(x: float) -> str:
        return f"{x:.2f}"

    models_table = table(
        ["network", "test error %", "val error %", "train error %", "test error %, running stats as averaged",
         "Hessian top", "Hessian trace"],
        [[f"member {r['member']}" if r["kind"] == "member" else f"{r['kind']} of {r['networks']}",
          f(r["error"]), f(r["val_error"]), f(r["train_error"]), f(r["error_running_stats"]),
          "—" if r.get("hessian_top") is None else r["hessian_top"],
          "—" if r.get("hessian_trace") is None else r["hessian_trace"]] for r in rows],
    )  # fmt: skip
    paper_table = table(
        ["", "paper: val. error % (allcnn, CIFAR-10, 6 networks)", "ours: test error %"],
        [["members", f"{PAPER['member']} ± {PAPER['member_std']} (train {PAPER['member_train']} ± 0.9)",
          f"{summary['member_error_mean']:.2f} ± {summary['member_error_std']:.2f} (train "
          f"{summary['member_train_error_mean']:.2f})"],
         ["softmax ensemble", PAPER["ensemble"], f(rows[k]["error"])],
         ["naive weight average", PAPER["naive-average"], f(rows[k + 1]["error"])],
         ["aligned weight average", PAPER["aligned-average"], f(rows[k + 2]["error"])]],
    )  # fmt: skip
    count_table = table(
        ["networks j", "softmax ensemble %", "naive average %", "aligned average %"],
        [[r["networks"], f(r["ensemble"]), f(r["naive-average"]), f(r["aligned-average"])] for r in by_count],
    )
    data = "digits up-sampled to 28×28" if config["data"] == "digits" else "MNIST"
    body = [
        f"Data: {data}; k = {k} networks `{config['model']}`, network a built and shuffled with seed a; "
        f"each trained with SGD (η = {config['lr']:g}, Nesterov momentum 0.9, batch {config['batch_size']}) "
        f"for {config['epochs']:g} epochs. Errors in %; `error` with batch-norm statistics recomputed on the "
        "training set, the last column with the running statistics averaged like the weights. Hessian of "
        f"each member's training loss on {config['hessian_samples']} samples.",
        models_table,
        "**Thesis §5.0.1** next to ours:\n\n" + paper_table,
        "Mean overlap q_ab over pairs a ≠ b: "
        f"{overlap['naive_mean']:.3f} as trained, {overlap['aligned_mean']:.3f} aligned to network 0 "
        "(Fig. 5.1: far below 1 even after alignment).",
        "![overlap matrices](overlap.png)",
        "Errors of the first j networks combined:\n\n" + count_table,
        "![errors against the number of networks](averages.png)",
    ]
    results_json = {
        "data": config["data"],
        "model": config["model"],
        "k": k,
        "runs": comparison_rows(config, results, rows[k:]),
        "models": rows,
        "overlap": overlap,
        "by_count": by_count,
        **summary,
    }
    return results_json, "\n\n".join(body)


def comparison_rows(
    config: dict[str, Any], members: list[UnitResult], combined: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The ``runs`` rows every comparison has: the members (mean ± std over the k networks, SGD each),
    then the ensemble and the two averages (one value each; their cost is the k trainings together; no
    Hessian is taken at an average)."""
    v = [r.values for r in members]
    errors = np.array([x["error"] for x in v])
    hessian = all(x.get("hessian_top") is not None for x in v)
    epochs, seconds = [x["effective_epochs"] for x in v], [x["wall_seconds"] for x in v]
    out = [{
        "model": config["model"], "method": "SGD (each member)", "seeds": len(v),
        "error_mean": float(errors.mean()), "error_std": float(errors.std(ddof=1)) if len(v) > 1 else 0.0,
        "effective_epochs": float(np.mean(epochs)), "wall_seconds": float(np.mean(seconds)),
        "hessian_top": float(np.mean([x["hessian_top"] for x in v])) if hessian else None,
        "hessian_trace": float(np.mean([x["hessian_trace"] for x in v])) if hessian else None,
    }]  # fmt: skip
    total_epochs, total_seconds = float(np.sum(epochs)), float(np.sum(seconds))
    for r in combined:
        out.append({
            "model": config["model"], "method": r["kind"], "seeds": len(v), "error_mean": r["error"],
            "error_std": None, "effective_epochs": total_epochs, "wall_seconds": total_seconds,
            "hessian_top": None, "hessian_trace": None,
        })  # fmt: skip
    return out


EXPERIMENT = Experiment(
    name="ensemble-alignment",
    description="k independent networks: softmax ensemble, naive and permutation-aligned weight averages",
    reproduces="Thesis §5.0.1, Fig. 5.1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    order=440,
)
