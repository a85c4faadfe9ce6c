"""Eigenvalue counts in an interval: the quadrature's bounds against a kernel-polynomial bracket (JSON).

At the same number of operator products per probe, on spectra known exactly, compares

* ``quadrature``: :meth:`deeplandscape.analysis.slq.SpectralDensity.count`, stochastic Lanczos quadrature
  with ``m`` nodes per probe and the Chebyshev–Markov–Stieltjes bounds (the quadrature bias included);
* ``kpm``: the kernel polynomial method (Di Napoli, Polizzi & Saad 2016): Hutchinson on a Jackson-damped
  Chebyshev expansion of degree ``2m`` of the interval's indicator (``m`` products per probe with the
  doubling ``T_{2k} = 2 T_k² − 1``), its central estimate, and a rigorous bracket: the Jackson kernel is
  positive, so the damped indicator ``S`` of ``[a − w, b + w]`` divided by its minimum over ``[a, b]`` lies
  above ``1[a, b]``, and ``(S − t)/(1 − t)`` for ``[a + w, b − w]``, ``t`` its maximum outside ``[a, b]``,
  below it (``w`` chosen per bound from a grid of kernel widths); both with a 95% allowance for the probe
  noise.

Reported per case and interval: the exact count, each method's estimate, its bounds and their width, and
whether the bounds contain the exact count.

    .venv/bin/python benchmarks/bench_counts.py [--probes 10] [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch
from scipy.stats import t as student_t
from torch import nn

from deeplandscape.analysis.examples import gaussian_blobs, image_blobs, tiny_cnn, tiny_mlp
from deeplandscape.analysis.hessian import exact_hessian
from deeplandscape.analysis.slq import spectral_density


def _jackson(degree: int) -> np.ndarray:
    k = np.arange(degree + 1)
    a = math.pi / (degree + 2)
    return ((degree - k + 2) * np.cos(k * a) + np.sin(k * a) / math.tan(a)) / (degree + 2)


def _indicator(lo: float, hi: float, degree: int) -> np.ndarray:
    """Chebyshev coefficients of 1[lo, hi] on [−1, 1]."""
    lo, hi = max(-1.0, lo), min(1.0, hi)
    if lo >= hi:
        return np.zeros(degree + 1)
    ta, tb = math.acos(lo), math.acos(hi)
    k = np.arange(1, degree + 1)
    return np.concatenate([[(ta - tb) / math.pi], 2 * (np.sin(k * ta) - np.sin(k * tb)) / (math.pi * k)])


def _moments(a: torch.Tensor, steps: int, probes: int, lo: float, hi: float, seed: int) -> np.ndarray:
    """Per probe, ``zᵀ T_k(Ã) z`` for k ≤ 2·steps, Ã = (A − c)/h mapping [lo, hi] to [−1, 1]."""
    c, h = (hi + lo) / 2, (hi - lo) / 2
    g = torch.Generator().manual_seed(seed)
    out = np.zeros((probes, 2 * steps + 1))
    for p in range(probes):
        z = torch.randint(0, 2, (a.shape[0],), generator=g).double() * 2 - 1
        ts = [z, (a @ z - c * z) / h]
        for _ in range(steps - 1):
            ts.append(2 * (a @ ts[-1] - c * ts[-1]) / h - ts[-2])
        zz, z1 = float(z @ z), float(z @ ts[1])
        for k in range(steps + 1):
            out[p, 2 * k] = 2 * float(ts[k] @ ts[k]) - zz
            if 2 * k + 1 <= 2 * steps:
                out[p, 2 * k + 1] = 2 * float(ts[k + 1] @ ts[k]) - z1
    return out


def _kpm(moments: np.ndarray, lo: float, hi: float, x_lo: float, x_hi: float) -> dict:
    degree = moments.shape[1] - 1
    jackson = _jackson(degree)
    n = moments.shape[0]
    allowance = float(student_t.ppf(0.975, n - 1)) / math.sqrt(n)
    xs = np.linspace(-1, 1, 20001)
    inside = (xs >= x_lo) & (xs <= x_hi)
    per = moments @ (_indicator(x_lo, x_hi, degree) * jackson)
    upper, lower = math.inf, 0.0
    for w in np.geomspace(0.2, 20, 12) * math.pi / degree:
        cu = _indicator(x_lo - w, x_hi + w, degree) * jackson
        m = np.polynomial.chebyshev.chebval(xs[inside], cu).min()
        up = moments @ cu / m
        upper = min(upper, up.mean() + allowance * up.std(ddof=1))
        if x_lo + w < x_hi - w:
            cl = _indicator(x_lo + w, x_hi - w, degree) * jackson
            t = max(0.0, np.polynomial.chebyshev.chebval(xs[~inside], cl).max())
            low = (moments @ cl - t * moments[:, 0]) / (1 - t)
            lower = max(lower, low.mean() - allowance * low.std(ddof=1))
    return {"estimate": float(per.mean()), "lower": float(lower), "upper": float(upper)}


def _case(name: str, a: torch.Tensor, intervals: list[tuple[float, float]], probes: int, steps: int) -> list:
    exact = torch.linalg.eigvalsh(a)
    d = a.shape[0]
    span = float(exact.max() - exact.min())
    lo, hi = float(exact.min()) - 0.01 * span, float(exact.max()) + 0.01 * span
    moments = _moments(a, steps, probes, lo, hi, seed=0)
    density = spectral_density(a, num_probes=probes, num_steps=steps, seed=0)
    rows = []
    for low, high in intervals:
        truth = int(((exact >= low) & (exact <= high)).sum())
        count = density.count(low, high)
        kpm = _kpm(
            moments,
            low,
            high,
            (max(low, lo) - (hi + lo) / 2) / ((hi - lo) / 2),
            (min(high, hi) - (hi + lo) / 2) / ((hi - lo) / 2),
        )
        quad = {"estimate": count.fraction * d, "lower": count.lower * d, "upper": count.upper * d}
        row = {"case": name, "d": d, "interval": [low, high], "exact": truth}
        for key, r in (("quadrature", quad), ("kpm", kpm)):
            row[key] = {
                **{k: round(v, 1) for k, v in r.items()},
                "width": round(r["upper"] - r["lower"], 1),
                "contains_exact": bool(r["lower"] <= truth <= r["upper"]),
            }
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=60, help="products per probe (KPM degree 2·steps)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    d = 1000
    bulk = torch.cat([torch.tensor([50.0]), 1.0 + 1.2 * torch.randn(d - 1, generator=g, dtype=torch.float64)])
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    cases = [("bulk through zero (Gaussian, outlier 50)", (q * bulk) @ q.T)]
    loss = nn.CrossEntropyLoss()
    for name, model, data in [
        ("tiny_mlp", tiny_mlp(), gaussian_blobs()),
        ("tiny_cnn", tiny_cnn(), image_blobs()),
    ]:
        data = [(x.double(), y) for x, y in data]
        cases.append((f"{name} Hessian", exact_hessian(model.double(), loss, data).matrix))
    intervals = [(-math.inf, -1e-3), (-1e-3, 1e-3), (-0.1, 0.1)]
    rows = [
        row for name, a in cases for row in _case(name, (a + a.T) / 2, intervals, args.probes, args.steps)
    ]
    print(
        json.dumps(
            {"torch": torch.__version__, "probes": args.probes, "steps": args.steps, "rows": rows}, indent=1
        )
    )


if __name__ == "__main__":
    main()
