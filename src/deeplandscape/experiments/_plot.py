"""Matplotlib without a display, and a figure saved atomically."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from deeplandscape.rundir import save_figure

__all__ = ["plt", "save"]


def save(fig, path: Path) -> None:
    save_figure(path, fig)
    plt.close(fig)
