"""``ensemble-alignment``: k independently trained networks, their ensemble, their averages, their overlap.

Thesis §5.0.1, Fig. 5.1: six allcnn networks trained independently with SGD on CIFAR-10 reach a training
error of 4.08 ± 0.9% and a validation error of 8.04 ± 0.16%; averaging their softmax predictions (the
ensemble) gives 7.84%, only slightly better; the *weights* averaged as they are ("one-shot averaging") give
89.9%, close to chance, since the average of points in different minima of a non-convex loss need not be
near any minimum; averaged after permuting each network's hidden units to match the first one (greedy
layer-wise matching) they give 18.7%. The overlap q_ab = ⟨x_a, x_b⟩/(|x_a||x_b|) of the aligned networks
(Fig. 5.1) is about the same for every pair and the copies stay far apart even modulo permutations, which
motivates Parle's coupling of the replicas during training.

Here: ``groups`` independent groups of k networks of the same architecture (network a of group g built from
seed g·k + a and trained with SGD, Nesterov momentum, over the batch order of that seed;
:mod:`deeplandscape.experiments._compare`: same data, budget in epochs, evaluation in evaluation mode with
batch-norm statistics recomputed on the training set); for each group

- the **softmax ensemble** p(y|x) = (1/k) Σ_a softmax(f(x; x_a));
- the **naive average** x̄ = (1/k) Σ_a x_a and the **aligned average** of the networks aligned to the first
  (:func:`~deeplandscape.analysis.alignment.average_models`), both evaluated with their batch-norm
  statistics recomputed on the training set (``error``) and with the running statistics averaged like the
  weights (``error_running_stats``);
- the **overlap matrices** before and after alignment
  (:func:`~deeplandscape.analysis.alignment.overlap_matrix`);

and, for the first group, the three errors of the first j = 1, …, k networks. The groups give the
network-to-network variation of the averages and the ensemble; which test images each one gets wrong gives
the test-set variation (``ensemble_alignment.npz``).
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
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    CHANCE_FACTOR,
    Claim,
    PaperNumber,
    RunData,
    Statistic,
    Verdict,
    bootstrap,
    decide,
    error_difference,
    mean,
    proportion,
)
from deeplandscape.experiments.spec import Diagnostic, Experiment, Figure, Param, Table, Unit, UnitResult
from deeplandscape.rundir import save_npz

STATE = "state."  # prefix of the arrays that hold a member's state dict
CLASSES = 10
NPZ = "ensemble_alignment.npz"

# Thesis §5.0.1 (allcnn, CIFAR-10, six networks): validation error %.
PAPER_MEMBER = PaperNumber((8.04, 0.16), "Thesis §5.0.1", "validation error of each network")
PAPER_MEMBER_TRAIN = PaperNumber((4.08, 0.9), "Thesis §5.0.1", "training error of each network")
PAPER_ENSEMBLE = PaperNumber(7.84, "Thesis §5.0.1", "softmax ensemble of the six")
PAPER_NAIVE = PaperNumber(89.9, "Thesis §5.0.1", "naive weight average")
PAPER_ALIGNED = PaperNumber(18.7, "Thesis §5.0.1", "weight average after alignment")
PAPER_K = 6
PAPER_RATIO = PAPER_ALIGNED.value / PAPER_NAIVE.value

# Thresholds the paper does not give (ours; each claim's criterion says so).
FAR_RATIO = 0.5  # "far worse": the aligned average has at most half the naive average's error
FAR_OVERLAP = 0.5  # "very far away": overlap below 1/2, i.e. distance above the networks' norm
SIMILAR_SPREAD = 0.05  # "quite similar": a standard deviation below 0.05 on the overlap's scale [0, 1]

PARAMS = {
    **C.mnist_reference_params(10000),
    "model": Param("str", "lenet", "network (an nn.Sequential, or a module whose .net is one)"),
    "k": Param("int", PAPER_K, "independently trained networks per group (Thesis Fig. 5.1: six)", quick=3,
               low=2),
    "groups": Param("int", 3, "independent groups of k networks (their spread gives the intervals)", quick=2,
                    low=1),
    "epochs": Param("float", 10.0, "epochs of SGD per network", quick=2.0, reference=3.0, paper=50.0,
                    low=0.01),
    "budget_factor": Param("float", 1.0, "multiplies epochs (the diagnostics' longer runs)", low=0.01),
    "batch_size": Param("int", 32, "mini-batch size", reference=128, paper=128, low=1),
    "lr": Param("float", 0.1, "SGD step size (Nesterov momentum 0.9)", low=1e-8),
    "hessian_samples": Param("int", 64, "training samples for each member's Hessian (0: skip)", quick=16,
                             paper=1024, low=0),
    "hessian_probes": Param("int", 5, "Hutchinson probes for the Hessian trace", quick=2, paper=100, low=1),
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
    k = config["k"]

    def key(g: int, a: int) -> str:  # group 0 keeps the names of the runs made before there were groups
        return f"member-{a}" if g == 0 else f"group-{g}-member-{a}"

    return [
        Unit(key(g, a), {"group": g, "member": a, "seed": g * k + a})
        for g in range(config["groups"])
        for a in range(k)
    ]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    """Train one network (initialization, batch order and dropout of its seed) with SGD; return its errors,
    Hessian, which test images it gets wrong, and its weights."""
    s = unit.params["seed"]
    d = C.load_images(config)
    model = nets.get(config["model"], seed=s)
    sequential(model)
    optimizer = optim.get("sgd")(model.parameters(), lr=config["lr"], momentum=0.9, nesterov=True)
    with torch.random.fork_rng():
        torch.manual_seed(s)  # dropout masks: a function of the member alone
        curves = C.train(
            C.single_model_step(model, optimizer), lambda: C.evaluate(model, d), d,
            epochs=config["epochs"] * config["budget_factor"], batch_size=config["batch_size"], seed=s,
            evaluations=1,
        )  # fmt: skip
    top = trace = None
    if config["hessian_samples"]:
        top, trace = C.hessian_at_solution(
            model, d, samples=config["hessian_samples"], probes=config["hessian_probes"], seed=s
        )
    values = {
        **unit.params,
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
    arrays["test_wrong"] = curves.test_per_sample
    return UnitResult(values, arrays)


def load_member(config: dict[str, Any], result: UnitResult) -> nn.Module:
    """The trained member of a unit result, rebuilt from its stored state dict."""
    model = nets.get(config["model"], seed=result.values["seed"])
    state = {k[len(STATE) :]: torch.from_numpy(v) for k, v in result.arrays.items() if k.startswith(STATE)}
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def _probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([F.softmax(model(xb), dim=1) for xb in x.split(C.EVAL_BATCH)])


@torch.no_grad()
def ensemble_wrong(members: list[nn.Module], x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """1.0 where the softmax ensemble, argmax of (1/k) Σ_a softmax(f(x; x_a)), misclassifies."""
    p = torch.stack([_probabilities(m, x) for m in members]).mean(0)
    return (p.argmax(1) != y).numpy().astype(np.float64)


def averaged(members: list[nn.Module], aligned: bool) -> nn.Module:
    """The weight average of ``members`` (aligned to the first one if ``aligned``), as a model like them."""
    average = average_models([sequential(m) for m in members], aligned=aligned)
    out = copy.deepcopy(members[0])
    sequential(out).load_state_dict(average.state_dict())
    return out.eval()


def average_errors(model: nn.Module, d: C.Tensors) -> tuple[dict[str, float], np.ndarray]:
    """Errors (%) of an averaged network with its running statistics as averaged, then recomputed (which
    test images it gets wrong after recomputation)."""
    as_averaged = 100.0 * float((_probabilities(model, d.x_test).argmax(1) != d.y_test).float().mean())
    e = C.evaluate(model, d)
    errors = {"error": e["test_error"], "val_error": e["val_error"], "train_error": e["train_error"],
              "error_running_stats": as_averaged}  # fmt: skip
    return errors, e["test_per_sample"]


def _offdiag(q: np.ndarray) -> np.ndarray:
    return q[~np.eye(q.shape[0], dtype=bool)]


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
    ax.set_xlabel("networks j (the first j of group 0)")
    ax.set_ylabel("test error %")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    return fig


def _by_count(members: list[nn.Module], d: C.Tensors, full: dict[str, float]) -> list[dict[str, float]]:
    """Test errors of the ensemble and the two averages of the first j networks, j = 1, …, k (j = 1: the
    network itself, the degenerate case; j = k: ``full``)."""
    rows = []
    for j in range(1, len(members) + 1):
        if j == len(members):
            rows.append({"networks": j, **full})
            continue
        first = members[:j]
        rows.append({
            "networks": j,
            "ensemble": 100.0 * float(ensemble_wrong(first, d.x_test, d.y_test).mean()),
            "naive-average": average_errors(averaged(first, False), d)[0]["error"],
            "aligned-average": average_errors(averaged(first, True), d)[0]["error"],
        })  # fmt: skip
    return rows


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    d = C.load_images(config)
    k, n_groups = config["k"], config["groups"]
    member_rows = [{key: r.values[key] for key in ("group", "member", "seed", "error", "val_error",
                                                    "train_error", "hessian_top", "hessian_trace")}
                   for r in results]  # fmt: skip
    arrays: dict[str, np.ndarray] = {}
    groups, first_members, q0 = [], None, None
    for g in range(n_groups):
        in_group = [r for r in results if r.values["group"] == g]
        members = [load_member(config, r) for r in in_group]
        wrong = {"ensemble": ensemble_wrong(members, d.x_test, d.y_test)}
        row: dict[str, Any] = {"group": g, "ensemble": {"error": 100.0 * float(wrong["ensemble"].mean())}}
        for kind, aligned in (("naive", False), ("aligned", True)):
            row[kind], wrong[kind] = average_errors(averaged(members, aligned), d)
        q = overlap_matrix([sequential(m) for m in members], aligned=True)
        row.update(
            overlap_naive_mean=float(_offdiag(q.before).mean()),
            overlap_aligned_mean=float(_offdiag(q.after).mean()),
            overlap_aligned_std=float(_offdiag(q.after).std(ddof=1)),
            overlap_with_first=[float(v) for v in q.after[0, 1:]],
        )
        groups.append(row)
        arrays[f"g{g}_members_wrong"] = np.stack([r.arrays["test_wrong"] for r in in_group])
        for kind, w in wrong.items():
            arrays[f"g{g}_{kind}_wrong"] = w
        arrays[f"g{g}_overlap_naive"], arrays[f"g{g}_overlap_aligned"] = q.before, q.after
        if g == 0:
            first_members, q0 = members, q
    first = groups[0]
    full = {"ensemble": first["ensemble"]["error"], "naive-average": first["naive"]["error"],
            "aligned-average": first["aligned"]["error"]}  # fmt: skip
    by_count = _by_count(first_members, d, full)
    save_npz(out / NPZ, **arrays)
    save(plot_overlap(q0.before, q0.after), out / "overlap.png")
    save(plot_by_count(by_count, [r["error"] for r in member_rows[:k]]), out / "averages.png")
    errors = np.array([r["error"] for r in member_rows])
    train = np.array([r["train_error"] for r in member_rows])
    return {
        "data": config["data"], "model": config["model"], "k": k, "groups": n_groups,
        "n_train": len(d.y), "n_test": len(d.y_test), "classes": CLASSES,
        "member_error_mean": float(errors.mean()), "member_error_std": float(errors.std(ddof=1)),
        "member_train_error_mean": float(train.mean()), "member_train_error_std": float(train.std(ddof=1)),
        "members": member_rows, "averages": groups, "by_count": by_count,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------- tables


def _spread(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.2f}" + (f" ± {v.std(ddof=1):.2f}" if v.size > 1 else "")


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    groups = results["averages"]
    data = "digits up-sampled to 28×28" if results["data"] == "digits" else "MNIST"
    note = (
        f"Ours: {results['groups']} group(s) of k = {results['k']} `{results['model']}` networks on {data} "
        f"({results['n_train']} training images, errors on {results['n_test']} test images), each trained "
        f"with SGD (η = {config['lr']:g}, Nesterov 0.9, batch {config['batch_size']}) for "
        f"{config['epochs'] * config['budget_factor']:g} epochs; mean ± std over the groups (members: over "
        "every network). The paper's: six allcnn networks on CIFAR-10, validation error."
    )
    member = f"{results['member_error_mean']:.2f} ± {results['member_error_std']:.2f}"
    rows = (
        ("each network (test)", str(PAPER_MEMBER), member),
        ("each network (training)", str(PAPER_MEMBER_TRAIN),
         f"{results['member_train_error_mean']:.2f} ± {results['member_train_error_std']:.2f}"),
        ("softmax ensemble", str(PAPER_ENSEMBLE), _spread([g["ensemble"]["error"] for g in groups])),
        ("naive weight average", str(PAPER_NAIVE), _spread([g["naive"]["error"] for g in groups])),
        ("naive weight average, running statistics averaged", "–",
         _spread([g["naive"]["error_running_stats"] for g in groups])),
        ("aligned weight average", str(PAPER_ALIGNED), _spread([g["aligned"]["error"] for g in groups])),
        ("aligned weight average, running statistics averaged", "–",
         _spread([g["aligned"]["error_running_stats"] for g in groups])),
        ("overlap of two networks, as trained", "–", _spread([g["overlap_naive_mean"] for g in groups])),
        ("overlap of two networks, aligned", "–", _spread([g["overlap_aligned_mean"] for g in groups])),
    )  # fmt: skip
    by_count = tuple(
        (r["networks"], f"{r['ensemble']:.2f}", f"{r['naive-average']:.2f}", f"{r['aligned-average']:.2f}")
        for r in results["by_count"]
    )
    return [
        Table("section-5-0-1", "Thesis §5.0.1: members, ensemble, naive and aligned averages (error %)",
              ("", "paper (allcnn, CIFAR-10)", "ours"), rows,
              note + " Averages are evaluated with batch-norm statistics recomputed on the training set, and "
              "with the running statistics averaged like the weights."),
        Table("by-count", "the first j networks of group 0 combined (test error %)",
              ("networks j", "softmax ensemble", "naive average", "aligned average"), by_count,
              "j = 1: the network itself (the degenerate case)."),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- claims


def _wrong(run: RunData, kind: str) -> np.ndarray:
    """(groups, test images): where each group's ``kind`` errs (``members``: (groups·k, test images))."""
    arrays = run.arrays(NPZ)
    groups = range(run.results["groups"])
    if kind == "members":
        return np.concatenate([arrays[f"g{g}_members_wrong"] for g in groups])
    return np.stack([arrays[f"g{g}_{kind}_wrong"] for g in groups])


