"""``limit-cycles``: long SGD trajectories are not Brownian motion; a double well with rotational force.

Thesis §6.3.3, Fig. 6.3: tiny-fc (7×7 inputs, 16 hidden units, 5 classes) is trained with SGD at a fixed
learning rate; after a burn-in the per-epoch weight snapshots x_k are analysed: the FFT of x_{k+1} − x_k
(flat for Brownian motion) and the autocorrelation of x_k against white-noise bands
(:func:`deeplandscape.analysis.trajectory_spectrum`), and the full-gradient norm ‖∇f(x_k)‖, which stays
away from zero. Here the 8×8 digits (classes 0–4) are down-sampled to 7×7 unless ``mnist_path`` is given
(7×7 MNIST with 5 classes, as in the Thesis).

Thesis §6.4, Example 6.43, Fig. 6.4: Φ(x) = (x₁² − 1)²/4 + x₂²/2 and the dynamics
dX = −∇f(X) dt + √2 dB with ∇f = ∇Φ − j, j = λ e^Φ J_ss, J_ss(x) = e^{−(x₁²+x₂²)²/4} (−x₂, x₁). (The
extraction of J_ss is garbled; the exponent is read as (x₁²+x₂²)²/4. Any radial factor gives ∇·J_ss = 0,
which is all that (6.10) needs.) Since ∇·(j e^{−Φ}) = λ ∇·J_ss = 0, the steady state stays ρ_ss ∝ e^{−Φ}
for every λ while the critical points of f move away from (±1, 0) and, for large λ, the deterministic flow
ẋ = −∇f circles the saddle at the origin (a limit cycle). λ ∈ {0, 0.5, 1.5} as in Fig. 6.4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.optimize
import torch
from torch import nn

from deeplandscape import data as dl_data
from deeplandscape import nets
from deeplandscape.analysis import TrajectoryRecorder, trajectory_spectrum
from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.spec import Experiment, MemoryNeed, Param, Unit, UnitResult
from deeplandscape.rundir import save_npz


def potential(x: np.ndarray) -> np.ndarray:
    """Thesis Example 6.43: Φ(x) = (x₁² − 1)²/4 + x₂²/2, for points x of shape (..., 2)."""
    return (x[..., 0] ** 2 - 1) ** 2 / 4 + x[..., 1] ** 2 / 2


def drift(x: np.ndarray, lam: float) -> np.ndarray:
    """−∇f(x) = −∇Φ(x) + λ e^{Φ(x)} J_ss(x), J_ss = e^{−(x₁²+x₂²)²/4} (−x₂, x₁) (Thesis Example 6.43)."""
    x1, x2 = x[..., 0], x[..., 1]
    grad_phi = np.stack([x1 * (x1**2 - 1), x2], axis=-1)
    scale = lam * np.exp(potential(x) - (x1**2 + x2**2) ** 2 / 4)
    return -grad_phi + scale[..., None] * np.stack([-x2, x1], axis=-1)


def simulate_sde(lam: float, particles: int, steps: int, dt: float, seed: int) -> np.ndarray:
    """Euler–Maruyama for dX = −∇f(X) dt + √2 dB from N(0, I) starts; the final positions (particles, 2)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((particles, 2))
    for _ in range(steps):
        x = x + dt * drift(x, lam) + np.sqrt(2 * dt) * rng.standard_normal(x.shape)
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(f"SDE diverged for lambda={lam} (decrease dt={dt})")
    return x


def critical_points(lam: float) -> np.ndarray:
    """Roots of ∇f near (±1, 0) (Newton–Powell from those starts), shape (2, 2)."""
    roots = []
    for start in ((1.0, 0.0), (-1.0, 0.0)):
        sol = scipy.optimize.root(lambda z: -drift(np.asarray(z), lam), start, tol=1e-12)
        roots.append(sol.x if sol.success else np.full(2, np.nan))
    return np.array(roots)


def flow_orbit(lam: float, start: tuple[float, float], time: float, dt: float = 1e-3) -> np.ndarray:
    """The deterministic flow ẋ = −∇f(x) by RK4 from ``start``; the path (n, 2)."""
    x = np.asarray(start, dtype=float)
    path = [x]
    for _ in range(int(time / dt)):
        k1 = drift(x, lam)
        k2 = drift(x + dt / 2 * k1, lam)
        k3 = drift(x + dt / 2 * k2, lam)
        k4 = drift(x + dt * k3, lam)
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        path.append(x)
    return np.array(path)


def gibbs_moments() -> dict[str, float]:
    """E[x₁²], E[x₂²] under ρ_ss ∝ e^{−Φ} by quadrature (the steady state for every λ)."""
    g = np.linspace(-4, 4, 1601)
    w1 = np.exp(-((g**2 - 1) ** 2) / 4)
    return {"x1_sq": float((g**2 * w1).sum() / w1.sum()), "x2_sq": 1.0}


