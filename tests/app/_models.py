"""Models people write, for ``deeplandscape inspect``: an LSTM classifier, dict and tuple outputs, Dropout.

The tests name these factories by file path (``tests/app/_models.py:lstm``), as a user names a file of
their own."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Recurrent(nn.Module):
    """An LSTM over a sequence of 3-vectors, classifying from its last step (vmap has no LSTM rule)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


class DictOutput(nn.Module):
    """Returns ``{"features": ..., "logits": ...}`` (a HuggingFace-style output)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 6), nn.ReLU(inplace=True))
        self.head = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.body(x)
        return {"features": features, "logits": self.head(features)}


class TupleOutput(DictOutput):
    """Returns ``(features, logits)``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = super().forward(x)
        return out["features"], out["logits"]


def _seeded(build, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def lstm(seed: int = 0) -> nn.Module:
    return _seeded(Recurrent, seed)


def dict_output(seed: int = 0) -> nn.Module:
    return _seeded(DictOutput, seed)


def tuple_output(seed: int = 0) -> nn.Module:
    return _seeded(TupleOutput, seed)


def dropout_mlp(seed: int = 0) -> nn.Module:
    return _seeded(lambda: nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Dropout(0.3), nn.Linear(6, 3)), seed)


def _batches(x: Tensor, y: Tensor, batch_size: int) -> list[tuple[Tensor, Tensor]]:
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]


def vectors(n: int = 20, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return _batches(torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g), 8)


def sequences(n: int = 12, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return _batches(torch.randn(n, 4, 3, generator=g), torch.randint(0, 3, (n,), generator=g), 5)
