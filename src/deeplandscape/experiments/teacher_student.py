"""``teacher-student``: students trained on a teacher's soft labels, a landscape whose ground state is known.

Sagun et al. §3.1.3, Table 1, Fig. 5: split the training set in two halves; train a teacher
(784-500-300-10, ReLU, soft-max, cross entropy, SGD) on the first half; label the second half with the
teacher's output probabilities ``q(x) = softmax(f_teacher(x))``; train many students of four sizes
(784-50-50-10, 784-250-150-10, 784-500-300-10, 784-1200-1200-10) on the soft labels with SGD. A student at
least as large as the teacher can copy it, so zero cost is attainable, yet SGD stops at a floor above zero,
and the larger students concentrate in a narrower band of training costs (Fig. 5).

Cost: the cross entropy against the soft labels minus its minimum, ``KL(q ‖ p) = Σ_c q_c log(q_c/p_c)``
averaged over the samples (zero exactly for a copy of the teacher; the paper's "zero cost" statement needs
this offset, since the raw cross entropy of soft labels is bounded below by the entropy of q). Test cost
and test error are measured against the true labels of the test split.

Scales: the embedded 8×8 digits (64 inputs) with teacher and students one tenth of the paper's widths
(quick and default), or ``data=mnist`` with ``mnist_path=`` for the paper's sizes (paper scale uses the zoo's
"sagun-teacher" and "sagun-student-*" networks).
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
from deeplandscape.experiments._common import summary, table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, Param, Unit, UnitResult
from deeplandscape.rundir import save_npz

# Sagun et al. Table 1: training cost, test cost, test errors (of 10,000) and their std, per student size.
PAPER_TABLE1 = {
    (50, 50): (1.83e-2, 1.69e-1, 326, 11.3),
    (250, 150): (1.72e-2, 1.31e-1, 276, 7.6),
    (500, 300): (1.70e-2, 1.25e-1, 265, 6.6),
    (1200, 1200): (1.68e-2, 1.18e-1, 257, 5.2),
}
PAPER_SIZES = [h for pair in nets.SAGUN_STUDENT_SIZES for h in pair]

PARAMS = {
    "data": Param("str", "digits", "data set", choices=("digits", "mnist"), paper="mnist"),
    "mnist_path": Param("str", "", "directory or file of MNIST (only for data=mnist)"),
    "teacher": Param(
        "ints", [50, 30], "teacher hidden widths h1,h2", paper=[500, 300], low=1, distinct=False
    ),
    "students": Param(
        "ints",
        [5, 5, 25, 15, 50, 30, 120, 120],
        "student hidden widths, pairs h1,h2 (smallest to largest)",
        paper=PAPER_SIZES,
        low=1,
        distinct=False,
    ),
    "nets": Param("int", 50, "students per size", quick=6, paper=100, low=2),
    "teacher_epochs": Param("int", 60, "teacher training epochs", quick=15, paper=100, low=1),
    "epochs": Param("int", 100, "student training epochs", quick=10, paper=200, low=1),
    "batch_size": Param("int", 32, "mini-batch size", low=1),
    "lr": Param("float", 0.1, "SGD learning rate (teacher and students)", low=1e-8),
    "teacher_seed": Param("int", 12345, "seed of the teacher's initialization and data order", low=0),
}


def _load(config: dict[str, Any]) -> dl_data.DataSplits:
    if config["data"] == "digits":
        return dl_data.load("digits", seed=0)
    return dl_data.load("mnist", config["mnist_path"] or None, seed=0)


def _pairs(config: dict[str, Any]) -> list[tuple[int, int]]:
    s = config["students"]
    if len(s) % 2:
        raise ValueError(f"Invalid students: {s!r} (expected pairs h1,h2: an even number of widths)")
    return [(s[i], s[i + 1]) for i in range(0, len(s), 2)]


def _net_name(h1: int, h2: int, in_features: int) -> tuple[str, dict]:
    if (h1, h2) in nets.SAGUN_STUDENT_SIZES and in_features == 784:
        return f"sagun-student-{h1}-{h2}", {}
    return "sagun-teacher", {"h1": h1, "h2": h2, "in_features": in_features}


def kl_cost(logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Sagun et al. §3.1.3 cost on soft labels, offset to be zero at the teacher:
    ``(1/N) Σ_n Σ_c q_nc (log q_nc − log softmax(z_n)_c)``."""
    return (torch.xlogy(q, q) - q * F.log_softmax(logits, -1)).sum(-1).mean()


