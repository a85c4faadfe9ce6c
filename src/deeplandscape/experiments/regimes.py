"""``regimes``: the perturbed 3-spin glass in the exponential, polynomial and trivial regimes.

AnnealSGD paper §5.1, eq. (15), Fig. 2 (Thesis §2.4.1): one disorder J, n spins, fields h ~ N(0, ν²I)
with ν = 1/n (exponential), ν = √3(1 − 1/n)^{1/2} (polynomial) and ν = 3 (trivial); R runs of gradient
descent (η = 0.1, stop at ‖∇H̃‖ ≤ 1e-4) per regime; a 2-D t-SNE of the endpoints with the background
coloured by a kernel estimate of H/n; the number of distinct minima (overlap ≥ 1 − ε) and the mean cosine
distance between endpoints (paper: 1.16 exponential, 0.02 trivial).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import descent_params, table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, MemoryNeed, Param, Unit, UnitResult
from deeplandscape.spinglass import PSpinGlass, descend, group_minima, mean_cosine_distance, theory

REGIMES = ("exponential", "polynomial", "trivial")
PAPER_COSINE = {"exponential": 1.16, "trivial": 0.02}

PARAMS = {
    "n": Param("int", 100, "number of spins", quick=50, low=3),
    "runs": Param("int", 2000, "gradient-descent runs per regime", quick=96, paper=20000, low=2),
    **descent_params(),
    "eps": Param("float", 0.01, "same minimum when overlap ≥ 1 − eps", low=1e-9, high=1.0),
    "tsne_points": Param("int", 1000, "endpoints embedded by t-SNE per regime", quick=96, paper=5000, low=10),
}


def field_std(name: str, n: int) -> float:
    """ν of each regime, AnnealSGD paper §5.1 (i)–(iii)."""
    return {"exponential": 1 / n, "polynomial": math.sqrt(3) * (1 - 1 / n) ** 0.5, "trivial": 3.0}[name]


def units(config: dict[str, Any]) -> list[Unit]:
    return [Unit(name, {"name": name}) for name in REGIMES]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    n, name = config["n"], unit.params["name"]
    nu = field_std(name, n)
    # One disorder for all regimes (the paper's "for a given disorder J"): seeded by the run seed.
    hamiltonian = PSpinGlass(n, 3, field_std=nu, seed=config["seed"])
    starts = hamiltonian.random_configurations(config["runs"], seed=seed)
    result = descend(hamiltonian, starts, lr=config["lr"], tol=config["tol"], max_steps=config["max_steps"])
    groups = group_minima(result.sigma, eps=config["eps"], energy=result.energy)
    predicted = theory.regime(n, 3, nu)
    return UnitResult(
        values={
            "name": name,
            "nu": nu,
            "runs": config["runs"],
            "distinct_minima": groups.num_minima,
            "mean_cosine_distance": mean_cosine_distance(result.sigma),
            "mean_energy": float(result.energy_per_spin.double().mean()),
            "converged_fraction": result.converged_fraction,
            "b": predicted.b,
            "n_times_b": -predicted.tau,
            "predicted_regime": predicted.name,
        },
        arrays={"sigma": result.sigma.numpy(), "energy_per_spin": result.energy_per_spin.numpy()},
    )


def embed(sigma: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE of endpoints (cosine metric: points on a sphere)."""
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(sigma) - 1) // 3)))
    tsne = TSNE(2, perplexity=perplexity, metric="cosine", init="random", random_state=seed % 2**31)
    return tsne.fit_transform(sigma.astype(np.float64))


def kernel_background(xy: np.ndarray, values: np.ndarray, grid: int = 120):
    """Nadaraya–Watson estimate of H/n over the embedding plane (bandwidth: Scott's rule)."""
    lo, hi = xy.min(0), xy.max(0)
    pad = 0.05 * (hi - lo + 1e-9)
    gx, gy = np.meshgrid(
        np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid), np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid)
    )
    bandwidth = xy.std(0).mean() * len(xy) ** (-1 / 6) + 1e-12
    d2 = ((np.stack([gx.ravel(), gy.ravel()], 1)[:, None, :] - xy[None]) ** 2).sum(-1)
    w = np.exp(-0.5 * d2 / bandwidth**2) + 1e-300
    return gx, gy, ((w @ values) / w.sum(1)).reshape(grid, grid)


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    rng = np.random.default_rng(config["seed"])
    for ax, result in zip(axes, results, strict=True):
        sigma, energy = result.arrays["sigma"], result.arrays["energy_per_spin"].astype(float)
        pick = rng.choice(len(sigma), size=min(config["tsne_points"], len(sigma)), replace=False)
        xy = embed(sigma[pick], config["seed"])
        gx, gy, bg = kernel_background(xy, energy[pick])
        mesh = ax.contourf(gx, gy, bg, levels=20, cmap="viridis")
        ax.scatter(xy[:, 0], xy[:, 1], s=3, c="white", edgecolors="none", alpha=0.7)
        v = result.values
        ax.set_title(f"{v['name']}: ν = {v['nu']:.3g}, {v['distinct_minima']} minima", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(mesh, ax=ax, label="H/n (kernel estimate)")
    fig.tight_layout()
    save(fig, out / "regimes.png")
    rows = [r.values for r in results]
    body = "\n\n".join(
        [
            f"n = {config['n']}, {config['runs']} runs per regime (paper: 100 spins, 20,000 runs).",
            table(
                [
                    "regime",
                    "ν",
                    "nB",
                    "theory",
                    "distinct minima",
                    "mean cosine distance",
                    "paper",
                    "mean H/n",
                ],
                [
                    [
                        r["name"],
                        r["nu"],
                        r["n_times_b"],
                        r["predicted_regime"],
                        r["distinct_minima"],
                        r["mean_cosine_distance"],
                        PAPER_COSINE.get(r["name"], "—"),
                        r["mean_energy"],
                    ]
                    for r in rows
                ],
            ),
            "![regimes](regimes.png)",
        ]
    )
    return {"n": config["n"], "regimes": rows}, body


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    n, runs = config["n"], config["runs"]
    return [
        MemoryNeed("n", _memory.pspin_couplings(n, 3), f"the couplings of the 3-spin glass at n = {n}"),
        MemoryNeed("runs", _memory.configurations(runs, n), f"{runs} configurations of n = {n} spins"),
    ]


EXPERIMENT = Experiment(
    name="regimes",
    description="minima of the perturbed 3-spin glass in the three field regimes (t-SNE)",
    reproduces="AnnealSGD paper Fig. 2, §5.1; Thesis §2.4.1",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    order=120,
)
