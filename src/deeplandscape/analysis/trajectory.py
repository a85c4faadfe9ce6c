"""Long-term weight trajectories of SGD (Thesis §6.3.3, Fig. 6.3, Remarks 6.41–6.42).

:class:`TrajectoryRecorder` stores a snapshot x_k of the weights at each call of :meth:`record` (typically
once per epoch): all trainable weights, or a fixed seeded random projection of them. From the series,
:func:`trajectory_spectrum` computes, for each stored weight i,

* the FFT amplitude of the epoch-to-epoch differences Δ_k^i = x_{k+1}^i − x_k^i (Fig. 6.3a), normalized
  as |F_m^i| / (√n σ̂^i) where F^i = rfft(Δ^i − mean) and σ̂^i the standard deviation of Δ^i: for white
  noise the squared normalized amplitude at an interior frequency is Exp(1)-distributed, so the 95% and
  99% white-noise bands are √(−ln 0.05) and √(−ln 0.01) (a flat spectrum: Brownian motion);
* the sample autocorrelation r^i(ℓ) = Σ_k (z_k − z̄)(z_{k+ℓ} − z̄) / Σ_k (z_k − z̄)² of the weights
  z = x^i (Fig. 6.3b; ``acf_of="differences"`` uses z = Δ^i), with Bartlett's white-noise bands
  ±z_{α}/√n, z_{0.95} = 1.960, z_{0.99} = 2.576;

both summarized by their mean and standard deviation over the weight index i, as in Fig. 6.3.
The recorder can also store the full-batch gradient norm ‖∇f(x_k)‖ at each snapshot (Fig. 6.3c).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ._functional import flatten
from ._model import (
    Batch,
    LossFn,
    Output,
    as_batches,
    check_output,
    preserved,
    select_output,
    trainable_parameters,
)

FFT_BAND_95 = math.sqrt(-math.log(0.05))
FFT_BAND_99 = math.sqrt(-math.log(0.01))
ACF_Z_95 = 1.959963984540054
ACF_Z_99 = 2.5758293035489004


@dataclass(frozen=True)
class Trajectory:
    """Recorded snapshots: ``weights[k]`` is the (projected) weight vector at ``steps[k]``.

    ``indices`` are the stored coordinates (``projection="subset"``), ``None`` for all weights or a
    Gaussian projection; ``grad_norms`` the full-batch gradient norms ‖∇f(x_k)‖ (``None`` if not recorded);
    ``dimension`` the number of trainable weights d.
    """

    weights: np.ndarray
    steps: np.ndarray
    grad_norms: np.ndarray | None
    projection: str
    indices: np.ndarray | None
    dimension: int


@dataclass(frozen=True)
class TrajectorySpectrum:
    """FFT amplitude of the differences and autocorrelation of a trajectory (Thesis Fig. 6.3a–b).

    ``frequencies`` (cycles per snapshot), ``amplitude_mean``/``amplitude_std``: the normalized FFT amplitude
    averaged over weights (flat ≈ √π/2 for white noise); ``fft_band95``/``fft_band99``: white-noise bands of
    the per-weight normalized amplitude; ``fft_exceed95``/``fft_exceed99``: the fraction of (weight, interior
    frequency) pairs above them (≈ 0.05 and 0.01 for white noise); ``lags``, ``acf_mean``, ``acf_std``: the
    autocorrelation averaged over weights; ``acf_band95``/``acf_band99``: ±z/√n; ``acf_exceed95``/
    ``acf_exceed99``: the fraction of (weight, lag ≥ 1) pairs outside them; ``n_snapshots`` after burn-in.
    """

    frequencies: np.ndarray
    amplitude_mean: np.ndarray
    amplitude_std: np.ndarray
    fft_band95: float
    fft_band99: float
    fft_exceed95: float
    fft_exceed99: float
    lags: np.ndarray
    acf_mean: np.ndarray
    acf_std: np.ndarray
    acf_band95: float
    acf_band99: float
    acf_exceed95: float
    acf_exceed99: float
    n_snapshots: int
    n_weights: int


def full_gradient_norm(
    model: nn.Module,
    loss_fn: LossFn,
    data: Iterable[Batch] | Batch,
    *,
    train: bool = False,
    output: Output = None,
) -> float:
    """‖∇f(x)‖ with f the size-weighted mean loss over the whole data set (Thesis Fig. 6.3c).

    Evaluated in eval mode unless ``train=True``; ``output`` selects the logits of a model with dict or
    tuple outputs; the model (and its ``.grad`` fields) is left unchanged.
    """
    check_output(output)
    batches = as_batches(data)
    n_total = sum(inputs.shape[0] for inputs, _ in batches)
    with preserved(model, train=train):
        params = list(trainable_parameters(model).values())
        grads = [torch.zeros_like(p) for p in params]
        for inputs, targets in batches:
            with torch.enable_grad():
                loss = loss_fn(select_output(model(inputs), output), targets)
            if not torch.isfinite(loss.detach()):
                raise ValueError(f"Non-finite loss ({float(loss.detach())}) in full_gradient_norm")
            for g, gb in zip(grads, torch.autograd.grad(loss, params, allow_unused=True), strict=True):
                if gb is not None:  # a parameter the forward pass does not use has a zero gradient
                    g.add_(gb, alpha=inputs.shape[0] / n_total)
        return float(torch.sqrt(sum(g.pow(2).sum() for g in grads)))


class TrajectoryRecorder:
    """Record weight snapshots during training (Thesis §6.3.3): call :meth:`record` once per epoch.

    ``n_weights=None`` stores all d trainable weights. Otherwise ``projection="subset"`` stores a fixed
    random subset of ``n_weights`` coordinates (chosen once from ``seed``: the per-weight series of
    Fig. 6.3), and ``projection="gaussian"`` stores P x with P ∈ R^{n_weights × d} a fixed Gaussian matrix
    with entries N(0, 1/n_weights), regenerated in row blocks from ``seed`` at each call so it is never
    held in memory. Given ``loss_fn`` and ``data``, each snapshot also records the full-batch gradient
    norm ‖∇f(x_k)‖ (costing one pass over the data; ``output`` selects the logits of a model with dict
    or tuple outputs). Snapshots are stored on the CPU in float64.
    """

    def __init__(
        self,
        model: nn.Module,
        n_weights: int | None = None,
        *,
        projection: str = "subset",
        seed: int = 0,
        loss_fn: LossFn | None = None,
        data: Iterable[Batch] | Batch | None = None,
        output: Output = None,
    ) -> None:
        self.model = model
        self.dimension = sum(p.numel() for p in trainable_parameters(model).values())
        if projection not in ("subset", "gaussian"):
            raise ValueError(
                f"Invalid projection: {projection!r}; allowed values are 'subset' and 'gaussian'"
            )
        if n_weights is not None and not (isinstance(n_weights, int) and 1 <= n_weights <= self.dimension):
            raise ValueError(
                f"Invalid n_weights: {n_weights!r}; must be None or an integer in [1, {self.dimension}]"
            )
        if (loss_fn is None) != (data is None):
            raise ValueError(
                "Invalid arguments: give both loss_fn and data (to record gradient norms) or neither"
            )
        self.n_weights = n_weights
        self.projection = "all" if n_weights is None else projection
        self.seed = int(seed)
        self.loss_fn = loss_fn
        self.output = check_output(output)
        self.batches = None if data is None else as_batches(data)
        self.indices: Tensor | None = None
        if self.projection == "subset":
            gen = torch.Generator().manual_seed(self.seed)
            self.indices = torch.randperm(self.dimension, generator=gen)[:n_weights].sort().values
        self._weights: list[np.ndarray] = []
        self._steps: list[int] = []
        self._grad_norms: list[float] = []

    def _project(self, x: Tensor) -> Tensor:
        if self.projection == "all":
            return x
        if self.projection == "subset":
            return x[self.indices.to(x.device)]
        gen = torch.Generator().manual_seed(self.seed)
        k, rows, out = self.n_weights, max(1, 2**22 // self.dimension), []
        for start in range(0, k, rows):
            block = torch.randn(min(rows, k - start), self.dimension, generator=gen, dtype=torch.float64)
            out.append(block.to(x.device) @ x / math.sqrt(k))
        return torch.cat(out)

    @torch.no_grad()
    def record(self, step: int | None = None) -> None:
        """Store a snapshot of the current weights (and the full-batch gradient norm if configured)."""
        x = flatten(trainable_parameters(self.model)).to(torch.float64)
        if not torch.isfinite(x).all():
            raise ValueError(f"Non-finite weights at snapshot {len(self._steps)}")
        self._weights.append(self._project(x).cpu().numpy())
        self._steps.append(len(self._steps) if step is None else int(step))
        if self.batches is not None:
            norm = full_gradient_norm(self.model, self.loss_fn, self.batches, output=self.output)
            self._grad_norms.append(norm)

    def __len__(self) -> int:
        return len(self._steps)

    def trajectory(self) -> Trajectory:
        """The snapshots recorded so far as a :class:`Trajectory`."""
        if not self._weights:
            raise ValueError("Invalid recorder: no snapshot recorded yet (call record())")
        return Trajectory(
            weights=np.stack(self._weights),
            steps=np.asarray(self._steps),
            grad_norms=np.asarray(self._grad_norms) if self.batches is not None else None,
            projection=self.projection,
            indices=None if self.indices is None else self.indices.numpy(),
            dimension=self.dimension,
        )


def autocorrelation(series: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation r(ℓ), ℓ = 0..max_lag, of each column of ``series`` (n × m), by FFT.

    r(ℓ) = Σ_{k<n−ℓ} (z_k − z̄)(z_{k+ℓ} − z̄) / Σ_k (z_k − z̄)² (the biased estimator Bartlett's bands
    refer to). A constant column gives NaN-free zeros beyond lag 0.
    """
    z = np.asarray(series, dtype=np.float64)
    n = z.shape[0]
    z = z - z.mean(axis=0)
    size = 1 << (2 * n - 1).bit_length()
    spec = np.fft.rfft(z, n=size, axis=0)
    acov = np.fft.irfft(spec * np.conj(spec), n=size, axis=0)[: max_lag + 1]
    var = acov[0]
    safe = np.where(var > 0, var, 1.0)
    acf = np.where(var > 0, acov / safe, 0.0)
    acf[0] = 1.0
    return acf


