"""The model zoo: every network of the papers by name, with its input shape and the paper's count."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .allcnn import AllCNN
from .charlstm import CharLSTM
from .choromanska import CHOROMANSKA_WIDTHS, ChoromanskaNet
from .lenet import lenet, lenet_anneal, lenet_parle, small_lenet, small_lenet_bn
from .mnistfc import DeepThinMnistFC, MnistFC
from .smallfc import SmallFC, SmallFCBN
from .teacher import SAGUN_STUDENT_SIZES, SagunMLP


@dataclass(frozen=True)
class NetSpec:
    """One entry of the zoo.

    ``paper_parameters`` is the count the paper states (``None`` where it gives none) and
    ``paper_rtol`` the precision of that statement (0 for an exact count, e.g. 0.005 for "1.86 million").
    ``input_shape`` excludes the batch dimension; ``input_dtype`` is ``torch.long`` for the character models.
    """

    name: str
    build: Callable[..., nn.Module]
    paper: str
    input_shape: tuple[int, ...]
    paper_parameters: int | None = None
    paper_rtol: float = 0.0
    input_dtype: torch.dtype = torch.float32
    defaults: dict = field(default_factory=dict)


def _specs() -> list[NetSpec]:
    specs = [
        NetSpec(
            f"choromanska-{n1}", ChoromanskaNet, "Choromanska et al. §5.1", (1, 10, 10), defaults={"n1": n1}
        )
        for n1 in CHOROMANSKA_WIDTHS
    ]
    specs += [
        NetSpec("mnistfc", MnistFC, "Thesis §4.6, §3.3.2", (1, 28, 28), 1_860_000, 0.005),
        NetSpec("mnistfc-deep", DeepThinMnistFC, "AnnealSGD paper §5.3", (1, 28, 28)),
        NetSpec("lenet", lenet, "Thesis §4.6", (1, 28, 28), 131_220),
        NetSpec("lenet-parle", lenet_parle, "Thesis §5.4.2", (1, 28, 28)),
        NetSpec("lenet-anneal", lenet_anneal, "AnnealSGD paper §5.4", (1, 28, 28)),
        NetSpec("small-lenet", small_lenet, "Thesis §3.3.1", (1, 28, 28), 47_658),
        NetSpec("small-lenet-bn", small_lenet_bn, "Thesis §6.3.1", (1, 28, 28), 13_338),
        NetSpec("smallfc", SmallFC, "Thesis §3.3.1", (1, 28, 28), 50_890),
        NetSpec("small-fc", SmallFCBN, "Thesis §6.3.1", (1, 7, 7)),
        NetSpec("tiny-fc", SmallFCBN, "Thesis §6.3.3", (1, 7, 7), defaults={"hidden": 16, "classes": 5}),
        NetSpec("allcnn", AllCNN, "Thesis §4.6, §3.3.3", (3, 32, 32), 1_670_000, 0.005),
        NetSpec(
            "small-allcnn", AllCNN, "Thesis §6.3.1", (3, 32, 32), 26_982, defaults={"channels": (12, 24)}
        ),
        NetSpec(
            "sagun-teacher", SagunMLP, "Sagun et al. §3.1.3", (1, 28, 28), defaults={"h1": 500, "h2": 300}
        ),
    ]
    specs += [
        NetSpec(
            f"sagun-student-{h1}-{h2}",
            SagunMLP,
            "Sagun et al. Table 1",
            (1, 28, 28),
            defaults={"h1": h1, "h2": h2},
        )
        for h1, h2 in SAGUN_STUDENT_SIZES
    ]
    specs += [
        NetSpec("char-lstm", CharLSTM, "Thesis §3.3.1", (32,), 32_640, input_dtype=torch.long),
        NetSpec(
            "char-lstm-2x128",
            CharLSTM,
            "Thesis §3.3.5",
            (50,),
            input_dtype=torch.long,
            defaults={"vocab": 87, "hidden": 128, "layers": 2},
        ),
    ]
    return specs


SPECS: dict[str, NetSpec] = {s.name: s for s in _specs()}


def available() -> list[str]:
    """Names accepted by :func:`get`, in table order."""
    return list(SPECS)


def spec(name: str) -> NetSpec:
    """The :class:`NetSpec` of ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if name not in SPECS:
        raise ValueError(f"unknown network name={name!r}; available: {', '.join(SPECS)}")
    return SPECS[name]


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
        if SPECS[r.name].paper_rtol > 0:
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
