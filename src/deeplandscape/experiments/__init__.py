"""Experiments: one module per figure or table of the papers, run by :mod:`.runner`.

The registry is derived from the modules: every module of this package whose name does not start with an
underscore and that defines ``EXPERIMENT`` (an :class:`~deeplandscape.experiments.spec.Experiment`) is an
experiment, listed in the order of its ``order`` field (the papers' order). :func:`register` adds one from
elsewhere (a plug-in, a test). Modules are imported when the registry is first read.
"""

from __future__ import annotations

import pkgutil
from importlib import import_module

from deeplandscape.experiments.spec import Experiment

# Modules of this package that hold the machinery rather than an experiment.
_FRAMEWORK = {"claims", "spec"}
_modules: dict[str, str] = {}  # experiment name → module that defines it (read anew on every get)
_registered: dict[str, Experiment] = {}  # experiments added by register()
_discovered = False


def _discover() -> dict[str, Experiment]:
    """Every experiment by name: the modules' ``EXPERIMENT`` (as they are now) and the registered ones."""
    global _discovered
    if not _discovered:
        for module in pkgutil.iter_modules(__path__):
            if module.name.startswith("_") or module.name in _FRAMEWORK:
                continue
            experiment = getattr(import_module(f"{__name__}.{module.name}"), "EXPERIMENT", None)
            if isinstance(experiment, Experiment):
                _modules.setdefault(experiment.name, f"{__name__}.{module.name}")
        _discovered = True
    found = {name: import_module(module).EXPERIMENT for name, module in _modules.items()}
    return {**found, **_registered}


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to the registry (``ValueError`` if another one has its name); returns it."""
    if not isinstance(experiment, Experiment):
        raise ValueError(f"Invalid experiment: {experiment!r} (must be an Experiment)")
    known = _discover().get(experiment.name)
    if known is not None and known is not experiment:
        raise ValueError(f"Invalid experiment name: {experiment.name!r} (already registered)")
    _registered[experiment.name] = experiment
    return experiment


def unregister(name: str) -> None:
    """Remove the experiment called ``name`` that :func:`register` added."""
    _registered.pop(name, None)


def available() -> list[str]:
    """Names of all experiments, in the papers' order."""
    return [e.name for e in sorted(_discover().values(), key=lambda e: (e.order, e.name))]


def get(name: str) -> Experiment:
    """The experiment called ``name``; ``ValueError`` listing the known names otherwise."""
    registry = _discover()
    if name not in registry:
        raise ValueError(f"Unknown experiment: {name!r} (known: {', '.join(available())})")
    return registry[name]
