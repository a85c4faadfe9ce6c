"""``hessian-spectrum``: the Hessian spectrum at the end of training of small networks.

Thesis §3.3.1, Fig. 3.1 and 3.4: at the end of training, the Hessian ∇²f(x) of small networks has a large
peak at zero (≈ 94% of the eigenvalues of small-LeNet have |λ| < 1e-4), a long positive tail (λ_max ≈ 40)
and a short negative one (λ_min ≈ −0.46). Each model is trained with Adam, then its spectrum is computed
exactly (dense ``torch.func`` Hessian + ``eigvalsh``) when d ≤ ``max_exact``, else estimated by stochastic
Lanczos quadrature (extremes by Lanczos, near-zero fractions from the quadrature nodes, which resolve the
bulk only coarsely).

Models (``models`` parameter, comma separated):

- ``fc-digits``: smallfc (Thesis §3.3.1, 784 → h → 10) on the 8×8 digits, h = ``fc_hidden``;
- ``lenet-digits``: small-lenet's layout with 3×3 kernels and narrow layers on the 8×8 digits;
- ``lstm-chars``: char-lstm (Thesis §3.3.1) with ``lstm_hidden`` units on generated text;
- ``small-lenet``, ``smallfc``: the paper's networks on MNIST (``mnist_path``; nothing is downloaded);
- ``char-lstm``: the paper's 48-unit char-LSTM on 256 lines of 32 generated characters.

The Fisher diagonal (``fisher_model``; Thesis §3.3.1 (iv), Fig. 3.4 (C)): for allcnn (≈ 1.67 M weights) the
Hessian is out of reach and the Thesis uses instead the diagonal of the empirical Fisher information,
``diag I = E(g²) − (E g)²`` over the per-sample gradients g, as a proxy for the Hessian's eigenvalues
(≈ 95% of its entries below 1e-5 at the end of training). ``fisher_model`` = ``allcnn`` or
``small-allcnn`` (Thesis §6.3.1, 26,982 weights) is trained with Adam (``lr``, ``fisher_batch_size``,
``fisher_epochs``) on ``fisher_samples`` images and its Fisher diagonal computed exactly from per-sample
gradients on those images (:func:`deeplandscape.analysis.fisher_diagonal`, batch norm and dropout in eval
mode) rather than from Adam's running moments. The images are CIFAR-10 (GCN + ZCA) when ``cifar10_path``
points at the python batches, otherwise a generated stand-in of the same shape (:func:`cifar_standin`);
the report says which. Its entry in ``models`` has ``method = "fisher-diagonal"``, ``lambda_max``/
``lambda_min`` the largest/smallest diagonal entries (≥ 0), and ``near_zero_fraction`` also at the
Thesis's threshold 1e-5.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape import data as dl_data
from deeplandscape import nets
from deeplandscape.analysis import HessianOperator, exact_hessian, fisher_diagonal, spectral_density
from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, MemoryNeed, Param, Unit, UnitResult, split_names
from deeplandscape.rundir import save_npz

MODELS = ("fc-digits", "lenet-digits", "lstm-chars", "small-lenet", "smallfc", "char-lstm")
FISHER_MODELS = ("none", "small-allcnn", "allcnn")
THRESHOLDS = (1e-4, 1e-2)
FISHER_THRESHOLDS = (1e-5, 1e-4, 1e-2)  # Thesis Fig. 3.4 (C) counts |λ| ≤ 1e-5 for allcnn
# Thesis §3.3.1 / Fig. 3.1: small-LeNet ≈ 94% |λ| < 1e-4, λ_max ≈ 40, λ_min ≈ −0.46.
PAPER = {"small-lenet": {"near_zero_1e-4": 0.94, "lambda_max": 40.0, "lambda_min": -0.46}}
PAPER_ALLCNN_NEAR_ZERO_1E5 = 0.95  # Thesis Fig. 3.4 (C): ≈ 95% of the Fisher diagonal of allcnn ≤ 1e-5


class _SequenceCrossEntropy(nn.Module):
    """Cross-entropy averaged over all (batch, time) positions of (B, T, V) logits and (B, T) targets."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def network(name: str, config: dict[str, Any], seed: int) -> nn.Module:
    """The network ``name`` (one of MODELS)."""
    if name == "fc-digits":
        return nets.get("smallfc", seed=seed, hidden=config["fc_hidden"], in_features=64)
    if name == "lenet-digits":  # 8 → conv3 → 6 → conv3 → 4 → pool2 → 2
        return nets.get(
            "small-lenet", seed=seed, channels=(4, 8), hidden=32, kernel=3, pools=(1, 2), image_size=8
        )
    if name in ("lstm-chars", "char-lstm"):
        return nets.get("char-lstm", seed=seed, hidden=config["lstm_hidden"] if name == "lstm-chars" else 48)
    if name in ("small-lenet", "smallfc"):
        return nets.get(name, seed=seed)
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")


