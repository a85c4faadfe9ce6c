"""``sgd-noise``: the diffusion matrix D(x) of mini-batch gradients during training.

Thesis §6.3.2, Fig. 6.1–6.2: D(x) = (1/N) Σ_k ∇f_k ∇f_kᵀ − ∇f ∇fᵀ (Thesis (6.3)) is highly non-isotropic:
its rank is 0.3%–2% of d (small-lenet 1.8%, small-fc 0.6%), its non-zero eigenvalues spread widely
(λ(D) = (0.3 ± 2.11)×10⁻³ for small-lenet, (0.9 ± 18.5)×10⁻³ for small-fc), and the spectrum is almost
the same at 20%, 40% and 100% of training (Remark 6.37). The temperature of SGD is β⁻¹ = η/(2b)
(Thesis (6.6)). Each model is trained with plain SGD at fixed lr and batch size b; at each checkpoint the
spectrum of D on ``noise_samples`` training samples is computed by
:func:`deeplandscape.analysis.diffusion_spectrum` (rank thresholded at λ_max·d·machine-ε, the numpy rule
the Thesis uses).

Models (``models``, comma separated): ``fc-digits`` (small-fc layout, 64 → h → BN → ReLU → 10, on the 8×8
digits) and ``lenet-digits`` (a narrow small-lenet-bn layout on the 8×8 digits) at quick/default;
``small-lenet-bn`` and ``small-fc`` (7×7 MNIST) at paper scale (``mnist_path``; nothing is downloaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeplandscape import data as dl_data
from deeplandscape import nets
from deeplandscape.analysis import diffusion_spectrum, sgd_temperature
from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, MemoryNeed, Param, Unit, UnitResult, split_names
from deeplandscape.rundir import save_npz

MODELS = ("fc-digits", "lenet-digits", "small-lenet-bn", "small-fc")
# Thesis Fig. 6.1 (MNIST): rank in % of d and the eigenvalue mean ± std.
PAPER = {
    "small-lenet-bn": {"rank_percent": 1.8, "eig_mean": 0.3e-3, "eig_std": 2.11e-3},
    "small-fc": {"rank_percent": 0.6, "eig_mean": 0.9e-3, "eig_std": 18.5e-3},
}


def network(name: str, config: dict[str, Any], seed: int) -> nn.Module:
    """The network ``name`` (one of MODELS)."""
    if name == "fc-digits":
        return nets.get("small-fc", seed=seed, hidden=config["fc_hidden"], in_features=64)
    if name == "lenet-digits":
        return nets.get(
            "small-lenet-bn",
            seed=seed,
            channels=(4, 8),
            hidden=32,
            kernel=3,
            pools=(1, 2),
            image_size=8,
            conv_dropout=0.0,
            fc_dropout=0.0,
        )
    if name in ("small-lenet-bn", "small-fc"):
        return nets.get(name, seed=seed)
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")


def build(name: str, config: dict[str, Any], seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The network ``name`` (one of MODELS) and its training inputs and labels."""
    model = network(name, config, seed)
    if name in ("fc-digits", "lenet-digits"):
        split = dl_data.load_digits(seed=seed).train
        return model, (split.x.flatten(1) if name == "fc-digits" else split.x), split.y
    split = dl_data.load_mnist(config["mnist_path"] or None, seed=seed).train
    return model, (dl_data.downsample(split.x, 7).flatten(1) if name == "small-fc" else split.x), split.y


PARAMS = {
    "models": Param(
        "str",
        "fc-digits,lenet-digits",
        f"comma-separated networks among {', '.join(MODELS)}",
        quick="fc-digits",
        paper="small-lenet-bn,small-fc",
    ),
    "epochs": Param("int", 30, "SGD epochs", quick=4, paper=20, low=1),
    "lr": Param("float", 0.1, "SGD learning rate η (fixed)", low=1e-8),
    "batch_size": Param("int", 32, "mini-batch size b", paper=128, low=1),
    "fc_hidden": Param("int", 32, "hidden units of fc-digits", quick=16, low=1),
    "noise_samples": Param("int", 512, "samples N over which D(x) is computed", quick=64, paper=5000, low=2),
    "checkpoints": Param(
        "floats", [0.2, 0.4, 1.0], "fractions of training at which D(x) is computed", low=0.0
    ),
    "mnist_path": Param("str", "", "MNIST files for the paper-scale models (IDX dir or mnist.pkl.gz)"),
}