def _union(name: str, estimate: float, parts: list[Statistic], how: str) -> Statistic:
    """One statistic whose interval is the union of ``parts``' (each source of uncertainty its own)."""
    return Statistic(name, estimate, min(p.ci_low for p in parts), max(p.ci_high for p in parts),
                     method=how)  # fmt: skip


def _decide_naive_far_worse(run: RunData) -> Verdict:
    naive, aligned = _wrong(run, "naive"), _wrong(run, "aligned")
    name = "error of the aligned average / error of the naive average"
    per_group = mean(aligned.mean(1) / naive.mean(1), name, what="group")
    pooled = bootstrap((aligned.mean(0), naive.mean(0)), lambda a, b, axis: a.mean(axis) / b.mean(axis), name,
                       what="test image", paired=True, method="percentile")  # fmt: skip
    how = f"union of t over {naive.shape[0]} groups and bootstrap over {naive.shape[1]} test images"
    stat = _union(name, float(aligned.mean() / naive.mean()), [per_group, pooled], how)
    return decide(stat, below=FAR_RATIO)


def _decide_naive_near_chance(run: RunData) -> Verdict:
    naive = _wrong(run, "naive")
    name = "accuracy of the naive average"
    accuracy = 1.0 - naive.mean(1)
    parts = [mean(accuracy, name, what="group"),
             proportion(int(naive.size - naive.sum()), naive.size, name)]  # fmt: skip
    how = f"union of t over {naive.shape[0]} groups and Wilson over {naive.size} predictions"
    stat = _union(name, float(accuracy.mean()), parts, how)
    return decide(stat, below=CHANCE_FACTOR / run.results["classes"])


