import math

import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape.analysis.trajectory import (
    TrajectoryRecorder,
    autocorrelation,
    full_gradient_norm,
    trajectory_spectrum,
)

from ._unchanged import assert_unchanged, busy_data, busy_model, snapshot


def _binomial_bounds(p: float, n: int, z: float = 4.0) -> tuple[float, float]:
    sd = math.sqrt(p * (1 - p) / n)
    return p - z * sd, p + z * sd


def test_fft_of_a_random_walk_is_white_within_the_bands():
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.standard_normal((257, 300)), axis=0)  # differences are white noise
    spec = trajectory_spectrum(walk, acf_of="differences", max_lag=5)
    pairs = 300 * 127  # interior frequencies of 256 differences
    for rate, observed in ((0.05, spec.fft_exceed95), (0.01, spec.fft_exceed99)):
        lo, hi = _binomial_bounds(rate, pairs)
        assert lo < observed < hi
    # E|normalized amplitude| of complex white noise = Γ(3/2) = √π/2 at every interior frequency
    interior = spec.amplitude_mean[1:128]
    assert np.all(np.abs(interior - math.sqrt(math.pi) / 2) < 0.15)
    assert spec.fft_band95 == pytest.approx(math.sqrt(-math.log(0.05)))


def test_autocorrelation_of_white_noise_stays_within_bartlett_bands():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((400, 300))
    spec = trajectory_spectrum(noise, max_lag=5)
    assert spec.acf_band95 == pytest.approx(1.959963984540054 / 20)
    pairs = 300 * 5
    # Bartlett: r(ℓ) ≈ N(−1/n, (n − ℓ)/n²) for small lags, so the bands hold at (or slightly below) their rate
    lo95, hi95 = _binomial_bounds(0.05, pairs)
    assert lo95 - 0.01 < spec.acf_exceed95 < hi95
    assert spec.acf_exceed99 < _binomial_bounds(0.01, pairs)[1]
    assert spec.acf_mean[0] == 1.0


def test_sinusoid_is_detected():
    rng = np.random.default_rng(2)
    k = np.arange(301)[:, None]
    diffs = np.sin(2 * np.pi * 0.1 * k) + 0.3 * rng.standard_normal((301, 4))
    walk = np.vstack([np.zeros((1, 4)), np.cumsum(diffs, axis=0)])
    spec = trajectory_spectrum(walk)
    peak = int(np.argmax(spec.amplitude_mean))
    assert spec.frequencies[peak] == pytest.approx(0.1, abs=1 / 301)
    assert spec.amplitude_mean[peak] > 3 * spec.fft_band99
    assert spec.fft_exceed99 > 0  # the peak bins exceed the band
    # the differences oscillate with period 10: correlated at lag 10, anti-correlated at lag 5
    spec = trajectory_spectrum(walk, acf_of="differences", max_lag=12)
    assert spec.acf_mean[10] > 3 * spec.acf_band99
    assert spec.acf_mean[5] < -3 * spec.acf_band99


def test_autocorrelation_matches_direct_formula():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((50, 2))
    acf = autocorrelation(z, 7)
    zc = z - z.mean(axis=0)
    for lag in range(8):
        want = (zc[: 50 - lag] * zc[lag:]).sum(axis=0) / (zc**2).sum(axis=0)
        np.testing.assert_allclose(acf[lag], want, rtol=1e-10, atol=1e-14)


def _train(recorder: TrajectoryRecorder, model: nn.Module, data, epochs: int = 10) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(epochs):
        for x, y in data:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        recorder.record()


def test_recorder_subset_gaussian_and_gradient_norms():
    data = busy_data()
    model = busy_model()
    d = sum(p.numel() for p in model.parameters() if p.requires_grad)
    full = TrajectoryRecorder(model)
    subset = TrajectoryRecorder(model, 7, seed=1)
    gauss = TrajectoryRecorder(
        model, 5, projection="gaussian", seed=2, loss_fn=nn.CrossEntropyLoss(), data=data
    )
    for epoch in range(3):
        _train(full, model, data, epochs=1)
        subset.record(epoch)
        before = snapshot(model)
        gauss.record(epoch)  # computes a full-batch gradient: must not touch the model
        assert_unchanged(model, before)
    t_full, t_sub, t_gauss = full.trajectory(), subset.trajectory(), gauss.trajectory()
    assert t_full.weights.shape == (3, d) and t_full.grad_norms is None
    np.testing.assert_array_equal(t_sub.weights, t_full.weights[:, t_sub.indices])
    gen = torch.Generator().manual_seed(2)
    proj = torch.randn(5, d, generator=gen, dtype=torch.float64).numpy() / math.sqrt(5)
    np.testing.assert_allclose(t_gauss.weights, t_full.weights @ proj.T, rtol=1e-10, atol=1e-12)
    assert t_gauss.grad_norms.shape == (3,)
    assert t_gauss.grad_norms[-1] == pytest.approx(full_gradient_norm(model, nn.CrossEntropyLoss(), data))


def test_full_gradient_norm_is_size_weighted_and_leaves_model_unchanged():
    model = busy_model()
    data = [(x[:5], y[:5]) for x, y in busy_data()[:1]] + busy_data()[1:]  # batches of 5 and 6
    before = snapshot(model)
    value = full_gradient_norm(model, nn.CrossEntropyLoss(), data)
    assert_unchanged(model, before)
    x = torch.cat([b[0] for b in data])
    y = torch.cat([b[1] for b in data])
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), params)
    assert value == pytest.approx(float(torch.sqrt(sum(g.pow(2).sum() for g in grads))), rel=1e-12)


def test_trajectory_rejects_bad_input():
    model = busy_model()
    with pytest.raises(ValueError, match="n_weights: 0"):
        TrajectoryRecorder(model, 0)
    with pytest.raises(ValueError, match="projection"):
        TrajectoryRecorder(model, 3, projection="pca")
    with pytest.raises(ValueError, match="loss_fn and data"):
        TrajectoryRecorder(model, loss_fn=nn.MSELoss())
    with pytest.raises(ValueError, match="no snapshot"):
        TrajectoryRecorder(model).trajectory()
    with pytest.raises(ValueError, match="need at least 8"):
        trajectory_spectrum(np.zeros((10, 2)), burnin=5)
    with pytest.raises(ValueError, match="max_lag: 100"):
        trajectory_spectrum(np.random.default_rng(0).standard_normal((20, 2)), max_lag=100)
    with pytest.raises(ValueError, match="NaN"):
        trajectory_spectrum(np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="Non-finite loss"):
        full_gradient_norm(model, lambda out, target: out.sum() / 0.0, busy_data())
    with pytest.raises(ValueError, match="acf_of"):
        trajectory_spectrum(np.zeros((10, 2)), acf_of="weight")


def test_spectrum_of_a_recorded_trajectory():
    data = busy_data()
    model = busy_model()
    recorder = TrajectoryRecorder(model, 6, seed=3)
    _train(recorder, model, data, epochs=12)
    traj = recorder.trajectory()
    assert traj.steps.tolist() == list(range(12))
    spec = trajectory_spectrum(traj, burnin=2, max_lag=3)
    assert spec.n_snapshots == 10 and spec.n_weights == 6
    assert spec.frequencies.shape == spec.amplitude_mean.shape == (5,)  # rfft of 9 differences
    assert spec.lags.tolist() == [0, 1, 2, 3] and spec.acf_mean[0] == 1.0
    assert np.all(np.isfinite(spec.amplitude_mean))
