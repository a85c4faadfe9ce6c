"""Experiments: one module per figure or table of the papers, run by :mod:`.runner`.

``get(name)`` returns an :class:`~deeplandscape.experiments.runner.Experiment`; ``available()`` lists
them. Modules are imported when first asked for, so listing experiments stays cheap.
"""

from __future__ import annotations

from importlib import import_module

from deeplandscape.experiments.runner import Experiment

_MODULES = {
    "complexity": "complexity",
    "floor": "floor",
    "regimes": "regimes",
    "gd-vs-sgd": "gd_vs_sgd",
    "tripartite": "tripartite",
    "layers": "layers",
    "shift": "shift",
    "choromanska-nets": "choromanska_nets",
    "teacher-student": "teacher_student",
    "gd-vs-sgd-nets": "gd_vs_sgd_nets",
    "hessian-spectrum": "hessian_spectrum",
    "sgd-noise": "sgd_noise",
    "limit-cycles": "limit_cycles",
    "relaxation-1d": "relaxation_1d",
    "anneal": "anneal",
    "entropy-sgd": "entropy_sgd",
    "relaxation": "relaxation",
    "parle": "parle",
    "ensemble-alignment": "ensemble_alignment",
    "sgld": "sgld",
}


def available() -> list[str]:
    """Names of all experiments, in the order of the papers' figures."""
    return list(_MODULES)


def get(name: str) -> Experiment:
    """The experiment called ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in _MODULES:
        raise ValueError(f"Unknown experiment: {name!r} (known: {', '.join(_MODULES)})")
    return import_module(f"deeplandscape.experiments.{_MODULES[name]}").EXPERIMENT
