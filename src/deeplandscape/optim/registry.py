"""Optimizers by name: ``deeplandscape.optim.get("entropy-sgd")`` returns the class.

Entries are import paths (``"module:Class"``), resolved on first use, so an optimizer can be registered
before its module exists and importing :mod:`deeplandscape.optim` stays cheap. Names are lower case with
hyphens; ``get`` also accepts underscores and any case.
"""

from __future__ import annotations

import importlib
import importlib.util

from torch.optim import Optimizer

_REGISTRY: dict[str, str] = {
    "anneal-sgd": "deeplandscape.optim.anneal:AnnealSGD",
    "trivialized-sgd": "deeplandscape.optim.anneal:AnnealSGD",
    "gradient-noise": "deeplandscape.optim.gradient_noise:GradientNoise",
    "sgld": "deeplandscape.optim.sgld:SGLD",
    "entropy-sgd": "deeplandscape.optim.entropy:EntropySGD",
    "entropy-adam": "deeplandscape.optim.entropy:EntropyAdam",
    "hj": "deeplandscape.optim.hj:HJ",
    "heat": "deeplandscape.optim.heat:Heat",
    "elastic-sgd": "deeplandscape.optim.elastic:ElasticSGD",
    "parle": "deeplandscape.optim.parle:Parle",
    "distributed-parle": "deeplandscape.optim.distributed:DistributedParle",
    "distributed-elastic-sgd": "deeplandscape.optim.distributed:DistributedElasticSGD",
    "sam": "deeplandscape.optim.sam:SAM",
    "sgd": "torch.optim:SGD",
    "adam": "torch.optim:Adam",
}


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register(name: str, target: str) -> None:
    """Register ``target`` (``"package.module:ClassName"``) as ``name``; ``ValueError`` if bad or taken."""
    key = _normalize(name)
    if ":" not in target:
        raise ValueError(f"Invalid target: {target!r} (must be 'package.module:ClassName')")
    if key in _REGISTRY and _REGISTRY[key] != target:
        raise ValueError(f"Invalid name: {name!r} (already registered for {_REGISTRY[key]})")
    _REGISTRY[key] = target


def _importable(target: str) -> bool:
    module = target.split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def available() -> list[str]:
    """Sorted names whose module can be imported in this installation."""
    return sorted(name for name, target in _REGISTRY.items() if _importable(target))


def get(name: str) -> type[Optimizer]:
    """The optimizer class registered as ``name`` (e.g. ``"entropy-sgd"``); ``ValueError`` if unknown."""
    if not isinstance(name, str):
        raise ValueError(
            f"Invalid optimizer name: {name!r} (must be a string; available: {', '.join(available())})"
        )
    key = _normalize(name)
    target = _REGISTRY.get(key)
    if target is None or not _importable(target):
        raise ValueError(f"Invalid optimizer name: {name!r} (available: {', '.join(available())})")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