def _decide_ensemble(run: RunData) -> Verdict:
    members = _wrong(run, "members")
    ensemble = np.repeat(_wrong(run, "ensemble"), run.results["k"], axis=0)  # each member beside its group's
    stat = error_difference(ensemble, members, "test error of the ensemble − a member, points")
    mean_, std = PAPER_MEMBER.value
    return decide(stat, below=std / mean_ * run.results["member_error_mean"])


def _with_first(run: RunData) -> np.ndarray:
    return np.concatenate([g["overlap_with_first"] for g in run.results["averages"]])


def _decide_overlap_far(run: RunData) -> Verdict:
    q = _with_first(run)
    return decide(mean(q, "overlap of an aligned network with the first of its group", what="network"),
                  below=FAR_OVERLAP)  # fmt: skip


def _decide_overlap_similar(run: RunData) -> Verdict:
    q = _with_first(run)
    name = "standard deviation of the aligned overlaps"
    stat = bootstrap(q, lambda v, axis: v.std(axis=axis, ddof=1), name, what="network", method="percentile")
    return decide(stat, below=SIMILAR_SPREAD)


GROUPS = "over the groups of k networks (t) and the test images (bootstrap), 95%, union of the two intervals"

CLAIMS = (
    Claim(
        "ensemble-alignment.naive-near-chance",
        "“A model that consists of the average weights of these independent networks (“one shot "
        f"averaging”) performs extremely poorly: it obtains {PAPER_NAIVE}% validation error, which is close "
        "to random guessing”",
        "Thesis §5.0.1",
        f"the accuracy of the naive weight average of k networks lies below {CHANCE_FACTOR:g}× chance (the "
        "framework's 'at chance'); union of the t interval over the groups and the Wilson interval over "
        "the test predictions",
        _decide_naive_near_chance,
        shown_in="section-5-0-1",
    ),
    Claim(
        "ensemble-alignment.naive-far-worse",
        "“while a naively averaged model has close to 90% validation error, a model obtained by averaging "
        f"after aligning the weights performs much better at {PAPER_ALIGNED}% validation error”",
        "Thesis §5.0.1",
        f"the ratio error(aligned average)/error(naive average) lies below {FAR_RATIO:g} (ours: 'much "
        f"better' read as at least halving the error; the paper's ratio is {PAPER_RATIO:.2f}), {GROUPS}",
        _decide_naive_far_worse,
        shown_in="section-5-0-1",
    ),
    Claim(
        "ensemble-alignment.ensemble-no-worse",
        "“Averaging their softmax predictions performs only slightly better than any individual network "
        f"and the ensemble gets a validation error of {PAPER_ENSEMBLE}%” (members {PAPER_MEMBER}%)",
        "Thesis §5.0.1",
        "the ensemble is at least as good as a member: the paired difference error(ensemble) − "
        "error(member), over every network beside its group's ensemble (t) and the test images "
        "(bootstrap), lies below the paper's member standard deviation relative to its error "
        f"({PAPER_MEMBER.value[1]}/{PAPER_MEMBER.value[0]}) times our members' error",
        _decide_ensemble,
        shown_in="section-5-0-1",
    ),
    Claim(
        "ensemble-alignment.overlap-far",
        "“Even after aligning with respect to permutations, these copies are very far away from each other "
        "in the weight space”",
        "Thesis §5.0.1, Fig. 5.1",
        f"the mean overlap q of an aligned network with the first of its group lies below {FAR_OVERLAP:g} "
        "(ours: with equal norms |x_a − x_b| = |x|√(2(1 − q)), so below 1/2 the networks are further apart "
        "than their own size); t interval over the networks",
        _decide_overlap_far,
        shown_in="overlap.png",
    ),
    Claim(
        "ensemble-alignment.overlap-similar",
        "“Note that the overlap between any two independent networks is quite similar”",
        "Thesis Fig. 5.1",
        "the standard deviation of the aligned overlaps with the first network lies below "
        f"{SIMILAR_SPREAD:g} (ours: one colour on the overlap's scale [0, 1]); bootstrap over the networks",
        _decide_overlap_similar,
        shown_in="overlap.png",
    ),
)

