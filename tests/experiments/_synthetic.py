"""Synthetic runs of a comparison (``results.json`` and the npz of per-seed arrays) on which a claim's
verdict is known by construction: what the claim tests of ``anneal``, ``entropy-sgd``, ``relaxation`` and
``sgld`` decide."""

from __future__ import annotations

import numpy as np

from deeplandscape.experiments._compare import HEAT_THESIS_UPDATES as HEAT_UPDATES  # noqa: F401
from deeplandscape.experiments.claims import RunData

GAMMAS = [1e-4, 1e-3]
SEEDS, SAMPLES = 5, 4000


def wrong(rate: float, seed: int, seeds: int = SEEDS, samples: int = SAMPLES) -> np.ndarray:
    """(seeds, samples) wrong/right indicators, each wrong with probability ``rate`` (%)."""
    return (np.random.default_rng(seed).random((seeds, samples)) < rate / 100).astype(float)


def method(
    optimizer: str,
    *,
    error: float = 2.0,
    seed: int = 0,
    updates: int = 1000,
    wrong_: np.ndarray | None = None,
    row: dict | None = None,
    **arrays: np.ndarray,
) -> dict:
    """One method of a synthetic run: its optimizer, its test errors (independent draws at ``error`` %, or
    ``wrong_``), its own updates and any other per-seed arrays (``local_entropy=…``)."""
    w = wrong(error, seed) if wrong_ is None else wrong_
    return {"optimizer": optimizer, "updates": updates, "arrays": {"test_per_sample": w, **arrays},
            "row": row or {}}  # fmt: skip


def run(tmp_path, methods: dict[tuple[str, str], dict], npz: str = "cmp.npz", **results) -> RunData:
    """A run of ``methods`` ((model, label) → :func:`method`) written into ``tmp_path``."""
    arrays, rows = {}, []
    for (model, label), m in methods.items():
        for key, value in m["arrays"].items():
            arrays[f"{model}_{label}_{key}"] = np.asarray(value, dtype=float)
        w = m["arrays"]["test_per_sample"]
        rows.append({
            "model": model, "method": label, "optimizer": m["optimizer"], "seeds": int(w.shape[0]),
            "own_updates": m["updates"], "error_mean": float(100 * w.mean()), "error_std": 0.1,
            "val_error_mean": float(100 * w.mean()), "val_error_std": 0.1, "effective_epochs": 3.0,
            **m["row"],
        })  # fmt: skip
    np.savez(tmp_path / npz, **arrays)
    base = {"npz": npz, "runs": rows, "width": {"gammas": GAMMAS, "epsilon": 0.1, "samples": 128}}
    return RunData({**base, **results}, {}, tmp_path)


def per_seed(values, seeds: int = SEEDS, columns: int | None = None, spread: float = 0.01,
             seed: int = 0) -> np.ndarray:  # fmt: skip
    """Per-seed values around ``values`` (a number, or one per column) with a small seeded spread."""
    rng = np.random.default_rng(seed)
    base = np.atleast_1d(np.asarray(values, dtype=float))
    shape = (seeds,) if columns is None else (seeds, columns)
    return (base if columns else base[0]) + spread * rng.standard_normal(shape)


def width(f: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Width arrays of a method whose Local Entropy is about ``f`` at every γ of :data:`GAMMAS`."""
    le = per_seed([f, f + 0.1], columns=len(GAMMAS), seed=seed)
    return {
        "local_entropy": le, "local_entropy_excess": le - per_seed(f - 0.05, seed=seed + 7)[:, None],
        "adaptive_top": 10 ** per_seed(f, seed=seed + 1), "hessian_top": 10 ** per_seed(f, seed=seed + 2),
    }  # fmt: skip
