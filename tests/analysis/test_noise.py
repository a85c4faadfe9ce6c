import itertools

import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape.analysis.noise import (
    diffusion_matrix,
    diffusion_spectrum,
    diffusion_spectrum_from_gradients,
    sgd_temperature,
)
from deeplandscape.analysis.per_sample import per_sample_gradients

from ._curvature_cases import (
    assert_unchanged,
    busy_batch,
    busy_model,
    mlp,
    mlp_data,
    single_thread,  # noqa: F401
    snapshot,
)


def _explicit(g: torch.Tensor) -> torch.Tensor:
    """(1/N) Σ_k g_k g_kᵀ − ḡ ḡᵀ by a loop over samples (eq. 6.4 as written)."""
    n = g.shape[0]
    mean = g.mean(dim=0)
    return sum(torch.outer(g[k], g[k]) for k in range(n)) / n - torch.outer(mean, mean)


@pytest.mark.parametrize(("n", "d"), [(12, 40), (40, 12)])
def test_gram_route_gives_dense_eigenvalues(n, d):
    g = torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(n)) + 0.5
    exact = torch.linalg.eigvalsh(_explicit(g)).flip(0)
    gram = diffusion_spectrum_from_gradients(g, method="gram", chunk_size=5)
    dense = diffusion_spectrum_from_gradients(g, method="dense", chunk_size=7)
    r = min(n, d)
    torch.testing.assert_close(gram.eigenvalues[:r], exact[:r], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dense.eigenvalues, exact, rtol=1e-10, atol=1e-12)
    assert gram.eigenvalues.shape == (n,) and dense.eigenvalues.shape == (d,)
    assert diffusion_spectrum_from_gradients(g).method == ("gram" if d > n else "dense")
    rank = int(np.linalg.matrix_rank(_explicit(g).numpy()))  # numpy's threshold λ_max·d·eps
    assert gram.rank == dense.rank == rank == min(n - 1, d)
    for spec in (gram, dense):
        assert spec.mean == pytest.approx(float(exact.mean()), rel=1e-10)
        assert spec.std == pytest.approx(float(exact.std(unbiased=False)), rel=1e-8)
        assert spec.relative_rank == rank / d and spec.num_params == d and spec.num_samples == n
    kept = g.clone()
    for method in ("gram", "dense"):  # overwrite: centred in place, one product, the same spectrum
        work = g.clone()
        spec = diffusion_spectrum_from_gradients(work, method=method, overwrite=True)
        torch.testing.assert_close(spec.eigenvalues[:r], exact[:r], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(work, g - g.mean(dim=0), rtol=0, atol=1e-15)
    assert torch.equal(g, kept)  # without overwrite the gradients are left as they were


def test_diffusion_matrix_is_the_variance_of_minibatch_gradients():
    """Thesis Lemma 6.3 checked by enumerating every mini-batch of size b from N = 6 samples."""
    n, b, d = 6, 3, 4
    g = torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def variance(batches):
        means = torch.stack([g[list(idx)].mean(dim=0) for idx in batches])
        centred = means - means.mean(dim=0)
        return centred.T @ centred / len(batches)

    with_repl = variance(list(itertools.product(range(n), repeat=b)))
    torch.testing.assert_close(with_repl, diffusion_matrix(g).matrix / b, rtol=1e-12, atol=1e-14)
    without = variance(list(itertools.combinations(range(n), b)))
    d_wo = diffusion_matrix(g, sampling="without_replacement").matrix
    torch.testing.assert_close(without, d_wo / b * (1 - b / n), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(d_wo, n / (n - 1) * _explicit(g), rtol=1e-12, atol=1e-14)
    wo = diffusion_spectrum_from_gradients(g, sampling="without_replacement")
    torch.testing.assert_close(wo.eigenvalues, torch.linalg.eigvalsh(d_wo).flip(0), rtol=1e-10, atol=1e-12)


def test_diffusion_spectrum_of_a_model_and_its_preservation():
    model, data = mlp(), mlp_data()
    grads = per_sample_gradients(model, nn.CrossEntropyLoss(), data).gradients
    spec = diffusion_spectrum(model, nn.CrossEntropyLoss(), data)
    assert spec.method == "gram"  # d = 57 > N = 13
    exact = torch.linalg.eigvalsh(_explicit(grads)).flip(0)
    torch.testing.assert_close(spec.eigenvalues, exact[:13], rtol=1e-9, atol=1e-12)
    assert spec.trace == pytest.approx(float(exact.sum()), rel=1e-10)
    busy = busy_model()
    before = snapshot(busy)
    x, y = busy_batch()
    diffusion_spectrum(busy, nn.CrossEntropyLoss(), (x, y))
    assert_unchanged(busy, before)


def test_temperature():
    t = sgd_temperature(0.1, 32, num_samples=128)
    assert t.with_replacement == pytest.approx(0.1 / 64)
    assert t.without_replacement == pytest.approx(0.1 / 64 * (1 - 32 / 128))
    assert sgd_temperature(0.1, 128, 128).without_replacement == 0.0  # full batch: no noise
    assert sgd_temperature(0.1, 8).without_replacement is None


def test_bad_input_errors():
    g = torch.randn(5, 3)
    with pytest.raises(ValueError, match="Invalid sampling: 'bootstrap'"):
        diffusion_spectrum_from_gradients(g, sampling="bootstrap")
    with pytest.raises(ValueError, match="Invalid method: 'svd'"):
        diffusion_spectrum_from_gradients(g, method="svd")
    with pytest.raises(ValueError, match="expected N >= 2"):
        diffusion_spectrum_from_gradients(g[:1])
    with pytest.raises(ValueError, match=r"Invalid gradients: shape \(5,\)"):
        diffusion_matrix(g[:, 0])
    with pytest.raises(ValueError, match="NaN or Inf"):
        diffusion_spectrum_from_gradients(torch.full((3, 2), float("nan")))
    with pytest.raises(ValueError, match=r"Invalid lr: -0\.1"):
        sgd_temperature(-0.1, 8)
    with pytest.raises(ValueError, match="Invalid batch_size: 0"):
        sgd_temperature(0.1, 0)
    with pytest.raises(ValueError, match="Invalid num_samples: 4"):
        sgd_temperature(0.1, 8, num_samples=4)
