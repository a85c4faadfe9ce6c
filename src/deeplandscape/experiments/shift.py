"""``shift``: how far a small external field moves the minima of the 3-spin glass.

AnnealSGD paper §4.5, Thm 5 and Appendix B, Thm A-5: for a local minimum σ of H and the perturbed
Hamiltonian H̃ = H − h·σ with a field of constant strength ν, a minimum σ̃ of H̃ lies within O(n^{−1/3})
of σ (Thm A-5: a ball of radius n^{−α}, α ∈ (1/4, 1/3), in the normalization of the unit sphere) and the
normalized energy changes by at most 2ν.

**The theorem's hypotheses.** Thm A-5 is proved (after Subag and Zeitouni 2015) for the minima whose
energy lies within O(1) of m_n = −nE₀ + O(log n) (eq. (A-12)) and whose Hessian lies in √n·V(δ),
δ < p(E₀ − E∞) (Lemmas A-2, A-4): in our normalization, eigenvalues of the Riemannian Hessian above
pE₀ − 2√(p(p−1)) − δ = p(E₀ − E∞) − δ > 0 (as pE∞ = 2√(p(p−1))). These are deep minima with a gapped
Hessian. Gradient descent from random starts, which is how this experiment (like the papers' §5.1) finds
minima, ends instead just above the floor −E∞ (see ``floor``), where the Hessian's spectrum touches 0: its
smallest eigenvalue λ_min shrinks like n^(−2/3). We therefore measure, at every minimum, its energy and
λ_min, and count it as within the hypotheses only when H/n < −E∞ and λ_min ≥ p(E₀ − E∞)/2 (half the gap
of a minimum at −E₀). The theorem's claims are decided on those minima alone; where too few exist (the
rule for n ≥ 100), they are ``not decidable`` with that reason. What the field does to the minima that
descent does find is reported as a question beyond the papers.

Protocol: descend to minima σ of H, switch the field on (same disorder), descend from σ to σ̃, and fit the
exponent of the median of ‖σ − σ̃‖/√n against n. Descent from a marginal minimum sometimes slides to a
different minimum (a "jump", ‖σ − σ̃‖/√n > 0.5): the median, not the mean, carries the fit.
``scaling="appendix"`` uses the appendix's field h/√n with h ~ N(0, ν²I) (eq. (A-6), under which the
theorem is stated for constant ν); ``scaling="eq7"`` uses eq. (7)'s h ~ N(0, ν²I) directly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplandscape.experiments import _memory
from deeplandscape.experiments._common import descent_params, endpoint_curvature
from deeplandscape.experiments._landscape import one_thread
from deeplandscape.experiments._plot import plt, save
from deeplandscape.experiments.claims import (
    Claim,
    NotChecked,
    RunData,
    Statistic,
    Undecidable,
    Verdict,
    bootstrap,
    decide,
    require_gradient_checked,
)
from deeplandscape.experiments.spec import (
    Diagnostic,
    Experiment,
    Figure,
    MemoryNeed,
    Param,
    Table,
    Unit,
    UnitResult,
)
from deeplandscape.rundir import save_npz
from deeplandscape.spinglass import PSpinGlass, descend, theory

JUMP = 0.5  # ‖σ − σ̃‖/√n beyond which descent left the basin (the sphere's diameter is 2)
ALPHA = (0.25, 1 / 3)  # Thm A-5: radius n^(−α), α ∈ (1/4, 1/3)
MIN_IN_HYPOTHESES = 5  # minima per size within the hypotheses needed to fit their distances
P = 3

PARAMS = {
    "sizes": Param("ints", [25, 50, 100, 200], "numbers of spins n", quick=[20, 40, 60], low=3),
    "minima": Param("int", 32, "minima per size", quick=8, reference=48, paper=200, low=1),
    "nu": Param("float", 0.5, "field strength ν", low=0.0),
    "scaling": Param("str", "appendix", "field normalization", choices=("appendix", "eq7")),
    **descent_params(),
    "index_chunk": Param("int", 100, "minima per batched Hessian", low=1),
}


def gap_threshold() -> float:
    """Half the Hessian's spectral gap at a minimum at −E₀: p(E₀ − E∞)/2."""
    return P * (theory.e0(P) - theory.e_inf(P)) / 2


