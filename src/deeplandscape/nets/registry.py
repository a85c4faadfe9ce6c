"""The model zoo: every network of the papers by name, with its input shape and the paper's count.

The zoo is derived from the modules: every module of :mod:`deeplandscape.nets` whose name does not start
with an underscore and that defines ``NETS`` (a tuple of :class:`~deeplandscape.nets.spec.NetSpec`)
contributes its networks, in module order, read when the zoo is first used.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .spec import NetSpec

_specs: dict[str, NetSpec] | None = None


def specs() -> dict[str, NetSpec]:
    """Every network of the zoo by name (the modules' ``NETS``); ``TypeError`` for a malformed declaration
    or a name declared twice."""
    global _specs
    if _specs is None:
        found: dict[str, NetSpec] = {}
        for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if module.name.startswith("_") or module.name in ("registry", "cli"):
                continue
            for entry in getattr(importlib.import_module(f"{__package__}.{module.name}"), "NETS", ()):
                if not isinstance(entry, NetSpec):
                    raise TypeError(f"{__package__}.{module.name}.NETS: {entry!r} is not a NetSpec")
                if entry.name in found:
                    raise TypeError(f"{__package__}.{module.name}.NETS: {entry.name!r} is declared twice")
                found[entry.name] = entry
        _specs = found
    return dict(_specs)


def available() -> list[str]:
    """Names accepted by :func:`get`, in table order."""
    return list(specs())


def spec(name: str) -> NetSpec:
    """The :class:`NetSpec` of ``name``; unknown names raise ``ValueError`` listing the known ones."""
    known = specs()
    if name not in known:
        raise ValueError(f"unknown network name={name!r}; available: {', '.join(known)}")
    return known[name]


def get(name: str, *, seed: int | None = 0, **kw) -> nn.Module:
    """Build the network ``name`` with the paper's architecture; keyword arguments override its defaults.

    With an integer ``seed`` the initial weights are drawn from a private generator state
    (``torch.random.fork_rng`` + ``torch.manual_seed(seed)``), so the same seed gives the same network and
    the global RNG is left untouched; ``seed=None`` uses the global RNG.
    """
    s = spec(name)
    kwargs = {**s.defaults, **kw}
    if seed is None:
        return s.build(**kwargs)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int or None, got {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return s.build(**kwargs)


def parameter_count(model: nn.Module) -> int:
    """The number of trainable scalars, ``Σ_θ numel(θ)`` over parameters with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def example_input(name: str, batch: int = 2, *, seed: int = 0) -> torch.Tensor:
    """A random batch of the network's input shape (symbol indices for the character models)."""
    s = spec(name)
    g = torch.Generator().manual_seed(seed)
    if s.input_dtype == torch.long:
        vocab = s.defaults.get("vocab", 96)
        return torch.randint(vocab, (batch, *s.input_shape), generator=g)
    return torch.rand((batch, *s.input_shape), generator=g) * 2 - 1


@dataclass(frozen=True)
class NetRow:
    """One row of the ``deeplandscape nets`` table."""

    name: str
    parameters: int
    paper_parameters: int | None
    paper: str
    input_shape: tuple[int, ...]


def table(names: list[str] | None = None) -> list[NetRow]:
    """The rows printed by ``deeplandscape nets``: each network's parameter count beside the paper's."""
    rows = []
    for name in names if names is not None else available():
        s = spec(name)
        rows.append(NetRow(name, parameter_count(get(name)), s.paper_parameters, s.paper, s.input_shape))
    return rows


def format_table(rows: list[NetRow]) -> str:
    """Plain-text rendering of :func:`table` (paper counts stated approximately are shown as e.g. 1.86M)."""

    def paper_count(r: NetRow) -> str:
        if r.paper_parameters is None:
            return "-"
        if spec(r.name).paper_rtol > 0:
            return f"≈{r.paper_parameters / 1e6:.2f}M"
        return f"{r.paper_parameters:,}"

    header = ("name", "parameters", "paper count", "paper", "input shape")
    body = [
        (r.name, f"{r.parameters:,}", paper_count(r), r.paper, "×".join(map(str, r.input_shape)))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *body]]  # fmt: skip
    return "\n".join(lines)
