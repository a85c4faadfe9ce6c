"""Small building blocks shared by the model families (the papers' layer notation)."""

from __future__ import annotations

from torch import nn


def fc_block(n_in: int, n_out: int, *, batch_norm: bool, dropout: float) -> nn.Sequential:
    """Thesis §4.6 ``fc_d``: a dense layer with ``d`` outputs, ReLU, optional batch norm, optional dropout."""
    layers: list[nn.Module] = [nn.Linear(n_in, n_out), nn.ReLU()]
    if batch_norm:
        layers.append(nn.BatchNorm1d(n_out))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def conv_block(
    c_in: int, c_out: int, kernel: int, *, pool: int, batch_norm: bool, dropout: float, stride: int = 1,
    padding: int = 0,
) -> nn.Sequential:  # fmt: skip
    """Thesis §4.6 ``conv_{c,k,m}``: a k×k convolution with c channels, batch norm, ReLU and m×m max-pooling.

    ``pool=1`` means no pooling; ``dropout`` follows the block when positive.
    """
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU())
    if pool > 1:
        layers.append(nn.MaxPool2d(pool))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def check_probability(name: str, value: float) -> float:
    """Validate a dropout probability."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)


def check_positive_int(name: str, value: int) -> int:
    """Validate a layer width or count."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value