def units(config: dict[str, Any]) -> list[Unit]:
    return [Unit(f"n{n}", {"n": n}) for n in config["sizes"]]


def linear_response(
    hamiltonian: PSpinGlass, sigma: torch.Tensor, field: torch.Tensor, chunk: int
) -> np.ndarray:
    """‖ξ‖/√n for the critical point ξ of the quadratic model of H at each minimum σ plus the linear field
    term, AnnealSGD paper eq. (A-9) (Y_σ = −n^{−1/2}(∇²f_σ)^{−1}∇f̄_σ, in the unit-sphere coordinates of
    (A-7)); in the coordinates of S^{n−1}(√n): Hess_M H(σ) ξ = P_σ h, solved in a tangent basis. Thm A-5
    bounds ‖Y_σ‖ through the smallest eigenvalue of the Hessian (‖Y_σ‖ ≤ (c/n)‖h‖), which is why its
    hypotheses ask for a gap."""

    out = []
    with one_thread():  # the same bits on every call
        for part in sigma.split(chunk):
            frame = hamiltonian._tangent_frame(part)  # (B, n, n − 1), orthonormal
            hess = hamiltonian.riemannian_hessian(part, basis="tangent")
            xi = torch.linalg.solve(hess.double(), (frame.transpose(1, 2) @ field).double())
            out.append(xi.norm(dim=1).numpy() / math.sqrt(hamiltonian.n))
    return np.concatenate(out)


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    n = unit.params["n"]
    nu = config["nu"] / math.sqrt(n) if config["scaling"] == "appendix" else config["nu"]
    plain = PSpinGlass(n, P, seed=seed)
    perturbed = PSpinGlass(n, P, field_std=nu, seed=seed)  # same disorder J
    kwargs = {"lr": config["lr"], "tol": config["tol"], "max_steps": config["max_steps"]}
    minima = descend(plain, plain.random_configurations(config["minima"], seed=seed + 1), **kwargs)
    moved = descend(perturbed, minima.sigma, **kwargs)
    before = endpoint_curvature(plain, minima.sigma, config["index_chunk"])
    after = endpoint_curvature(perturbed, moved.sigma, config["index_chunk"])
    distance = (moved.sigma - minima.sigma).double().norm(dim=1) / math.sqrt(n)
    predicted = linear_response(plain, minima.sigma, perturbed.field, config["index_chunk"])
    return UnitResult(
        values={"n": n, "field_std": nu},
        arrays={
            "energy": minima.energy_per_spin.double().numpy(),
            "lambda_min": before["lambda_min"],
            "index": before["index"],
            "grad_norm": before["grad_norm"],
            "moved_index": after["index"],
            "moved_grad_norm": after["grad_norm"],
            "distance": distance.numpy(),
            "predicted_distance": predicted,
            "energy_change": (moved.energy_per_spin - minima.energy_per_spin).double().abs().numpy(),
        },
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    einf, gap = theory.e_inf(P), gap_threshold()
    rows, arrays = [], {}
    for r in results:
        a, n = r.arrays, r.values["n"]
        arrays.update({f"{key}_n{n}": value for key, value in a.items()})
        inside = (a["energy"] < -einf) & (a["lambda_min"] >= gap) & (a["index"] == 0)
        stay = a["distance"] <= JUMP
        rows.append(
            {
                "n": n,
                "field_std": r.values["field_std"],
                "minima": int(a["energy"].size),
                "index_zero": int((a["index"] == 0).sum()),
                "moved_index_zero": int((a["moved_index"] == 0).sum()),
                "max_grad_norm": float(max(a["grad_norm"].max(), a["moved_grad_norm"].max())),
                "median_energy": float(np.median(a["energy"])),
                "min_energy": float(a["energy"].min()),
                "median_lambda_min": float(np.median(a["lambda_min"])),
                "in_hypotheses": int(inside.sum()),
                "median_distance": float(np.median(a["distance"])),
                "median_predicted_distance": float(np.median(a["predicted_distance"])),
                "median_distance_in_hypotheses": float(np.median(a["distance"][inside]))
                if inside.any()
                else None,
                "jump_fraction": float(1 - stay.mean()),
                "max_energy_change": float(a["energy_change"].max()),
                "max_energy_change_in_hypotheses": float(a["energy_change"][inside].max())
                if inside.any()
                else None,
            }
        )
    save_npz(out / "shift.npz", **arrays)
    save(plot_shift(rows, arrays, config), out / "shift.png")
    return {
        "nu": config["nu"],
        "scaling": config["scaling"],
        "tol": config["tol"],
        "e0": theory.e0(P),
        "e_inf": einf,
        "gap_threshold": gap,
        "sizes": rows,
    }


def plot_shift(rows: list[dict[str, Any]], arrays: dict[str, np.ndarray], config: dict[str, Any]):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    ns = np.array([r["n"] for r in rows], dtype=float)
    dist = np.array([r["median_distance"] for r in rows])
    left.loglog(ns, dist, "o-", label="measured (median over the minima)")
    predicted = [r["median_predicted_distance"] for r in rows]
    left.loglog(ns, predicted, "s--", label="linear response, eq. (A-9) (median)")
    left.loglog(ns, dist[0] * (ns / ns[0]) ** (-1 / 3), "k--", lw=1, label="n^(−1/3) (Thm 5)")
    left.set(
        xlabel="n",
        ylabel="median ‖σ − σ̃‖/√n",
        title=f"Shift of the minima, ν = {config['nu']} ({config['scaling']})",
    )
    left.set_xticks(ns, [str(int(n)) for n in ns])
    left.minorticks_off()
    left.legend(fontsize=8)
    for r in rows:
        n = r["n"]
        right.scatter(arrays[f"energy_n{n}"], arrays[f"lambda_min_n{n}"], s=10, label=f"n = {n}")
    right.axvline(-theory.e_inf(P), color="tab:red", lw=1, label="−E∞")
    right.axvline(-theory.e0(P), color="black", lw=1, label="−E₀")
    right.axhline(gap_threshold(), color="gray", lw=1, ls="--", label="p(E₀ − E∞)/2")
    right.set_yscale("log")
    right.set(
        xlabel="H/n of the minimum σ",
        ylabel="λ_min of the Riemannian Hessian",
        title="Thm A-5's hypotheses: left of −E∞ and above the dashed line",
    )
    right.title.set_fontsize(9)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def memory(config: dict[str, Any]) -> list[MemoryNeed]:
    n, minima = max(config["sizes"]), config["minima"]
    chunk = min(config["index_chunk"], minima)
    return [
        MemoryNeed(  # two Hamiltonians: without and with the field
            "sizes", 2 * _memory.pspin_couplings(n, P), f"the couplings of two 3-spin glasses at n = {n}"
        ),
        MemoryNeed("minima", _memory.configurations(minima, n), f"{minima} configurations of n = {n} spins"),
        MemoryNeed(
            "index_chunk", _memory.batched_hessians(chunk, n), f"the Hessians of {chunk} minima (n = {n})"
        ),
    ]


# ---------------------------------------------------------------------------------------------- claims


def _hypotheses(run: RunData) -> list[dict[str, Any]]:
    """The sizes, after the guards: every point measured to be critical, and enough minima within the
    theorem's hypotheses at every size (else :class:`Undecidable`, naming what the minima are)."""
    r = run.results
    rows = r["sizes"]
    require_gradient_checked(
        "minima and perturbed minima", max(x["max_grad_norm"] for x in rows), 2 * r["tol"]
    )
    short = [x for x in rows if x["in_hypotheses"] < MIN_IN_HYPOTHESES]
    if short:
        where = "; ".join(
            f"n = {x['n']}: {x['in_hypotheses']} of {x['minima']}, median H/n {x['median_energy']:.4f}, "
            f"median λ_min {x['median_lambda_min']:.3g}"
            for x in short
        )
        raise Undecidable(
            "outside the theorem's hypotheses: gradient descent finds minima just above the floor −E∞ = "
            f"{-r['e_inf']:.4f} with a nearly degenerate Hessian, not near −E₀ = {-r['e0']:.4f} with a "
            "gapped "
            f"one (H/n < −E∞ and λ_min ≥ {r['gap_threshold']:.3g}); minima within the hypotheses: {where}",
            guard=True,
        )
    return rows


def _log_slope(groups: tuple[np.ndarray, ...], sizes: np.ndarray, axis: int) -> np.ndarray:
    y = np.log(np.stack([np.median(g, axis=axis) for g in groups], axis=-1))
    x = np.log(sizes) - np.log(sizes).mean()
    return ((y - y.mean(-1, keepdims=True)) * x).sum(-1) / (x * x).sum()


def _distance_exponent(run: RunData, rows: list[dict[str, Any]], inside: bool) -> Statistic:
    if len(rows) < 2:
        raise NotChecked("a single size: no exponent to fit")
    data, r = run.arrays("shift.npz"), run.results
    groups, sizes = [], []
    for x in rows:
        n = x["n"]
        d = data[f"distance_n{n}"]
        if inside:
            d = d[(data[f"energy_n{n}"] < -r["e_inf"]) & (data[f"lambda_min_n{n}"] >= r["gap_threshold"])]
        if np.any(d <= 0):
            raise NotChecked(f"a minimum did not move at n = {n}: no logarithm")
        groups.append(d)
        sizes.append(n)
    name = "exponent of the median ‖σ − σ̃‖/√n against n" + (
        " (minima within the hypotheses)" if inside else ""
    )
    return bootstrap(
        groups,
        lambda *g, axis=-1: _log_slope(g, np.array(sizes, float), axis),
        name,
        what="run",
        seed=run.config.get("seed", 0),
        method="percentile",
    )


def _decide_distance(run: RunData) -> Verdict:
    rows = _hypotheses(run)
    return decide(_distance_exponent(run, rows, inside=True), below=-ALPHA[0])


def _decide_energy(run: RunData) -> Verdict:
    rows, nu = _hypotheses(run), run.results["nu"]
    worst = max(x["max_energy_change_in_hypotheses"] for x in rows)
    stat = Statistic(
        "largest |H(σ) − H̃(σ̃)|/n",
        worst,
        worst,
        worst,
        method=f"the largest over {sum(x['in_hypotheses'] for x in rows)} minima",
    )
    return decide(stat, below=2 * nu)


def _decide_threshold(run: RunData) -> Verdict:
    r = run.results
    require_gradient_checked(
        "minima and perturbed minima", max(x["max_grad_norm"] for x in r["sizes"]), 2 * r["tol"]
    )
    stat = _distance_exponent(run, r["sizes"], inside=False)
    lam = ", ".join(
        f"n = {x['n']}: λ_min {x['median_lambda_min']:.3g}, eq. (A-9) {x['median_predicted_distance']:.3g}"
        for x in r["sizes"]
    )
    return decide(stat, below=-ALPHA[0], evidence=f"medians {lam}")


_THM5 = "AnnealSGD paper §4.5, Thm 5; Appendix B, Thm A-5"
_GUARD = (
    "guards: every minimum's gradient norm measured and at most 2·tol (float32 round-off between batches); "
    f"at least {MIN_IN_HYPOTHESES} minima per size within the hypotheses (H/n < −E∞ and "
    "λ_min ≥ p(E₀ − E∞)/2, "
    "index 0), else not decidable"
)

CLAIMS = (
    Claim(
        "shift.distance",
        "“every local minimum σ ∈ crt₀(H) has another local minimum σ̃ ∈ crt₀(H̃) within a distance "
        "O(n^{−1/3})”; Thm A-5: “the perturbed local minima lie within a ball of radius n^{−α} with "
        "α ∈ (1/4, 1/3)”, for minima near −nE₀ with a gapped Hessian",
        _THM5,
        "on the minima within the theorem's hypotheses, the exponent of the median ‖σ − σ̃‖/√n against n "
        "(percentile bootstrap over minima, resampled within each size) is below −1/4; " + _GUARD,
        _decide_distance,
        shown_in="shift.png",
    ),
    Claim(
        "shift.energy",
        "“the normalized Hamiltonian differs by at most 2ν at these locations, i.e. (1/n)|H(σ) − H̃(σ̃)| ≤ 2ν”",
        _THM5,
        "on the minima within the theorem's hypotheses, the largest |H(σ) − H̃(σ̃)|/n is below 2ν; " + _GUARD,
        _decide_energy,
        shown_in="shift-table",
    ),
    Claim(
        "shift.threshold-minima",
        "the minima that gradient descent finds (just above −E∞, nearly degenerate Hessian: outside Thm A-5) "
        "also move by O(n^(−α)), α > 1/4, under the field",
        "beyond the papers (Thm 5 is stated for deep, gapped minima)",
        "the exponent of the median ‖σ − σ̃‖/√n over all minima against n (percentile bootstrap over minima) "
        "is below −1/4; guard: gradient norms measured and at most 2·tol",
        _decide_threshold,
        beyond_papers=True,
        shown_in="shift.png",
    ),
)

DIAGNOSTICS = (
    Diagnostic(
        "shift-weaker-field",
        "shift",
        ("nu=0.1",),
        ("shift.threshold-minima",),
        "with a field five times weaker, do the minima that descent finds stay in their basins (fewer jumps) "
        "and shift by O(n^(−α))?",
    ),
)


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    def g(x: float | None, spec: str = ".3g") -> str:
        return "–" if x is None else format(x, spec)

    rows = tuple(
        (
            r["n"],
            f"{r['field_std']:.3g}",
            f"{r['index_zero']}/{r['minima']}",
            f"{r['median_energy']:.4f}",
            f"{r['min_energy']:.4f}",
            f"{r['median_lambda_min']:.3g}",
            r["in_hypotheses"],
            g(r["median_distance"]),
            g(r["median_predicted_distance"]),
            f"{r['jump_fraction']:.2g}",
            g(r["max_energy_change"]),
            f"≤ {2 * results['nu']:g} (2ν); n^(−α), α ∈ (1/4, 1/3)",
        )
        for r in results["sizes"]
    )
    return [
        Table(
            "shift-table",
            f"minima σ of H and σ̃ of H̃, ν = {results['nu']:g} ({results['scaling']} scaling)",
            (
                "n",
                "field std",
                "index 0",
                "median H/n",
                "lowest H/n",
                "median λ_min",
                "within hypotheses",
                "median ‖σ − σ̃‖/√n",
                "eq. (A-9) prediction",
                "jumps",
                "max |ΔH/n|",
                "Thm 5 / A-5",
            ),
            rows,
            f"Ours at the {config['scale']} scale, {config['minima']} minima per n from random starts. "
            "Within "
            f"hypotheses: H/n < −E∞ = {-results['e_inf']:.4f} and λ_min ≥ {results['gap_threshold']:.3g} "
            f"(half the gap p(E₀ − E∞) of a minimum at −E₀ = {-results['e0']:.4f}). Jumps: ‖σ − σ̃‖/√n > "
            f"{JUMP}. Eq. (A-9) prediction: the median of ‖Hess⁻¹ P_σ h‖/√n, the shift to the critical point "
            "of the quadratic model on which the proof of Thm A-5 rests. The paper proves the bounds and "
            "reports no measurement.",
        )
    ]


FIGURES = (
    Figure(
        "shift.png",
        "left: median shift ‖σ − σ̃‖/√n against n; right: energy and λ_min of every minimum, with the region "
        "of the theorem's hypotheses (H/n < −E∞, λ_min ≥ p(E₀ − E∞)/2)",
        "AnnealSGD paper Thm 5 / Thm A-5: under a small field a minimum moves by O(n^(−α)), α ∈ (1/4, 1/3), "
        "and the normalized energy by at most 2ν (a theorem, no figure).",
    ),
)


EXPERIMENT = Experiment(
    name="shift",
    description="distance between minima with and without a small field, against n, and whether the "
    "minima meet Thm A-5's hypotheses",
    reproduces="AnnealSGD paper Thm 5 / Thm A-5, §4.5",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    memory=memory,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=160,
)