def build(
    name: str, config: dict[str, Any], seed: int
) -> tuple[nn.Module, nn.Module, torch.Tensor, torch.Tensor]:
    """The network ``name`` (one of MODELS), its loss and its training inputs/targets (first ``samples``)."""
    n = config["samples"]
    model = network(name, config, seed)
    if name in ("fc-digits", "lenet-digits"):
        split = dl_data.load_digits(seed=seed).train
        x, y = split.x[:n], split.y[:n]
        return model, nn.CrossEntropyLoss(), (x.flatten(1) if name == "fc-digits" else x), y
    if name in ("lstm-chars", "char-lstm"):
        split = dl_data.load_chars(seed=seed).train
        return model, _SequenceCrossEntropy(), split.x[:n], split.y[:n]
    split = dl_data.load_mnist(config["mnist_path"] or None, seed=seed).train
    x, y = split.x[:n], split.y[:n]
    return model, nn.CrossEntropyLoss(), (x.flatten(1) if name == "smallfc" else x), y


def train(
    model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, config: dict, seed: int
) -> float:
    """Adam (Thesis §3.3.1 trains small-LeNet and char-lstm with Adam) on mini-batches; the final loss."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    model.train()
    for _ in range(config["epochs"]):
        for idx in torch.randperm(len(x), generator=gen).split(config["batch_size"]):
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        final = float(loss_fn(model(x), y))
    if not np.isfinite(final):
        raise FloatingPointError(f"training loss became {final} (hessian-spectrum, train)")
    return final


def _mode(model: nn.Module) -> str:
    """Forward-over-reverse HVPs, except through LSTMs (no forward-mode AD for the fused LSTM kernel)."""
    return "reverse" if any(isinstance(m, nn.LSTM) for m in model.modules()) else "forward"


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues (exact) or SLQ nodes, their weights (summing to 1), and the Thesis §3.3.1 summary."""

    method: str
    eigenvalues: np.ndarray
    weights: np.ndarray
    near_zero_fraction: dict[str, float]
    lambda_max: float
    lambda_min: float


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one torch (and MKL) thread: MKL's multithreaded float32 symmetric eigensolver
    (``ssyevd`` behind ``torch.linalg.eigvalsh``) does not return the same bits from call to call for the
    same matrix (measured with two threads: λ_min of fc-digits −0.0040326500 or −0.0040326486 at random;
    with one thread always the same), and the same seed must give the same results.json."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def spectrum(
    model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, config: dict, seed: int
) -> Spectrum:
    """The Hessian spectrum of the loss on (x, y): dense when d ≤ max_exact, else SLQ.

    SLQ: each Rademacher probe v gives Lanczos nodes θ_i and weights τ_i with
    Σ_i τ_i g(θ_i) ≈ (1/d) Σ_j g(λ_j); the near-zero fraction is this with g = 1[|λ| < ε], averaged over
    probes. The extreme nodes converge first to the extreme eigenvalues (exact once the steps reach d), so
    λ_max and λ_min are the largest and smallest nodes.
    """
    d = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if d <= config["max_exact"]:
        with one_thread():
            eig = exact_hessian(model, loss_fn, (x, y), max_params=config["max_exact"], mode=_mode(model))
        eig = eig.eigenvalues.double()
        fractions = {f"{t:g}": float((eig.abs() < t).double().mean()) for t in THRESHOLDS}
        weights = np.full(eig.numel(), 1.0 / eig.numel())
        return Spectrum("exact", eig.numpy(), weights, fractions, float(eig.max()), float(eig.min()))
    op = HessianOperator(model, loss_fn, (x, y), mode=_mode(model))
    dens = spectral_density(op, num_probes=config["slq_probes"], num_steps=config["slq_steps"], seed=seed)
    nodes, weights = dens.nodes.double(), dens.weights.double()  # (probes, steps); NaN-padded, weight 0
    finite = torch.isfinite(nodes)
    fractions = {f"{t:g}": float(((nodes.abs() < t) * weights).sum(1).mean()) for t in THRESHOLDS}
    return Spectrum(
        "slq",
        nodes[finite].numpy(),
        (weights[finite] / weights.shape[0]).numpy(),
        fractions,
        float(nodes[finite].max()),
        float(nodes[finite].min()),
    )


