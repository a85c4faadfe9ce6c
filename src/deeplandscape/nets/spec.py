"""What a network module declares for the zoo: a :class:`NetSpec` per name it builds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn


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