def trajectory_spectrum(
    trajectory: Trajectory | np.ndarray | Tensor,
    *,
    burnin: int = 0,
    max_lag: int | None = None,
    acf_of: str = "weights",
) -> TrajectorySpectrum:
    """FFT of the epoch-to-epoch differences and autocorrelation of a trajectory (Thesis Fig. 6.3a–b).

    ``trajectory`` is a :class:`Trajectory` or an array of snapshots (n × m: n snapshots of m weights);
    the first ``burnin`` snapshots are dropped (Thesis §6.3.3 discards the burn-in epochs). ``max_lag``
    defaults to n // 4. See the module docstring for the normalization and the white-noise bands.
    """
    weights = trajectory.weights if isinstance(trajectory, Trajectory) else trajectory
    if isinstance(weights, Tensor):
        weights = weights.detach().cpu().numpy()
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim == 1:
        weights = weights[:, None]
    if weights.ndim != 2:
        raise ValueError(f"Invalid trajectory: shape {weights.shape}; expected (snapshots, weights)")
    if not (isinstance(burnin, int) and burnin >= 0):
        raise ValueError(f"Invalid burnin: {burnin!r}; must be an integer >= 0")
    if acf_of not in ("weights", "differences"):
        raise ValueError(f"Invalid acf_of: {acf_of!r}; allowed values are 'weights' and 'differences'")
    weights = weights[burnin:]
    n = weights.shape[0]
    if n < 8:
        raise ValueError(f"Invalid trajectory: {n} snapshots after burn-in {burnin}; need at least 8")
    if not np.isfinite(weights).all():
        raise ValueError("Invalid trajectory: contains NaN or Inf")
    lag_cap = n - 2 if acf_of == "weights" else n - 3
    max_lag = n // 4 if max_lag is None else max_lag
    if not (isinstance(max_lag, (int, np.integer)) and 1 <= max_lag <= lag_cap):
        raise ValueError(f"Invalid max_lag: {max_lag!r}; must be an integer in [1, {lag_cap}]")

    diffs = np.diff(weights, axis=0)
    m_len = diffs.shape[0]
    centered = diffs - diffs.mean(axis=0)
    sigma = centered.std(axis=0)
    moving = sigma > 0  # a weight that never moves has no spectrum to speak of
    amplitude = np.abs(np.fft.rfft(centered[:, moving], axis=0)) / (math.sqrt(m_len) * sigma[moving])
    frequencies = np.fft.rfftfreq(m_len)
    interior = amplitude[1 : (m_len - 1) // 2 + 1]  # excludes the DC and Nyquist bins (χ²₁, not χ²₂)

    z = weights if acf_of == "weights" else diffs
    acf = autocorrelation(z[:, z.std(axis=0) > 0], int(max_lag))
    n_acf = z.shape[0]
    band95, band99 = ACF_Z_95 / math.sqrt(n_acf), ACF_Z_99 / math.sqrt(n_acf)
    tail = np.abs(acf[1:])

    def frac(values: np.ndarray, band: float) -> float:
        return float((values > band).mean()) if values.size else float("nan")

    return TrajectorySpectrum(
        frequencies=frequencies,
        amplitude_mean=amplitude.mean(axis=1) if amplitude.size else np.zeros_like(frequencies),
        amplitude_std=amplitude.std(axis=1) if amplitude.size else np.zeros_like(frequencies),
        fft_band95=FFT_BAND_95,
        fft_band99=FFT_BAND_99,
        fft_exceed95=frac(interior, FFT_BAND_95),
        fft_exceed99=frac(interior, FFT_BAND_99),
        lags=np.arange(int(max_lag) + 1),
        acf_mean=acf.mean(axis=1) if acf.size else np.zeros(int(max_lag) + 1),
        acf_std=acf.std(axis=1) if acf.size else np.zeros(int(max_lag) + 1),
        acf_band95=band95,
        acf_band99=band99,
        acf_exceed95=frac(tail, band95),
        acf_exceed99=frac(tail, band99),
        n_snapshots=n,
        n_weights=weights.shape[1],
    )