PARAMS = {
    "models": Param(
        "str",
        "fc-digits,lenet-digits,lstm-chars",
        f"comma-separated networks among {', '.join(MODELS)}",
        quick="fc-digits",
        paper="small-lenet,smallfc,char-lstm",
    ),
    "samples": Param(
        "int", 256, "training samples (over-parametrized when small)", quick=100, paper=60_000, low=1
    ),
    "epochs": Param("int", 200, "Adam epochs", quick=100, paper=100, low=1),
    "batch_size": Param("int", 128, "mini-batch size", quick=100, low=1),
    "lr": Param("float", 3e-3, "Adam learning rate", paper=1e-3, low=1e-8),
    "fc_hidden": Param("int", 32, "hidden units of fc-digits", quick=6, low=1),
    "lstm_hidden": Param("int", 16, "hidden units of lstm-chars", quick=4, low=1),
    "max_exact": Param(
        "int", 6000, "exact Hessian up to this many parameters, SLQ above", quick=3000, paper=0, low=0
    ),
    "slq_probes": Param("int", 2, "SLQ probe vectors", paper=4, low=1),
    "slq_steps": Param("int", 40, "Lanczos steps per SLQ probe", paper=80, low=2),
    "mnist_path": Param("str", "", "MNIST files for small-lenet/smallfc (IDX dir or mnist.pkl.gz)"),
    "fisher_model": Param(
        "str",
        "allcnn",
        "network for the Fisher diagonal (Thesis §3.3.1 (iv)); none to skip",
        quick="small-allcnn",
        choices=FISHER_MODELS,
    ),
    "fisher_samples": Param(
        "int", 256, "training images of the Fisher-diagonal network", quick=128, paper=45_000, low=1
    ),
    "fisher_epochs": Param(
        "int", 8, "Adam epochs of the Fisher-diagonal network", quick=10, paper=100, low=1
    ),
    "fisher_batch_size": Param("int", 32, "Adam mini-batch of the Fisher-diagonal network", low=1),
    "cifar10_path": Param("str", "", "CIFAR-10 python batches for the Fisher network (else generated data)"),
}


def units(config: dict[str, Any]) -> list[Unit]:
    names = split_names(config, "models", MODELS)
    extra = [] if config["fisher_model"] == "none" else [Unit(f"fisher-{config['fisher_model']}", {})]
    return [Unit(m, {"name": m}) for m in names] + extra


