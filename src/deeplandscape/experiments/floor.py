"""The floor of the 3-spin glass: where gradient descent from random starts ends, for several sizes n.

Sagun et al. §3.1.1 and Fig. 2; Choromanska et al. §5.1, Fig. 3 (left) and Fig. 8 (top): for each n,
draw one disorder, run projected gradient descent (Thesis §2.4.1) from R uniform starts, and histogram
the final energies H/n against the asymptotic bounds −E_0 (ground state) and −E_∞ (the floor). As n
grows the endpoints concentrate in a narrow band just above −E_0; for small n they scatter. Each
endpoint's index is computed to check that descent stops at minima.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from deeplandscape.rundir import save_figure, save_npz, with_version, write_json, write_text
from deeplandscape.spinglass import PSpinGlass, descend, index, theory


@dataclass(frozen=True)
class FloorConfig:
    sizes: tuple[int, ...] = (25, 50, 100)
    runs: int = 200
    p: int = 3
    lr: float = 0.1
    tol: float = 1e-4
    max_steps: int = 20_000
    seed: int = 0
    index_chunk: int = 100


def floor_size(config: FloorConfig, n: int, seed: int) -> tuple[dict, np.ndarray]:
    """One size: (summary row, final H/n of each run)."""
    hamiltonian = PSpinGlass(n, config.p, seed=seed)
    starts = hamiltonian.random_configurations(config.runs, seed=seed + 1)
    result = descend(hamiltonian, starts, lr=config.lr, tol=config.tol, max_steps=config.max_steps)
    minima = torch.cat(
        [index(hamiltonian, chunk).is_minimum for chunk in result.sigma.split(config.index_chunk)]
    )
    e = result.energy_per_spin.double()
    row = {
        "n": n,
        "runs": config.runs,
        "mean": e.mean().item(),
        "std": e.std().item(),
        "min": e.min().item(),
        "max": e.max().item(),
        "converged_fraction": result.converged_fraction,
        "minima_fraction": minima.double().mean().item(),
        "median_steps": float(result.steps.double().median()),
        "wall_seconds": result.wall_seconds,
    }
    return row, e.numpy()


def plot_floor(energies: dict[int, np.ndarray], p: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e0, einf = theory.e0(p), theory.e_inf(p)
    fig, axes = plt.subplots(len(energies), 1, figsize=(6, 1.8 * len(energies)), sharex=True)
    axes = np.atleast_1d(axes)
    lo = min(min(v.min() for v in energies.values()), -e0) - 0.02
    hi = max(max(v.max() for v in energies.values()), -einf) + 0.02
    for ax, (n, values) in zip(axes, energies.items(), strict=True):
        ax.hist(values, bins=40, range=(lo, hi), color="tab:blue", alpha=0.8)
        ax.axvline(-e0, color="black", lw=1.5, label="−E₀ (ground state)")
        ax.axvline(-einf, color="tab:red", lw=1.5, label="−E∞ (floor)")
        ax.set_ylabel(f"n = {n}")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[0].set_title(f"Final H/n of gradient descent, {p}-spin glass")
    axes[-1].set_xlabel("H/n")
    fig.tight_layout()
    return fig


def run_floor(config: FloorConfig, out: Path) -> dict:
    """Run every size, write ``config.json``, ``results.json``, ``floor.png``, ``floor.npz`` and
    ``report.md`` into ``out``; return the results."""
    out = Path(out)
    write_json(out / "config.json", with_version({"experiment": "floor", **asdict(config)}))
    rows, energies = [], {}
    for i, n in enumerate(config.sizes):
        row, e = floor_size(config, n, config.seed + 1000 * i)
        rows.append(row)
        energies[n] = e
    results = {"e0": theory.e0(config.p), "e_inf": theory.e_inf(config.p), "sizes": rows}
    write_json(out / "results.json", results)
    save_npz(out / "floor.npz", **{f"n{n}": v for n, v in energies.items()})
    save_figure(out / "floor.png", plot_floor(energies, config.p))
    lines = [
        f"# Floor of the {config.p}-spin glass",
        "",
        "Gradient descent on the sphere from uniform starts (Sagun Fig. 2, Choromanska Fig. 3).",
        f"Theory (n → ∞): −E₀ = {-results['e0']:.4f}, −E∞ = {-results['e_inf']:.4f} "
        "(Sagun et al. §2.1.1: −1.657 and −1.633).",
        "",
        "| n | runs | mean H/n | std | min | max | converged | minima |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['n']} | {r['runs']} | {r['mean']:.4f} | {r['std']:.4f} | {r['min']:.4f} | {r['max']:.4f} "
        f"| {r['converged_fraction']:.2f} | {r['minima_fraction']:.2f} |"
        for r in rows
    ]
    lines += ["", "![floor](floor.png)", ""]
    write_text(out / "report.md", "\n".join(lines))
    return results
