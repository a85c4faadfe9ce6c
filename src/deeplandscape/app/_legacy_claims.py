"""The claims checks of the experiments that do not yet declare their claims (kept while they move into
their modules; each check decides from ``results.json`` alone, without an interval)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

HELD, NOT_HELD, NOT_CHECKED = "held", "did not hold", "not checked"


@dataclass(frozen=True)
class Claim:
    """One claim of a paper (with its source), its status and the numbers of ours that decided it."""

    claim: str
    status: str
    evidence: str


# ------------------------------------------------------------------------------------------------ checks


def _claim(claim: str, ok: bool | None, evidence: str) -> Claim:
    """``ok`` True/False: held/did not hold; None: not checked (the evidence says why)."""
    return Claim(claim, NOT_CHECKED if ok is None else HELD if ok else NOT_HELD, evidence)


def _g(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


FLOOR_BAND_MIN_N = 200  # the band is a large-n statement (the papers go to n = 500): not checked below
FLOOR_BAND_TOLERANCE = 0.05  # "just above": mean H/n at most this far above −E∞


def check_floor(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    rows = sorted(results["sizes"], key=lambda r: r["n"])
    e0, einf = results["e0"], results["e_inf"]
    small, large = rows[0], rows[-1]
    claims = []
    spread = (
        "Sagun et al. Fig. 2, Choromanska et al. Fig. 3 (left): the spread of final H/n shrinks as n grows"
    )
    if len(rows) < 2:
        claims.append(_claim(spread, None, "a single size"))
    else:
        claims.append(
            _claim(
                spread,
                large["std"] < small["std"],
                f"std {_g(small['std'])} at n = {small['n']}, {_g(large['std'])} at n = {large['n']}",
            )
        )
    band = (
        "Sagun et al. §3.1.1: for large n, gradient descent ends in a narrow band just above −E₀, at the "
        f"floor −E∞ (criterion: mean H/n of the largest n in [−E₀ − 0.01, −E∞ + {FLOOR_BAND_TOLERANCE:g}])"
    )
    mean = large["mean"]
    if large["n"] < FLOOR_BAND_MIN_N:
        claims.append(
            _claim(
                band,
                None,
                f"largest n = {large['n']} < {FLOOR_BAND_MIN_N} at this scale (mean H/n = {_g(mean)}, "
                f"−E∞ = {_g(-einf)})",
            )
        )
    else:
        claims.append(
            _claim(
                band,
                -e0 - 0.01 <= mean <= -einf + FLOOR_BAND_TOLERANCE,
                f"mean H/n = {_g(mean)} at n = {large['n']}; −E₀ = {_g(-e0)}, −E∞ = {_g(-einf)}",
            )
        )
    descent = (
        "Choromanska et al. Fig. 3 (left): as n grows the endpoints move down toward the floor −E∞ and stay "
        "above −E₀ (criterion: mean H/n of the largest n below that of the smallest, and ≥ −E₀)"
    )
    if len(rows) < 2:
        claims.append(_claim(descent, None, "a single size"))
    else:
        claims.append(
            _claim(
                descent,
                large["mean"] < small["mean"] and large["mean"] >= -e0,
                f"mean H/n {_g(small['mean'])} at n = {small['n']}, {_g(large['mean'])} at n = {large['n']}; "
                f"−E₀ = {_g(-e0)}, −E∞ = {_g(-einf)}",
            )
        )
    fractions = [r["minima_fraction"] for r in rows]
    claims.append(
        _claim(
            "Choromanska et al. §4: the points gradient descent finds are local minima "
            "(criterion: ≥ 95% of endpoints have index 0 at every n)",
            min(fractions) >= 0.95,
            "fraction of minima: " + ", ".join(f"n = {r['n']}: {_g(r['minima_fraction'])}" for r in rows),
        )
    )
    return claims


def check_regimes(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    by = {r["name"]: r for r in results["regimes"]}
    counts = [by[n]["distinct_minima"] for n in ("exponential", "polynomial", "trivial")]
    exp, triv = by["exponential"], by["trivial"]
    return [
        _claim(
            "AnnealSGD paper §5.1, Fig. 2: the number of distinct minima falls from the exponential to the "
            "polynomial to the trivial regime",
            counts[0] >= counts[1] >= counts[2] and counts[0] > counts[2],
            f"distinct minima {counts[0]}, {counts[1]}, {counts[2]} of {exp['runs']} runs",
        ),
        _claim(
            "AnnealSGD paper §5.1: in the exponential regime the minima are many and far apart (mean cosine "
            "distance 1.16; criterion: > 1 minimum and distance ≥ 0.5)",
            exp["distinct_minima"] > 1 and exp["mean_cosine_distance"] >= 0.5,
            f"{exp['distinct_minima']} minima, mean cosine distance {_g(exp['mean_cosine_distance'])}",
        ),
        _claim(
            "AnnealSGD paper §5.1: in the trivial regime descent finds one minimum (mean cosine distance "
            "0.02; criterion: one minimum or distance ≤ 0.05)",
            triv["distinct_minima"] == 1 or triv["mean_cosine_distance"] <= 0.05,
            f"{triv['distinct_minima']} minima, mean cosine distance {_g(triv['mean_cosine_distance'])}",
        ),
    ]


def check_gd_vs_sgd(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    rows = results["runs"]
    claim = (
        "Sagun et al. Fig. 7: every P reaches the same energy at the same step × steps / P (criterion: the "
        "means differ by less than the mean run-to-run std)"
    )
    if len(rows) < 2:
        return [_claim(claim, None, "a single P")]
    means = [r["final_energy_mean"] for r in rows]
    spread = sum(r["final_energy_std"] for r in rows) / len(rows)
    return [
        _claim(
            claim,
            max(means) - min(means) <= spread,
            ", ".join(f"P = {r['P']}: {_g(r['final_energy_mean'])}" for r in rows)
            + f"; range {_g(max(means) - min(means))}, mean std {_g(spread)}",
        )
    ]


def check_tripartite(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    rows = sorted(results["sizes"], key=lambda r: r["n"])
    claim = (
        "Sagun et al. §3.1.2, Fig. 4: a floor appears for large n (narrower spread of final H/n than small n)"
    )
    if len(rows) < 2:
        return [_claim(claim, None, "a single size")]
    small, large = rows[0], rows[-1]
    return [
        _claim(
            claim,
            large["std"] < small["std"],
            f"std {_g(small['std'])} at n = {small['n']}, {_g(large['std'])} at n = {large['n']}",
        )
    ]


def check_layers(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    rows = results["by_index"]
    total = sum(r["count"] for r in rows)
    below = sum(round(r["count"] * r["fraction_below_minus_e_k"]) for r in rows)
    first = "Choromanska et al. §4: no critical point of index k lies below −E_k (criterion: at most 5% do)"
    claims = [
        _claim(first, None, "no critical point found")
        if total == 0
        else _claim(first, below <= 0.05 * total, f"{below} of {total} critical points below their −E_k")
    ]
    second = "Choromanska et al. §4: higher index, higher energy (criterion: Pearson(k, mean H/n) > 0.5)"
    if len(rows) < 3:
        claims.append(_claim(second, None, f"{len(rows)} distinct indices found"))
    else:
        ks = [float(r["k"]) for r in rows]
        es = [r["mean_energy"] for r in rows]
        rho = _pearson(ks, es)
        claims.append(_claim(second, rho > 0.5, f"Pearson {_g(rho)} over indices {[r['k'] for r in rows]}"))
    return claims


def _pearson(a: Sequence[float], b: Sequence[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb) if va > 0 and vb > 0 else math.nan


def check_shift(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    exponent = results["distance_exponent"]
    first = (
        "AnnealSGD paper Thm 5 / Thm A-5: a small field moves a minimum by O(n^(−α)), α ∈ (1/4, 1/3) "
        "(criterion: fitted exponent ≤ −1/4)"
    )
    nu = results["nu"]
    worst = max(r["max_energy_change"] for r in results["sizes"])
    return [
        _claim(first, None, "exponent not fitted (one size)")
        if not _finite(exponent)
        else _claim(first, exponent <= -0.25, f"exponent {_g(exponent)}"),
        _claim(
            "AnnealSGD paper Thm 5: the normalized energy changes by at most 2ν",
            worst <= 2 * nu,
            f"largest |ΔH/n| = {_g(worst)}, 2ν = {_g(2 * nu)}",
        ),
    ]


def check_hessian_spectrum(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    models = [m for m in results["models"] if m["method"] != "fisher-diagonal"]
    fisher = [m for m in results["models"] if m["method"] == "fisher-diagonal"]
    near = {}
    for m in models:
        fractions = {float(k): v for k, v in m["near_zero_fraction"].items()}
        if 1e-4 in fractions:
            near[m["name"]] = fractions[1e-4]
    text = (
        "Thesis §3.3.1, Fig. 3.1: most Hessian eigenvalues are near zero (94% with |λ| < 1e-4; "
        "criterion: > 50%)"
    )
    claims = [
        _claim(text, None, "no fraction at |λ| < 1e-4 measured")
        if not near
        else _claim(
            text, all(v > 0.5 for v in near.values()), ", ".join(f"{k}: {_g(v)}" for k, v in near.items())
        )
    ]
    claims.append(
        _claim(
            "Thesis §3.3.1, Fig. 3.1: a long positive tail and a short negative one (λ_max = 40, λ_min = "
            "−0.46; criterion: λ_max > 10 |λ_min|)",
            all(m["lambda_max"] > 10 * abs(m["lambda_min"]) for m in models),
            ", ".join(
                f"{m['name']}: λ_max {_g(m['lambda_max'])}, λ_min {_g(m['lambda_min'])}" for m in models
            ),
        )
    )
    if fisher:
        claims.append(
            _claim(
                "Thesis §3.3.1 (iv), Fig. 3.4 (C): most entries of the Fisher diagonal of an "
                "all-convolutional net are near zero (allcnn on CIFAR-10: ≈ 95% below 1e-5; "
                "criterion: > 50%)",
                all(m["near_zero_fraction"]["1e-05"] > 0.5 for m in fisher),
                ", ".join(
                    f"{m['name']} on {m['data']}: {_g(m['near_zero_fraction']['1e-05'])}" for m in fisher
                ),
            )
        )
    return claims


def check_sgd_noise(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    models = results["models"]
    finals = {m["name"]: max(m["checkpoints"], key=lambda c: c["fraction"]) for m in models}
    rank = "Thesis §6.3.2, Fig. 6.1: D(x) has low rank, 0.3–2% of d (criterion: ≤ 5% at the end of training)"
    limited = [m["name"] for m in models if finals[m["name"]]["rank"] >= m["noise_samples"] - 1]
    evidence = ", ".join(
        f"{m['name']}: rank {finals[m['name']]['rank']} = {100 * finals[m['name']]['rank_fraction']:.2g}% of "
        f"d = {m['params']} (N = {m['noise_samples']} samples)"
        for m in models
    )
    claims = [
        _claim(rank, None, f"the rank is bounded by the N samples for {', '.join(limited)}; {evidence}")
        if limited
        else _claim(rank, all(c["rank_fraction"] <= 0.05 for c in finals.values()), evidence)
    ]
    text = (
        "Thesis Remark 6.37: the spectrum hardly changes between 20%, 40% and 100% of training (criterion: "
        "rank and eigenvalue std within ×2 across checkpoints)"
    )

    def within(values: list[float]) -> bool:
        return min(values) > 0 and max(values) / min(values) <= 2

    stable = [
        within([c["rank"] for c in m["checkpoints"]]) and within([c["eig_std"] for c in m["checkpoints"]])
        for m in models
        if len(m["checkpoints"]) >= 2
    ]
    claims.append(
        _claim(text, None, "a single checkpoint")
        if not stable
        else _claim(
            text,
            all(stable),
            "; ".join(
                f"{m['name']}: ranks {', '.join(str(c['rank']) for c in m['checkpoints'])}; stds "
                + ", ".join(_g(c["eig_std"]) for c in m["checkpoints"])
                for m in models
            ),
        )
    )
    claims.append(
        _claim(
            "Thesis §6.3.2: the non-zero eigenvalues of D spread widely ((0.3 ± 2.11)×10⁻³; criterion: std > "
            "3 × mean at the end)",
            all(c["eig_std"] > 3 * c["eig_mean"] for c in finals.values()),
            ", ".join(f"{k}: {_g(c['eig_mean'])} ± {_g(c['eig_std'])}" for k, c in finals.items()),
        )
    )
    return claims


def check_limit_cycles(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    claims = [
        _claim(
            "Thesis §6.3.3, Fig. 6.3: the autocorrelation of SGD's weights stays outside the 99% white-noise "
            "band (criterion: > 5% of (weight, lag) pairs outside; white noise: 1%)",
            results["acf_exceed99"] > 0.05,
            f"{_g(results['acf_exceed99'])} outside",
        ),
        _claim(
            "Thesis §6.3.3, Fig. 6.3: the FFT of the weight differences is not flat (criterion: > 5% of "
            "(weight, frequency) pairs above the 99% white-noise band; white noise: 1%)",
            results["fft_exceed99"] > 0.05,
            f"{_g(results['fft_exceed99'])} above, low/high amplitude ratio "
            f"{_g(results['fft_low_to_high_ratio'])}",
        ),
        _claim(
            "Thesis §6.3.3: ‖∇f‖ stays away from zero after burn-in (criterion: final ≥ 1/4 of its mean)",
            results["grad_norm_final"] >= 0.25 * results["grad_norm_mean_after_burnin"],
            f"final {_g(results['grad_norm_final'])}, mean after burn-in "
            f"{_g(results['grad_norm_mean_after_burnin'])}",
        ),
    ]
    wells = results["double_well"]
    gibbs = results["gibbs_x1_sq"]
    claims.append(
        _claim(
            "Thesis Example 6.43: the steady state stays e^(−Φ) for every λ (criterion: E[x₁²], E[x₂²] "
            "within 10% of the Gibbs values)",
            all(
                abs(w["sde_mean_x1_sq"] - gibbs) <= 0.1 * gibbs and abs(w["sde_mean_x2_sq"] - 1) <= 0.1
                for w in wells
            ),
            ", ".join(
                f"λ = {w['lambda']:g}: {_g(w['sde_mean_x1_sq'])}, {_g(w['sde_mean_x2_sq'])}" for w in wells
            )
            + f" (Gibbs {_g(gibbs)}, 1)",
        )
    )
    cycle = "Thesis Fig. 6.4: for λ = 1.5 the flow circles the origin (a limit cycle), for λ = 0 it does not"
    lams = {w["lambda"]: w for w in wells}
    strong = [w for lam, w in lams.items() if lam >= 1.5]
    if 0.0 not in lams or not strong:
        claims.append(_claim(cycle, None, f"λ values {sorted(lams)}"))
    else:
        claims.append(
            _claim(
                cycle,
                all(w["limit_cycle"] for w in strong) and not lams[0.0]["limit_cycle"],
                ", ".join(f"λ = {lam:g}: {w['limit_cycle']}" for lam, w in sorted(lams.items())),
            )
        )
    return claims


def check_relaxation_1d(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    mass = results["terminal_mass_near_global_min"]
    smoothed = {k: v for k, v in mass.items() if k != "sgd"}
    return [
        _claim(
            "Thesis Fig. 4.1: plain SGD stays in the local minima, the smoothed losses (heat, viscous and "
            "non-viscous HJ) carry the density to the global minimum (criterion: final mass near it < 50% "
            "for SGD, > 50% for each smoothing)",
            mass["sgd"] < 0.5 and bool(smoothed) and all(v > 0.5 for v in smoothed.values()),
            ", ".join(f"{k}: {_g(v)}" for k, v in mass.items()),
        )
    ]


# The optimizer comparisons share one `runs` list: model, method, seeds, error_mean, error_std, ...,
# hessian_top, hessian_trace (errors in %). Methods are matched on their label in lower case without
# punctuation ("Entropy-SGD" → "entropysgd").


def _norm(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(label).lower())


def _by_model(results: dict[str, Any]) -> dict[str, dict[str, dict]]:
    """``{model (and setting, where runs have one): {normalized method: run}}``."""
    out: dict[str, dict[str, dict]] = {}
    for r in results.get("runs", []):
        group = str(r.get("model")) + (f" ({r['setting']})" if r.get("setting") else "")
        out.setdefault(group, {})[_norm(r.get("method"))] = r
    return out


def _pick(methods: dict[str, dict], exact: Sequence[str] = (), contains: Sequence[str] = ()) -> dict | None:
    for name in exact:
        if name in methods:
            return methods[name]
    for fragment in contains:
        for name, row in methods.items():
            if fragment in name:
                return row
    return None


def _error(row: dict) -> float | None:
    for key in ("error_mean", "val_error_mean"):
        if _finite(row.get(key)):
            return float(row[key])
    return None


def _std_of(row: dict) -> float:
    for key in ("error_std", "val_error_std"):
        if _finite(row.get(key)):
            return float(row[key])
    return 0.0


Picker = Callable[[dict[str, dict]], dict | None]


def _pairwise(
    results: dict[str, Any],
    claim: str,
    first: Picker,
    second: Picker,
    holds: Callable[[dict, dict], bool | None],
    show: Callable[[dict, dict], str],
) -> Claim:
    """Decide ``holds(a, b)`` on every model that has both methods; not checked when none has."""
    verdicts, shown = [], []
    for model, methods in _by_model(results).items():
        a, b = first(methods), second(methods)
        if a is None or b is None:
            continue
        verdict = holds(a, b)
        if verdict is None:
            continue
        verdicts.append(verdict)
        shown.append(f"{model}: {show(a, b)}")
    if not verdicts:
        return _claim(claim, None, "no model with both methods measured")
    return _claim(claim, all(verdicts), "; ".join(shown))


def _lower_error(a: dict, b: dict) -> bool | None:
    ea, eb = _error(a), _error(b)
    return None if ea is None or eb is None else ea < eb


def _show_errors(a: dict, b: dict) -> str:
    return (
        f"{a['method']} {_g(_error(a))} ± {_g(_std_of(a))}, {b['method']} {_g(_error(b))} ± {_g(_std_of(b))}"
    )


def _flatter(a: dict, b: dict) -> bool | None:
    ta, tb = a.get("hessian_top"), b.get("hessian_top")
    return None if not (_finite(ta) and _finite(tb)) else ta < tb


def _show_tops(a: dict, b: dict) -> str:
    return f"λ_max {a['method']} {_g(a.get('hessian_top'))}, {b['method']} {_g(b.get('hessian_top'))}"


def _widest(results: dict[str, Any]) -> str:
    """Per model, the method with the lowest top Hessian eigenvalue (SAM included)."""
    parts = []
    for model, methods in _by_model(results).items():
        rows = [r for r in methods.values() if _finite(r.get("hessian_top"))]
        if rows:
            best = min(rows, key=lambda r: r["hessian_top"])
            parts.append(f"{model}: {best['method']} ({_g(best['hessian_top'])})")
    return "widest minimum (lowest λ_max) — " + ("; ".join(parts) if parts else "none measured")


def _exact(*names: str) -> Picker:
    return lambda methods: _pick(methods, exact=names)


def _flatness_claim(results: dict[str, Any], who: str, first: Picker, second: Picker) -> Claim:
    claim = _pairwise(
        results,
        f"{who} finds a flatter minimum than the baseline (lower top Hessian eigenvalue at the solution)",
        first,
        second,
        _flatter,
        _show_tops,
    )
    return Claim(claim.claim, claim.status, f"{claim.evidence}; {_widest(results)}")


CHECKS: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[Claim]]] = {
    "floor": check_floor,
    "regimes": check_regimes,
    "gd-vs-sgd": check_gd_vs_sgd,
    "tripartite": check_tripartite,
    "layers": check_layers,
    "shift": check_shift,
    "hessian-spectrum": check_hessian_spectrum,
    "sgd-noise": check_sgd_noise,
    "limit-cycles": check_limit_cycles,
    "relaxation-1d": check_relaxation_1d,
}


def check_claims(name: str, results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    """The claims of experiment ``name`` decided from its ``results.json``.

    An experiment without a check function gets one "not checked" row; a check that cannot read the
    results (a key the run did not write) gets one "not checked" row naming the error.
    """
    check = CHECKS.get(name)
    if check is None:
        return [
            _claim("the papers' claims for this experiment", None, "no check function for this experiment")
        ]
    try:
        return check(results, config)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as error:
        return [_claim("the papers' claims for this experiment", None, f"results unreadable: {error!r}")]


# -------------------------------------------------------------------------------------- paper captions

# The papers' figures that each of our figures stands beside (file name → the paper's caption, in brief).
PAPER_FIGURES: dict[str, dict[str, str]] = {
    "complexity": {
        "complexity.png": "Choromanska et al. Fig. 2 (= AnnealSGD paper Fig. 1, Sagun et al. Fig. 1): the "
        "complexity Θ_k(u) for k = 0…5 and Θ(u) of the 3-spin glass, with −E₀ = −1.657 and −E∞ = −1.633.",
        "counts.png": "Choromanska et al. Fig. 1: the mean number of critical points of each index below Λu, "
        "Λ = 1000; the low-index ones lie in the band (−ΛE₀, −ΛE∞).",
    },
    "floor": {
        "floor.png": "Sagun et al. Fig. 2; Choromanska et al. Fig. 3 (left), Fig. 8 (top): histograms of the "
        "final H/n of gradient descent; for small n the system gets trapped at bad values, for large n the "
        "values form a narrow band just above −E₀ (black line) near −E∞.",
    },
    "regimes": {
        "regimes.png": "AnnealSGD paper Fig. 2: t-SNE of the minima of the perturbed 3-spin glass (n = 100, "
        "20,000 runs) in the exponential, polynomial and trivial regimes; mean cosine distance 1.16 "
        "(exponential) and 0.02 (trivial).",
    },
    "gd-vs-sgd": {
        "gd_vs_sgd.png": "Sagun et al. Fig. 7: both methods reach the floor; different P give the same "
        "energy when measured at step size × steps / P.",
    },
    "tripartite": {
        "tripartite.png": "Sagun et al. Fig. 4: final energies on the tri-partite spin glass; a floor "
        "appears for large n, none for small n.",
    },
    "layers": {
        "layers.png": "Choromanska et al. §4: with overwhelming probability no critical point of index k "
        "lies below −ΛE_k; the critical values form layers by index.",
    },
    "shift": {
        "shift.png": "AnnealSGD paper Thm 5 / Thm A-5: under a small field a minimum moves by O(n^(−α)), "
        "α ∈ (1/4, 1/3), and the normalized energy by at most 2ν (a theorem, no figure).",
    },
    "hessian-spectrum": {
        "hessian_spectrum.png": "Thesis Fig. 3.1, 3.4: the Hessian spectrum of small-LeNet at the end of "
        "training: ≈94% of |λ| < 1e-4, λ_max ≈ 40, λ_min ≈ −0.46; the same shape for smallfc and char-lstm.",
    },
    "sgd-noise": {
        "sgd_noise.png": "Thesis Fig. 6.1–6.2: the eigenvalues of D(x): rank 1.8% (small-lenet) and 0.6% "
        "(small-fc) of d, λ(D) = (0.3 ± 2.11)×10⁻³ and (0.9 ± 18.5)×10⁻³, nearly the same at 20%, 40% "
        "and 100% of training.",
    },
    "limit-cycles": {
        "trajectory_spectrum.png": "Thesis Fig. 6.3: FFT of the weight differences and autocorrelation of "
        "the weights of tiny-fc over a long SGD run: not flat, outside the white-noise band; ‖∇f‖ stays away "
        "from zero.",
        "double_well.png": "Thesis Fig. 6.4: the double well with a rotational force λ = 0, 0.5, 1.5: the "
        "steady state stays e^(−Φ) while the critical points move and a limit cycle appears.",
    },
    "relaxation-1d": {
        "relaxation_1d.png": "Thesis Fig. 4.1: a rugged 1-D loss smoothed by the viscous and non-viscous "
        "Hamilton–Jacobi and heat equations; the density of plain SGD stays in the local minima next to its "
        "start, the smoothed dynamics reach the wide global minimum.",
    },
}
