"""Parameters and table helpers shared by the spin-glass experiments."""

from __future__ import annotations

from typing import Any

import numpy as np

from deeplandscape.experiments._landscape import one_thread
from deeplandscape.experiments.spec import Param


def descent_params(max_steps: int = 20_000) -> dict[str, Param]:
    """lr, tol and max_steps of projected gradient descent (Thesis §2.4.1: η = 0.1, tol = 1e-4)."""
    return {
        "lr": Param("float", 0.1, "step size η of projected gradient descent", low=1e-8),
        "tol": Param("float", 1e-4, "stop when ‖Riemannian gradient‖ ≤ tol", low=0.0),
        "max_steps": Param("int", max_steps, "at most this many steps per run", low=1),
    }


def summary(values: np.ndarray) -> dict[str, float]:
    """mean, std, min, max of an array, as plain floats."""
    v = np.asarray(values, dtype=float)
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
    }


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown pipe table; floats with 4 significant digits."""

    def cell(x: Any) -> str:  # a literal "|" would end the cell
        return (f"{x:.4g}" if isinstance(x, float) else str(x)).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def endpoint_curvature(hamiltonian: Any, sigma: Any, chunk: int) -> dict[str, np.ndarray]:
    """At each endpoint: the index (negative eigenvalues of the Riemannian Hessian, AnnealSGD paper §4.1),
    the smallest eigenvalue ``lambda_min`` and the Riemannian gradient norm that says whether the point
    is critical at all (``grad_norm``); the Hessians are taken ``chunk`` endpoints at a time."""
    from deeplandscape.spinglass import index

    with one_thread():  # the same bits on every call: MKL's threaded float32 eigensolver differs
        parts = [index(hamiltonian, c) for c in sigma.split(chunk)]
    return {
        "index": np.concatenate([r.index.numpy() for r in parts]).astype(np.int64),
        "lambda_min": np.concatenate([r.eigenvalues[:, 0].double().numpy() for r in parts]),
        "grad_norm": np.concatenate([r.grad_norm.double().numpy() for r in parts]),
    }
