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


def check_choromanska_nets(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    rows = sorted(results["widths"], key=lambda r: r["n1"])
    claims = []
    pearson = [r for r in rows if _finite(r["train_test_pearson"])]
    text = "Choromanska et al. Table 1: the train–test Pearson correlation falls as n1 grows (0.76 → 0.41)"
    if len(pearson) < 2:
        claims.append(_claim(text, None, "fewer than two widths with a correlation"))
    else:
        claims.append(
            _claim(
                text,
                pearson[-1]["train_test_pearson"] < pearson[0]["train_test_pearson"],
                ", ".join(f"n1 = {r['n1']}: {_g(r['train_test_pearson'])}" for r in pearson),
            )
        )
    text = "Choromanska et al. Fig. 3 (right), Fig. 9: the spread of the scaled test loss falls as n1 grows"
    if len(rows) < 2:
        claims.append(_claim(text, None, "a single width"))
    else:
        claims.append(
            _claim(
                text,
                rows[-1]["scaled_test_loss_std"] < rows[0]["scaled_test_loss_std"],
                ", ".join(f"n1 = {r['n1']}: std {_g(r['scaled_test_loss_std'])}" for r in rows),
            )
        )
    indexed = [r for r in rows if r.get("mean_normalized_index") is not None]
    text = (
        "Choromanska et al. Fig. 4–5: the solutions are minima or saddles of low normalized index "
        "(order 0.01; criterion: mean ≤ 0.05 at every width)"
    )
    if not indexed:
        claims.append(_claim(text, None, "no Hessian computed"))
    else:
        claims.append(
            _claim(
                text,
                max(r["mean_normalized_index"] for r in indexed) <= 0.05,
                ", ".join(f"n1 = {r['n1']}: {_g(r['mean_normalized_index'])}" for r in indexed),
            )
        )
    annealed = results.get("annealing") or []
    if annealed:
        claims.append(
            _claim(
                "Choromanska et al. §5, Fig. 6: simulated annealing over weights in {−1, 0, 1} loses at most "
                "2.5 points of test accuracy against SGD",
                max(r["accuracy_drop"] for r in annealed) <= 0.025,
                ", ".join(f"n1 = {r['n1']}: drop {_g(100 * r['accuracy_drop'])} pts" for r in annealed),
            )
        )
    return claims


def check_teacher_student(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    teacher = results["teacher"]["sizes"]
    students = sorted(results["students"], key=lambda r: r["parameters"])
    copies = [
        s for s in students if all(a >= b for a, b in zip(s["sizes"][1:-1], teacher[1:-1], strict=True))
    ]
    text = (
        "Sagun et al. §3.1.3, Table 1: SGD stops above zero cost even where the student can copy the teacher "
        "(criterion: every such student's training cost KL ≥ 1e-3)"
    )
    claims = []
    if not copies:
        claims.append(_claim(text, None, "no student as large as the teacher"))
    else:
        lowest = min(s["train_cost_summary"]["min"] for s in copies)
        claims.append(_claim(text, lowest >= 1e-3, f"lowest training cost {_g(lowest)}"))
    text = "Sagun et al. Fig. 5: larger students concentrate in a narrower band of training costs"
    if len(students) < 2:
        claims.append(_claim(text, None, "a single student size"))
    else:
        small, large = students[0], students[-1]
        claims.append(
            _claim(
                text,
                large["train_cost_summary"]["std"] < small["train_cost_summary"]["std"],
                f"std {_g(small['train_cost_summary']['std'])} ({small['parameters']} parameters), "
                f"{_g(large['train_cost_summary']['std'])} ({large['parameters']} parameters)",
            )
        )
    return claims


def check_gd_vs_sgd_nets(results: dict[str, Any], config: dict[str, Any]) -> list[Claim]:
    pairs: dict[str, dict[str, dict]] = {}
    for r in results["runs"]:
        pairs.setdefault(r["net"], {})[r["method"]] = r
    pairs = {k: v for k, v in pairs.items() if {"GD", "SGD"} <= set(v)}
    costs = "Sagun et al. Table 2: GD and SGD reach similar training costs in the same steps (criterion: ×2)"
    errors = "Sagun et al. Table 2: SGD's test error is a little lower than GD's (256 vs 299, 174 vs 194)"
    if not pairs:
        return [_claim(costs, None, "no network with both"), _claim(errors, None, "no network with both")]
    ratios = {
        net: max(m["GD"]["train_cost"], m["SGD"]["train_cost"])
        / min(m["GD"]["train_cost"], m["SGD"]["train_cost"])
        for net, m in pairs.items()
    }
    return [
        _claim(
            costs,
            all(r <= 2 for r in ratios.values()),
            ", ".join(
                f"{net}: GD {_g(m['GD']['train_cost'])}, SGD {_g(m['SGD']['train_cost'])}"
                for net, m in pairs.items()
            ),
        ),
        _claim(
            errors,
            all(m["SGD"]["test_errors"] <= m["GD"]["test_errors"] for m in pairs.values()),
            ", ".join(
                f"{net}: GD {_g(m['GD']['test_errors'])}, SGD {_g(m['SGD']['test_errors'])} errors"
                for net, m in pairs.items()
            ),
        ),
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
    "choromanska-nets": check_choromanska_nets,
    "teacher-student": check_teacher_student,
    "gd-vs-sgd-nets": check_gd_vs_sgd_nets,
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
    "choromanska-nets": {
        "scaled_test_loss.png": "Choromanska et al. Fig. 3 (right), Fig. 8 (bottom), Fig. 9: the scaled test "
        "losses of 1000 networks per n1 on 10×10 MNIST concentrate as n1 grows; Table 1: train–test Pearson "
        "0.7616, 0.6861, 0.5983, 0.5302, 0.4081 for n1 = 25, 50, 100, 250, 500.",
        "normalized_index.png": "Choromanska et al. Fig. 4–5: the normalized index of the solutions is 0 or "
        "of the order 0.01 (minima or low-index saddles), n1 = 10, 25, 50, 100.",
        "annealing.png": "Choromanska et al. Fig. 6: simulated annealing with weights restricted to "
        "{−1, 0, 1} reaches test accuracies within 2.5 points of SGD's on a subset of 10×10 MNIST.",
    },
    "teacher-student": {
        "training_cost.png": "Sagun et al. Fig. 5, Table 1: training costs of students of four sizes trained "
        "on a 784-500-300-10 teacher's soft labels stop above zero; larger students concentrate in a "
        "narrower band.",
    },
    "gd-vs-sgd-nets": {
        "cost_curves.png": "Sagun et al. Fig. 8, Table 2: GD and SGD on MNIST 50-50 and 500-300 networks "
        "reach similar training costs (4.52e-4 vs 3.86e-4, 1.55e-4 vs 1.38e-4); SGD's test errors are a "
        "little lower (256 vs 299, 174 vs 194 of 10,000).",
    },
}
