"""Factories of the models people write (tests/analysis/_zoo.py), for ``deeplandscape inspect``: an LSTM
classifier, dict and tuple outputs, Dropout. The tests name them by file path
(``tests/app/_models.py:lstm``), as a user names a file of their own."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tests.analysis._zoo import DictOutput, Recurrent, _sequence_data, _vector_data


class FeaturesFirst(DictOutput):
    """Returns ``(features, logits)``: the logits are not the first output."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = super().forward(x)
        return out["features"], out["logits"]


def _seeded(build, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def lstm(seed: int = 0, inplace: bool = True) -> nn.Module:
    return _seeded(lambda: Recurrent(nn.LSTM), seed)


def dict_output(seed: int = 0, inplace: bool = True) -> nn.Module:
    return _seeded(lambda: DictOutput(inplace=inplace), seed)


def tuple_output(seed: int = 0, inplace: bool = True) -> nn.Module:
    return _seeded(lambda: FeaturesFirst(inplace=inplace), seed)


def dropout_mlp(seed: int = 0) -> nn.Module:
    return _seeded(lambda: nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Dropout(0.3), nn.Linear(6, 3)), seed)


def _batches(data: tuple[Tensor, Tensor], batch_size: int) -> list[tuple[Tensor, Tensor]]:
    x, y = data
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]


def vectors(n: int = 20, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    return _batches(_vector_data(n, seed), 8)


def sequences(n: int = 12, seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    return _batches(_sequence_data(n, seed), 5)
