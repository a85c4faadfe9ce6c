"""Optimizers by name: ``deeplandscape.optim.get("entropy-sgd")`` returns the class.

The registry is derived from the modules: every module of :mod:`deeplandscape.optim` whose name does not
start with an underscore and that defines ``OPTIMIZERS`` (a dict from name to ``torch.optim.Optimizer``
subclass, aliases included) contributes its entries, read when the registry is first used. torch's own
``SGD`` and ``Adam``, the baselines of the comparisons, are listed as ``sgd`` and ``adam``. :func:`register`
adds an optimizer from elsewhere as an import path (``"module:Class"``), resolved on first use. Names are
lower case with hyphens; ``get`` also accepts underscores and any case.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from pathlib import Path

from torch.optim import Optimizer

# torch's optimizers, listed for the comparisons' baselines (no module of this package declares them).
_TORCH = {"sgd": "torch.optim:SGD", "adam": "torch.optim:Adam"}
_registered: dict[str, str] = {}  # register(): name → "module:Class"
_declared: dict[str, type[Optimizer]] | None = None


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def declared() -> dict[str, type[Optimizer]]:
    """The optimizers the modules of :mod:`deeplandscape.optim` declare (their ``OPTIMIZERS``), by name,
    aliases included, in module order; ``TypeError`` for a malformed declaration or a name declared twice."""
    global _declared
    if _declared is None:
        found: dict[str, type[Optimizer]] = {}
        for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if module.name.startswith("_") or module.name == "registry":
                continue
            entries = getattr(importlib.import_module(f"{__package__}.{module.name}"), "OPTIMIZERS", {})
            for name, cls in entries.items():
                if name != _normalize(name) or not (isinstance(cls, type) and issubclass(cls, Optimizer)):
                    raise TypeError(
                        f"{__package__}.{module.name}.OPTIMIZERS[{name!r}]: expected a lower-case hyphenated "
                        f"name and an Optimizer subclass, got {cls!r}"
                    )
                if found.get(name, cls) is not cls:
                    raise TypeError(f"{__package__}.{module.name}.OPTIMIZERS: {name!r} is declared twice")
                found[name] = cls
        _declared = found
    return dict(_declared)


def _targets() -> dict[str, str]:
    """Every name with its import path: the declared optimizers, torch's, and the registered ones."""
    ours = {name: f"{cls.__module__}:{cls.__qualname__}" for name, cls in declared().items()}
    return {**_TORCH, **ours, **_registered}


def register(name: str, target: str) -> None:
    """Register ``target`` (``"package.module:ClassName"``) as ``name``; ``ValueError`` if bad or taken."""
    key = _normalize(name)
    if ":" not in target:
        raise ValueError(f"Invalid target: {target!r} (must be 'package.module:ClassName')")
    known = _targets().get(key)
    if known is not None and known != target:
        raise ValueError(f"Invalid name: {name!r} (already registered for {known})")
    _registered[key] = target


def _importable(target: str) -> bool:
    module = target.split(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def available() -> list[str]:
    """Sorted names whose module can be imported in this installation."""
    return sorted(name for name, target in _targets().items() if _importable(target))


def get(name: str) -> type[Optimizer]:
    """The optimizer class registered as ``name`` (e.g. ``"entropy-sgd"``); ``ValueError`` if unknown."""
    if not isinstance(name, str):
        raise ValueError(
            f"Invalid optimizer name: {name!r} (must be a string; available: {', '.join(available())})"
        )
    key = _normalize(name)
    ours = declared().get(key)
    if ours is not None:
        return ours
    target = _targets().get(key)
    if target is None or not _importable(target):
        raise ValueError(f"Invalid optimizer name: {name!r} (available: {', '.join(available())})")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