def make_teacher(config: dict[str, Any]):
    """The teacher trained on the first half of the training split, and the soft-labelled second half."""
    splits = _load(config)
    x, y = splits.train.x.flatten(1), splits.train.y
    half = x.shape[0] // 2
    h1, h2 = config["teacher"]
    name, kw = _net_name(h1, h2, x.shape[1])
    if x.shape[1] == 784 and (h1, h2) == (500, 300):
        name, kw = "sagun-teacher", {}
    teacher = nets.Ensemble.from_name(name, 1, seed=config["teacher_seed"], **kw)
    optim.train_ensemble(
        teacher, optim.EnsembleSGD(teacher, config["lr"]), (x[:half], y[:half]),
        epochs=config["teacher_epochs"], batch_size=config["batch_size"], seed=config["teacher_seed"],
    )  # fmt: skip
    model = teacher.member(0).eval()
    xs = x[half:]
    q = dl_data.soft_labels(model, xs)
    return model, xs, q, splits.test.x.flatten(1), splits.test.y


def units(config: dict[str, Any]) -> list[Unit]:
    return [Unit(f"s{h1}-{h2}", {"h1": h1, "h2": h2}) for h1, h2 in _pairs(config)]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    h1, h2 = unit.params["h1"], unit.params["h2"]
    teacher, x, q, xt, yt = make_teacher(config)
    with torch.no_grad():
        teacher_logits = teacher(xt)
        teacher_errors = int((teacher_logits.argmax(-1) != yt).sum())
        teacher_cost = float(F.cross_entropy(teacher_logits, yt))
    name, kw = _net_name(h1, h2, x.shape[1])
    students = nets.Ensemble.from_name(name, config["nets"], seed=seed, **kw)
    history = optim.train_ensemble(
        students, optim.EnsembleSGD(students, config["lr"]), (x, q), epochs=config["epochs"],
        batch_size=config["batch_size"], loss_fn=kl_cost, seed=seed,
    )  # fmt: skip
    with torch.no_grad():
        logits = students(xt)
        test_cost = F.cross_entropy(logits.transpose(1, 2), yt.expand(len(students), -1), reduction="none")
        test_errors = (logits.argmax(-1) != yt).sum(1)
    return UnitResult(
        values={
            "sizes": [x.shape[1], h1, h2, q.shape[1]],
            "parameters": nets.parameter_count(students.member(0)),
            "teacher_test_errors": teacher_errors,
            "teacher_test_cost": teacher_cost,
            "test_samples": int(yt.numel()),
            "train_samples": int(x.shape[0]),
        },
        arrays={
            "train_cost": history.train_loss[-1].double().numpy(),
            "initial_train_cost": history.train_loss[0].double().numpy(),
            "train_curve": history.train_loss.double().numpy(),
            "test_cost": test_cost.mean(1).double().numpy(),
            "test_errors": test_errors.double().numpy(),
        },
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    rows = []
    for r in results:
        sizes = r.values["sizes"]
        paper = PAPER_TABLE1.get((sizes[1], sizes[2])) if config["data"] == "mnist" else None
        rows.append(
            {
                "sizes": sizes,
                "parameters": r.values["parameters"],
                "nets": int(r.arrays["train_cost"].size),
                "initial_train_cost": float(r.arrays["initial_train_cost"].mean()),
                "train_cost": float(r.arrays["train_cost"].mean()),
                "train_cost_summary": summary(r.arrays["train_cost"]),
                "test_cost": float(r.arrays["test_cost"].mean()),
                "test_errors": float(r.arrays["test_errors"].mean()),
                "test_errors_std": float(r.arrays["test_errors"].std(ddof=1)),
                "test_samples": r.values["test_samples"],
                "paper": None if paper is None else dict(zip(("train_cost", "test_cost", "test_errors",
                                                              "test_errors_std"), paper, strict=True)),
            }
        )  # fmt: skip
    first = results[0].values
    save_npz(
        out / "teacher_student.npz",
        **{
            f"s{r.values['sizes'][1]}_{r.values['sizes'][2]}_{k}": a
            for r in results
            for k, a in r.arrays.items()
        },
    )
    save(plot_costs(results), out / "training_cost.png")
    results_json = {
        "data": config["data"],
        "teacher": {
            "sizes": [results[0].values["sizes"][0], *config["teacher"], results[0].values["sizes"][3]],
            "test_errors": first["teacher_test_errors"],
            "test_cost": first["teacher_test_cost"],
        },
        "students": rows,
    }
    fmt = "-".join
    body = [
        f"Teacher {fmt(map(str, results_json['teacher']['sizes']))} trained on the first half of the "
        f"training split; students on the {first['train_samples']} samples of the second half "
        f"of `{config['data']}`: {first['teacher_test_errors']} test errors of {first['test_samples']} "
        "(Sagun et al.: 211 of 10,000 on MNIST). Students: "
        f"{config['nets']} per size, {config['epochs']} epochs of SGD (η = {config['lr']}) on its soft "
        "labels. "
        "Training cost = KL(teacher ‖ student) (zero at a copy of the teacher); test cost and errors against "
        "the true labels.",
        table(
            ["student", "params", "initial cost", "training cost", "std", "test cost", "test errors", "std",
             "paper training cost", "paper test cost", "paper test errors (of 10,000)", "paper std"],
            [[fmt(map(str, w["sizes"])), w["parameters"], w["initial_train_cost"], w["train_cost"],
              w["train_cost_summary"]["std"], w["test_cost"], w["test_errors"], w["test_errors_std"],
              *(["—"] * 4 if w["paper"] is None else list(w["paper"].values()))] for w in rows],
        ),
        "Paper (Table 1, MNIST, students 784-50-50-10 … 784-1200-1200-10): training cost 1.83e-2, 1.72e-2, "
        "1.70e-2, 1.68e-2; test cost 0.169, 0.131, 0.125, 0.118; test errors 326, 276, 265, 257 of 10,000. "
        "The cost never reaches zero even for students as large as the teacher, and larger students land "
        "in a narrower band (Fig. 5).",
        "![training cost](training_cost.png)",
    ]  # fmt: skip
    return results_json, "\n\n".join(body)


def plot_costs(results: list[UnitResult]):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    finals = [r.arrays["train_cost"] for r in results]
    lo, hi = min(v.min() for v in finals), max(v.max() for v in finals)
    if not math.isfinite(hi - lo) or hi <= lo:
        hi = lo + 1e-6
    for r, v in zip(results, finals, strict=True):
        label = "-".join(map(str, r.values["sizes"]))
        ax.hist(v, bins=30, range=(lo, hi), histtype="step", lw=1.5, density=True, label=label)
        curve = r.arrays["train_curve"]
        mean = curve.mean(1)
        line = bx.plot(np.arange(len(mean)), mean, label=label)[0]
        bx.fill_between(np.arange(len(mean)), curve.min(1), curve.max(1), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("final training cost (KL to the teacher)")
    ax.set_ylabel("density")
    ax.set_title("Training cost histogram of students (Sagun Fig. 5)")
    ax.legend(fontsize=8)
    bx.set_yscale("log")
    bx.set_xlabel("epoch")
    bx.set_ylabel("training cost")
    bx.set_title("Training cost, mean and range over students")
    fig.tight_layout()
    return fig


EXPERIMENT = Experiment(
    name="teacher-student",
    description="students of four sizes trained on a teacher's soft labels: cost floor and test error",
    reproduces="Sagun et al. §3.1.3, Table 1, Fig. 5",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    order=210,
)