def _trajectory_data(config: dict[str, Any], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if config["mnist_path"]:
        split = dl_data.load_mnist_7x7_5class(config["mnist_path"], seed=seed).train
        return split.x.flatten(1), split.y
    split = dl_data.load_digits(seed=seed).train
    keep = split.y < 5
    return dl_data.downsample(split.x[keep], 7).flatten(1), split.y[keep]


def run_trajectory(config: dict[str, Any], seed: int) -> UnitResult:
    x, y = _trajectory_data(config, seed)
    model = nets.get("tiny-fc", seed=seed)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    gen = torch.Generator().manual_seed(seed)
    recorder = TrajectoryRecorder(model, config["n_weights"], seed=seed, loss_fn=loss_fn, data=(x, y))
    for epoch in range(config["epochs"]):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(config["batch_size"]):
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        recorder.record(epoch + 1)
    traj = recorder.trajectory()
    spec = trajectory_spectrum(traj, burnin=config["burnin"])
    outside = np.abs(spec.acf_mean[1:]) > spec.acf_band99
    lag = int(np.argmin(outside)) if not outside.all() else len(outside)  # lags 1..lag exceed the band
    interior = spec.amplitude_mean[1:]
    q = max(1, interior.size // 4)
    ratio = float(interior[:q].mean() / interior[-q:].mean())
    return UnitResult(
        values={
            "part": "trajectory",
            "params": int(traj.dimension),
            "n_snapshots": int(spec.n_snapshots),
            "autocorrelation_lag_exceeding_band": lag,
            "acf_band99": float(spec.acf_band99),
            "acf_exceed99": float(spec.acf_exceed99),
            "fft_low_to_high_ratio": ratio,
            "fft_exceed99": float(spec.fft_exceed99),
            "grad_norm_final": float(traj.grad_norms[-1]),
            "grad_norm_mean_after_burnin": float(traj.grad_norms[config["burnin"] :].mean()),
        },
        arrays={
            "frequencies": spec.frequencies,
            "amplitude_mean": spec.amplitude_mean,
            "lags": spec.lags,
            "acf_mean": spec.acf_mean,
            "grad_norms": traj.grad_norms,
        },
    )


def run_double_well(config: dict[str, Any], lam: float, seed: int) -> UnitResult:
    pts = simulate_sde(lam, config["particles"], config["sde_steps"], config["dt"], seed)
    crit = critical_points(lam)
    orbit = flow_orbit(lam, (0.1, 0.0), config["flow_time"])
    tail = orbit[len(orbit) // 2 :]
    radius = np.linalg.norm(tail, axis=1)
    speed = np.linalg.norm(drift(tail, lam), axis=1)
    return UnitResult(
        values={
            "part": "double_well",
            "lambda": lam,
            "critical_points": crit.tolist(),
            "critical_point_shift": float(np.nanmax(np.linalg.norm(np.abs(crit) - [1.0, 0.0], axis=1))),
            "sde_mean_x1_sq": float((pts[:, 0] ** 2).mean()),
            "sde_mean_x2_sq": float((pts[:, 1] ** 2).mean()),
            "flow_final_speed": float(speed[-1]),
            "flow_min_radius_late": float(radius.min()),
            "limit_cycle": bool(speed.min() > 1e-3),
        },
        arrays={"points": pts, "orbit": orbit},
    )


PARAMS = {
    "epochs": Param("int", 400, "SGD epochs of tiny-fc", quick=60, paper=100_000, low=2),
    "burnin": Param("int", 200, "epochs discarded before the spectral analysis", quick=20, paper=1000, low=0),
    "lr": Param("float", 0.05, "fixed SGD learning rate", paper=1e-3, low=1e-8),
    "batch_size": Param("int", 64, "mini-batch size", low=1),
    "n_weights": Param("int", 64, "weights recorded per snapshot (random subset)", quick=32, low=1),
    "mnist_path": Param("str", "", "MNIST files (7×7, 5 classes); empty: the 8×8 digits down-sampled"),
    "lambdas": Param("floats", [0.0, 0.5, 1.5], "rotational-force strengths λ of Example 6.43", low=0.0),
    "particles": Param("int", 4000, "SDE particles", quick=1000, paper=20_000, low=10),
    "sde_steps": Param("int", 2000, "Euler–Maruyama steps", quick=500, low=1),
    "dt": Param("float", 5e-3, "SDE step", quick=1e-2, low=1e-6),
    "flow_time": Param("float", 40.0, "time of the deterministic flow from (0.1, 0)", quick=20.0, low=1e-3),
}


def units(config: dict[str, Any]) -> list[Unit]:
    if config["burnin"] >= config["epochs"] - 8:
        raise ValueError(f"burnin must be < epochs − 8 = {config['epochs'] - 8}, got {config['burnin']}")
    return [Unit("trajectory", {"part": "trajectory"})] + [
        Unit(f"double-well-{lam:g}", {"part": "double_well", "lambda": lam}) for lam in config["lambdas"]
    ]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    if unit.params["part"] == "trajectory":
        return run_trajectory(config, seed)
    return run_double_well(config, unit.params["lambda"], seed)


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    traj = next(r for r in results if r.values["part"] == "trajectory")
    wells = [r for r in results if r.values["part"] == "double_well"]
    save_npz(
        out / "limit_cycles.npz",
        **{f"trajectory_{k}": v for k, v in traj.arrays.items()},
        **{f"lambda{w.values['lambda']:g}_{k}": v for w in wells for k, v in w.arrays.items()},
    )
    save(plot_trajectory(traj, config), out / "trajectory_spectrum.png")
    save(plot_wells(wells), out / "double_well.png")
    gibbs = gibbs_moments()
    results_json = {
        **{k: v for k, v in traj.values.items() if k != "part"},
        "double_well": [{k: v for k, v in w.values.items() if k != "part"} for w in wells],
        "gibbs_x1_sq": gibbs["x1_sq"],
    }
    body = "\n\n".join(
        [
            "Thesis §6.3.3 (Fig. 6.3): the FFT of the weight differences is not flat and the autocorrelation "
            "of the weights stays outside the white-noise band for many lags (Brownian motion would give a "
            "flat FFT); ‖∇f‖ stays away from zero after burn-in.",
            table(
                ["snapshots", "lags outside 99% band", "FFT low/high", "‖∇f‖ after burn-in"],
                [
                    [
                        traj.values["n_snapshots"],
                        traj.values["autocorrelation_lag_exceeding_band"],
                        traj.values["fft_low_to_high_ratio"],
                        traj.values["grad_norm_mean_after_burnin"],
                    ]
                ],
            ),
            "![trajectory](trajectory_spectrum.png)",
            "Thesis Example 6.43 (Fig. 6.4): the steady state stays e^(−Φ) (E[x₁²] = "
            f"{gibbs['x1_sq']:.4f}, E[x₂²] = 1) while the critical points of f shift and, for λ = 1.5, "
            "the flow circles the origin.",
            table(
                [
                    "λ",
                    "critical point",
                    "shift",
                    "SDE E[x₁²]",
                    "SDE E[x₂²]",
                    "flow speed at end",
                    "limit cycle",
                ],
                [
                    [
                        w.values["lambda"],
                        "({:.3f}, {:.3f})".format(*w.values["critical_points"][0]),
                        w.values["critical_point_shift"],
                        w.values["sde_mean_x1_sq"],
                        w.values["sde_mean_x2_sq"],
                        w.values["flow_final_speed"],
                        w.values["limit_cycle"],
                    ]
                    for w in wells
                ],
            ),
            "![double well](double_well.png)",
        ]
    )
    return results_json, body


def plot_trajectory(traj: UnitResult, config: dict[str, Any]):
    a = traj.arrays
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(a["frequencies"][1:], a["amplitude_mean"][1:])
    axes[0].axhline(np.sqrt(np.pi) / 2, color="red", ls=":", label="white noise")
    axes[0].set_xlabel("frequency (1/epoch)")
    axes[0].set_title("FFT of x_{k+1} − x_k")
    axes[0].legend(fontsize=8)
    axes[1].plot(a["lags"], a["acf_mean"])
    band = traj.values["acf_band99"]
    axes[1].axhline(band, color="red", ls=":")
    axes[1].axhline(-band, color="red", ls=":")
    axes[1].set_xlabel("lag (epochs)")
    axes[1].set_title("autocorrelation of x_k")
    axes[2].semilogy(np.arange(1, a["grad_norms"].size + 1), a["grad_norms"])
    axes[2].axvline(config["burnin"], color="gray", ls="--")
    axes[2].set_xlabel("epoch")
    axes[2].set_title("‖∇f(x_k)‖")
    fig.tight_layout()
    return fig


def plot_wells(wells: list[UnitResult]):
    fig, axes = plt.subplots(1, len(wells), figsize=(4 * len(wells), 3.8), squeeze=False)
    g = np.linspace(-2.2, 2.2, 200)
    grid = np.stack(np.meshgrid(g, g), axis=-1)
    for ax, w in zip(axes[0], wells, strict=True):
        ax.contour(g, g, potential(grid), levels=15, cmap="Greys", linewidths=0.6)
        pts = w.arrays["points"]
        ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.2)
        ax.plot(*w.arrays["orbit"].T, color="tab:green", lw=1)
        crit = np.array(w.values["critical_points"])
        ax.scatter(crit[:, 0], crit[:, 1], color="red", s=20, zorder=3)
        ax.set_title(f"λ = {w.values['lambda']:g}")
        ax.set_xlim(-2.2, 2.2)
        ax.set_ylim(-2.2, 2.2)
    fig.tight_layout()
    return fig


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    particles, epochs, weights = config["particles"], config["epochs"], config["n_weights"]
    return [
        MemoryNeed(
            "particles", _memory.configurations(particles, 2, _memory.FLOAT64), f"{particles} SDE particles"
        ),
        MemoryNeed(  # the recorded trajectory and its spectral analysis (a few copies)
            "epochs", 4.0 * epochs * weights * _memory.FLOAT64, f"{epochs} snapshots of {weights} weights"
        ),
    ]


EXPERIMENT = Experiment(
    name="limit-cycles",
    description="FFT/autocorrelation of long SGD trajectories of tiny-fc; double well with rotational force",
    reproduces="Thesis §6.3.3 Fig. 6.3, §6.4 Example 6.43 Fig. 6.4",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    order=320,
)