def cifar_standin(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` generated images with CIFAR-10's shape ``(3, 32, 32)`` and 10 classes (a stand-in when the real
    data are absent): class c is a smooth random template ``T_c`` (a 3×4×4 standard normal map upsampled
    bilinearly to 32×32, scaled to unit standard deviation) plus white noise, ``x = T_y + ε``,
    ``ε ~ N(0, I)``, labels uniform on 0…9. Learnable, but not natural images.
    """
    g = torch.Generator().manual_seed(seed)
    templates = F.interpolate(
        torch.randn(10, 3, 4, 4, generator=g), size=(32, 32), mode="bilinear", align_corners=False
    )
    templates = templates / templates.std()
    y = torch.randint(0, 10, (n,), generator=g)
    return templates[y] + torch.randn(n, 3, 32, 32, generator=g), y


def fisher_spectrum(
    model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 32
) -> Spectrum:
    """The diagonal of the empirical Fisher information ``diag I = (1/N) Σ_k g_k² − ḡ²`` (Thesis §3.3.1
    (iv)) of ``model`` (eval mode) on ``(x, y)`` as a :class:`Spectrum`: its d entries with equal weight
    (``weights`` left empty), the fractions below ``FISHER_THRESHOLDS``, the largest and smallest entry.
    Per-sample gradients are formed ``batch_size`` samples at a time (memory ``batch_size × d``).
    """
    batches = list(zip(x.split(batch_size), y.split(batch_size), strict=True))
    diag = fisher_diagonal(model, loss_fn, batches, train=False).diagonal.double()
    fractions = {f"{t:g}": float((diag < t).double().mean()) for t in FISHER_THRESHOLDS}
    return Spectrum(
        "fisher-diagonal", diag.numpy(), np.zeros(0), fractions, float(diag.max()), float(diag.min())
    )


def run_fisher_unit(config: dict[str, Any], seed: int) -> UnitResult:
    """Train ``fisher_model`` with Adam and take the diagonal of its empirical Fisher information on the
    training images (module docstring; Thesis §3.3.1 (iv))."""
    t0 = time.perf_counter()
    name, n = config["fisher_model"], config["fisher_samples"]
    if config["cifar10_path"]:
        train_split = dl_data.load("cifar10", config["cifar10_path"], seed=0).train
        if n > train_split.x.shape[0]:
            raise ValueError(
                f"Invalid fisher_samples: {n} (the CIFAR-10 training split has {train_split.x.shape[0]})"
            )
        x, y, data = train_split.x[:n], train_split.y[:n], "cifar10"
    else:
        x, y = cifar_standin(n, seed)
        data = "generated stand-in (cifar_standin)"
    model = nets.get(name, seed=seed)
    loss_fn = nn.CrossEntropyLoss()
    batch = config["fisher_batch_size"]
    final_loss = train(
        model, loss_fn, x, y, {**config, "epochs": config["fisher_epochs"], "batch_size": batch}, seed
    )
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).double().mean())
    spec = fisher_spectrum(model, loss_fn, x, y, batch_size=batch)
    return UnitResult(
        values={
            "name": name,
            "params": int(spec.eigenvalues.size),
            "samples": n,
            "data": data,
            "train_loss": final_loss,
            "train_accuracy": accuracy,
            "near_zero_fraction": spec.near_zero_fraction,
            "lambda_max": spec.lambda_max,
            "lambda_min": spec.lambda_min,
            "fisher_trace": float(spec.eigenvalues.sum()),
            "method": spec.method,
            "wall_seconds": time.perf_counter() - t0,
        },
        arrays={"eigenvalues": spec.eigenvalues.astype(np.float32), "weights": spec.weights},
    )


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    if unit.key.startswith("fisher-"):
        return run_fisher_unit(config, seed)
    name = unit.params["name"]
    t0 = time.perf_counter()
    model, loss_fn, x, y = build(name, config, seed)
    final_loss = train(model, loss_fn, x, y, config, seed)
    spec = spectrum(model, loss_fn, x, y, config, seed)
    return UnitResult(
        values={
            "name": name,
            "params": sum(p.numel() for p in model.parameters()),
            "samples": len(x),
            "train_loss": final_loss,
            "near_zero_fraction": spec.near_zero_fraction,
            "lambda_max": spec.lambda_max,
            "lambda_min": spec.lambda_min,
            "method": spec.method,
            "wall_seconds": time.perf_counter() - t0,
        },
        arrays={"eigenvalues": spec.eigenvalues, "weights": spec.weights},
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    save_npz(
        out / "hessian_spectrum.npz",
        **{f"{r.values['name']}_eigenvalues": r.arrays["eigenvalues"] for r in results},
    )
    save(plot(results), out / "hessian_spectrum.png")
    models = [dict(r.values) for r in results]
    rows = [
        [
            m["name"],
            m["params"],
            m["method"],
            m["train_loss"],
            m["near_zero_fraction"]["0.0001"],
            m["near_zero_fraction"]["0.01"],
            m["lambda_max"],
            m["lambda_min"],
        ]
        for m in models
    ]
    p = PAPER["small-lenet"]
    rows.append(
        [
            "Thesis small-lenet (Fig. 3.1)",
            47_658,
            "exact",
            "",
            p["near_zero_1e-4"],
            "",
            p["lambda_max"],
            p["lambda_min"],
        ]
    )
    body = "\n\n".join(
        [
            "Thesis §3.3.1: most eigenvalues are near zero, a long positive tail, a short negative tail "
            "(Fig. 3.4: the same for smallfc and char-lstm).",
            table(
                ["model", "params", "method", "train loss", "|λ|<1e-4", "|λ|<1e-2", "λ_max", "λ_min"], rows
            ),
            "![spectrum](hessian_spectrum.png)",
        ]
    )
    fisher = [m for m in models if m["method"] == "fisher-diagonal"]
    if fisher:
        body += "\n\n" + fisher_report(fisher)
    return {"models": models}, body


def fisher_report(fisher: list[dict[str, Any]]) -> str:
    """The Fisher-diagonal section of the report, with the Thesis's allcnn value beside ours."""
    rows = [
        [m["name"], m["params"], m["data"], m["samples"], m["train_loss"], m["train_accuracy"],
         m["near_zero_fraction"]["1e-05"], m["near_zero_fraction"]["0.0001"], m["near_zero_fraction"]["0.01"],
         m["lambda_max"], m["lambda_min"]]
        for m in fisher
    ]  # fmt: skip
    rows.append(
        ["Thesis allcnn (Fig. 3.4 C)", 1_667_166, "CIFAR-10", 45_000, "", "", PAPER_ALLCNN_NEAR_ZERO_1E5,
         "", "", "", ""]
    )  # fmt: skip
    return "\n\n".join(
        [
            "Fisher diagonal ``diag I = E(g²) − (E g)²`` (Thesis §3.3.1 (iv): the Hessian proxy for allcnn, "
            "≈ 95% of the entries below 1e-5), from exact per-sample gradients on the training images "
            "after Adam. Data: "
            + "; ".join(f"`{m['name']}` on {m['data']}" for m in fisher)
            + ". The entries are variances, so λ_min ≥ 0; a generated stand-in is easier than CIFAR-10 "
            "and the fractions need not match the Thesis's.",
            table(
                [
                    "model",
                    "params",
                    "data",
                    "samples",
                    "train loss",
                    "train acc.",
                    "≤1e-5",
                    "≤1e-4",
                    "≤1e-2",
                    "max",
                    "min",
                ],
                rows,
            ),
        ]
    )


def plot(results: list[UnitResult]):
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        eig, w = r.arrays["eigenvalues"], r.arrays["weights"]
        w = w if w.size else np.full(eig.size, 1.0 / eig.size)  # the Fisher diagonal: equal weights
        ax.hist(eig, bins=80, weights=w, color="tab:blue", log=True)
        ax.set_title(f"{r.values['name']} (d = {r.values['params']}, {r.values['method']})", fontsize=9)
        ax.set_xlabel("Fisher diagonal entry" if r.values["method"] == "fisher-diagonal" else "eigenvalue")
    axes[0][0].set_ylabel("fraction (log scale)")
    fig.tight_layout()
    return fig


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    needs = []
    for name in split_names(config, "models", MODELS):
        d = _memory.parameter_count(lambda name=name: network(name, config, 0))
        size = {"fc-digits": "fc_hidden", "lstm-chars": "lstm_hidden"}.get(name)
        if size is not None:  # weights, gradients, Adam's two moments and the HVP buffers
            needs.append(MemoryNeed(size, 8.0 * d * _memory.FLOAT32, f"training {name} (d = {d})"))
        if d <= config["max_exact"]:
            what = f"the exact Hessian of {name} (d = {d})"
            needs.append(MemoryNeed("max_exact", _memory.dense_hessian(d), what))
    if config["fisher_model"] != "none":  # the generated stand-in: images and noise of 3 × 32 × 32
        images = config["fisher_samples"]
        what = f"{images} images of 3 × 32 × 32"
        needs.append(MemoryNeed("fisher_samples", 3.0 * images * 3 * 32 * 32 * _memory.FLOAT32, what))
    return needs


EXPERIMENT = Experiment(
    name="hessian-spectrum",
    description="Hessian spectrum at the end of training of small nets, Fisher diagonal of allcnn-sized nets",
    reproduces="Thesis §3.3.1, Fig. 3.1 and 3.4",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    order=300,
)
