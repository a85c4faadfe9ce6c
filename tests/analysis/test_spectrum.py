import math

import pytest
import torch

from deeplandscape.analysis.spectrum import spectrum_statistics


def test_index_and_means_by_hand():
    lam = torch.tensor([-2.0, -1e-4, 0.0, 5e-4, 0.5, 1.0, 2.0, -0.01])
    stats = spectrum_statistics(lam, threshold=1e-3)
    assert stats.index == 2  # -2 and -0.01; |-1e-4| ≤ 1e-3 counts as zero (Choromanska et al. §5.1)
    assert stats.normalized_index == 2 / 8
    assert stats.num_near_zero == 3 and stats.fraction_near_zero == 3 / 8
    assert stats.arithmetic_mean == pytest.approx(float(lam.double().mean()))
    assert math.isnan(stats.harmonic_mean)
    assert stats.harmonic_mean_positive == pytest.approx(3 / (1 / 0.5 + 1 / 1.0 + 1 / 2.0))
    loose = spectrum_statistics(lam, threshold=0.0)
    assert loose.index == 3 and loose.num_near_zero == 1


def test_lemma_4_18_harmonic_mean_of_eigenvalues_below_that_of_diagonal():
    """Thesis Lemma 4.18: HM(Λ) ≤ HM(diag A) for symmetric positive-definite A."""
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        b = torch.randn(30, 30, generator=g, dtype=torch.float64)
        a = b @ b.T / 30 + 1e-3 * torch.eye(30, dtype=torch.float64)
        eig = spectrum_statistics(torch.linalg.eigvalsh(a), threshold=0.0)
        diag = spectrum_statistics(a.diagonal(), threshold=0.0)
        assert eig.harmonic_mean <= diag.harmonic_mean
        assert eig.arithmetic_mean == pytest.approx(diag.arithmetic_mean)  # same trace
        assert eig.harmonic_mean == pytest.approx(30 / torch.linalg.inv(a).trace().item())


def test_bad_input_errors():
    with pytest.raises(ValueError, match="Invalid threshold: -1"):
        spectrum_statistics(torch.ones(3), threshold=-1)
    with pytest.raises(ValueError, match="empty"):
        spectrum_statistics(torch.ones(0))
    with pytest.raises(ValueError, match="NaN or Inf"):
        spectrum_statistics(torch.tensor([1.0, float("nan")]))