def units(config: dict[str, Any]) -> list[Unit]:
    names = split_names(config, "models", MODELS)
    if any(not 0 < c <= 1 for c in config["checkpoints"]):
        raise ValueError(f"checkpoints must lie in (0, 1], got {config['checkpoints']!r}")
    return [Unit(m, {"name": m}) for m in names]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    name = unit.params["name"]
    model, x, y = build(name, config, seed)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    b = config["batch_size"]
    steps_per_epoch = -(-len(x) // b)
    total = config["epochs"] * steps_per_epoch
    marks = sorted({max(1, round(c * total)) for c in config["checkpoints"]})
    noise_idx = torch.randperm(len(x), generator=gen)[: config["noise_samples"]]
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    checkpoints, arrays, step = [], {}, 0
    while step < total:
        for idx in torch.randperm(len(x), generator=gen).split(b):
            model.train()
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {float(loss)} at step {step} (sgd-noise)")
            loss.backward()
            opt.step()
            step += 1
            if step in marks:
                spec = diffusion_spectrum(model, loss_fn, (x[noise_idx], y[noise_idx]))
                checkpoints.append(
                    {
                        "fraction": step / total,
                        "step": step,
                        "rank": int(spec.rank),
                        "rank_fraction": float(spec.relative_rank),
                        "eig_mean": float(spec.mean),
                        "eig_std": float(spec.std),
                        "train_loss": float(loss.detach()),
                    }
                )
                arrays[f"eig_{len(checkpoints) - 1}"] = spec.eigenvalues.double().numpy()
            if step >= total:
                break
    temp = sgd_temperature(config["lr"], b, len(x))
    return UnitResult(
        values={
            "name": name,
            "params": sum(p.numel() for p in model.parameters()),
            "noise_samples": len(noise_idx),
            "temperature": float(temp.with_replacement),
            "checkpoints": checkpoints,
        },
        arrays=arrays,
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    save_npz(
        out / "sgd_noise.npz", **{f"{r.values['name']}_{k}": v for r in results for k, v in r.arrays.items()}
    )
    save(plot(results), out / "sgd_noise.png")
    models = [dict(r.values) for r in results]
    rows = [
        [
            m["name"],
            m["params"],
            c["fraction"],
            100 * c["rank_fraction"],
            c["eig_mean"],
            c["eig_std"],
            m["temperature"],
        ]
        for m in models
        for c in m["checkpoints"]
    ]
    rows += [
        [f"Thesis {k} (Fig. 6.1)", "", 1.0, v["rank_percent"], v["eig_mean"], v["eig_std"], ""]
        for k, v in PAPER.items()
    ]
    body = "\n\n".join(
        [
            "Thesis §6.3.2: D(x) has a rank of 0.3%–2% of d, widely spread non-zero eigenvalues, and nearly "
            "the same spectrum at 20%, 40% and 100% of training. Temperature β⁻¹ = η/(2b) (Thesis (6.6)).",
            table(["model", "params", "training", "rank % of d", "eig mean", "eig std", "η/(2b)"], rows),
            "![D(x)](sgd_noise.png)",
        ]
    )
    return {"models": models}, body


def plot(results: list[UnitResult]):
    fig, axes = plt.subplots(1, len(results), figsize=(4.5 * len(results), 3.4), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        cps = r.values["checkpoints"]
        for i, c in enumerate(cps):
            eig = np.sort(np.abs(r.arrays[f"eig_{i}"]))[::-1]
            shade = 0.75 * (1 - (i + 1) / len(cps))
            ax.semilogy(
                np.arange(1, eig.size + 1), eig + 1e-30, color=str(shade), label=f"{c['fraction']:.0%}"
            )
        ax.set_title(f"{r.values['name']} (d = {r.values['params']})", fontsize=9)
        ax.set_xlabel("eigenvalue index")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("|λ(D)|")
    fig.tight_layout()
    return fig


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    needs = []
    for name in split_names(config, "models", MODELS):
        d = _memory.parameter_count(lambda name=name: network(name, config, 0))
        samples = config["noise_samples"]  # D(x): N per-sample gradients (twice) and the Gram or dense matrix
        need = (2.0 * samples * d + min(samples, d) ** 2) * _memory.FLOAT32
        needs.append(MemoryNeed("noise_samples", need, f"D(x) of {name} (d = {d}) from {samples} gradients"))
        if name == "fc-digits":
            needs.append(MemoryNeed("fc_hidden", 8.0 * d * _memory.FLOAT32, f"training {name} (d = {d})"))
    return needs


EXPERIMENT = Experiment(
    name="sgd-noise",
    description="spectrum, rank, mean and std of the diffusion matrix D(x) at 20/40/100% of training",
    reproduces="Thesis §6.3.2, Fig. 6.1–6.2",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    order=310,
)