FIGURES = (
    Figure(
        "overlap.png",
        "overlap matrices q_ab of the networks of group 0, as trained and aligned to network 0",
        "Thesis Fig. 5.1: ⟨x_a, x_b⟩/(|x_a||x_b|) for six allcnn networks trained independently with SGD "
        "on CIFAR-10, after a permutation alignment: about the same for every pair, and far below 1.",
    ),
    Figure(
        "averages.png",
        "test error of the ensemble and of the naive and aligned averages of the first j networks",
        f"Thesis §5.0.1: six allcnn on CIFAR-10, {PAPER_MEMBER}% each; the softmax ensemble "
        f"{PAPER_ENSEMBLE}%; the naive weight average {PAPER_NAIVE}% (near chance); the aligned average "
        f"{PAPER_ALIGNED}%.",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "ensemble-longer", "ensemble-alignment", ("budget_factor=5",),
        ("ensemble-alignment.naive-near-chance", "ensemble-alignment.naive-far-worse",
         "ensemble-alignment.overlap-far", "ensemble-alignment.overlap-similar"),
        "With five times the training, do the networks move further apart (lower overlap, a naive average "
        "nearer chance) as the paper's fully trained allcnn networks are?",
    ),
    Diagnostic(
        "ensemble-more-members", "ensemble-alignment", ("k=12",), ("ensemble-alignment.ensemble-no-worse",),
        "With twice the networks per group, is the softmax ensemble at least as good as a member?",
    ),
)  # fmt: skip


EXPERIMENT = Experiment(
    name="ensemble-alignment",
    description="k independent networks: softmax ensemble, naive and permutation-aligned weight averages",
    reproduces="Thesis §5.0.1, Fig. 5.1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=440,
)
