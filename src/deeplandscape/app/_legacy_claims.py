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
