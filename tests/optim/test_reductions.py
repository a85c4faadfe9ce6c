"""Degenerate settings reduce exactly (max |Δ| ≤ 1e-12 in float64) to the simpler method.

- AnnealSGD with J = 0 and GradientNoise with η = 0 → their base optimizer (SGD-Nesterov, Adam);
- SGLD with temperature 0 → SGD;
- Entropy-SGD and HJ with L = 1, γ = ∞, α = 0, η′ = 1, β^{-1} = 0, no momentum → SGD with lr = inner_lr
  (one Langevin step y = x − η∇f, z = y, x ← x − 1·(x − z) = z up to the rounding of x − (x − z));
- Heat with L = 1, γ = 0 → SGD with the same momentum, Nesterov and weight decay;
- Entropy-Adam with L = 1, γ = ∞, α = 0, β^{-1} = 0, no inner momentum → Adam: its outer direction is
  x − z = η∇f, and Adam(ηg; eps) = Adam(g; eps/η).
"""

from __future__ import annotations

import pytest
import torch

import deeplandscape.optim as dlo

from ._problems import batches, blobs, small_mlp, train

TOL = 1e-12


def _data():
    x, y = blobs(120, seed=3)
    return batches(x.double(), y.double(), batch_size=16, steps=25, seed=4)


def _compare(make_ours, make_ref, tol=TOL):
    data = _data()
    m1, m2 = small_mlp(seed=1), small_mlp(seed=1)
    l1 = train(m1, make_ours(m1.parameters()), data)
    l2 = train(m2, make_ref(m2.parameters()), data)
    diff = max((a - b).abs().max().item() for a, b in zip(m1.parameters(), m2.parameters(), strict=True))
    assert diff <= tol, diff
    assert max(abs(a - b) for a, b in zip(l1, l2, strict=True)) <= tol
    assert l1[-1] < l1[0]  # the runs did train


SGD_KW = dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
ADAM_KW = dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-3)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(("base", "kw"), [(torch.optim.SGD, SGD_KW), (torch.optim.Adam, ADAM_KW)])
def test_anneal_sgd_with_zero_coupling_is_its_base(base, kw, foreach):
    _compare(
        lambda ps: dlo.AnnealSGD(ps, base, J=0.0, tau0=10.0, seed=0, foreach=foreach, **kw),
        lambda ps: base(ps, foreach=foreach, **kw),
    )


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize(("base", "kw"), [(torch.optim.SGD, SGD_KW), (torch.optim.Adam, ADAM_KW)])
def test_gradient_noise_with_zero_variance_is_its_base(base, kw, foreach):
    _compare(
        lambda ps: dlo.GradientNoise(ps, base, eta=0.0, seed=0, foreach=foreach, **kw),
        lambda ps: base(ps, foreach=foreach, **kw),
    )


@pytest.mark.parametrize("foreach", [False, True])
def test_sgld_at_zero_temperature_is_sgd(foreach):
    _compare(
        lambda ps: dlo.SGLD(ps, lr=0.1, temperature=0.0, weight_decay=1e-3, foreach=foreach),
        lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=1e-3),
    )


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("cls", [dlo.EntropySGD, dlo.HJ])
def test_entropy_sgd_with_one_step_and_infinite_scope_is_sgd(cls, foreach):
    _compare(
        lambda ps: cls(
            ps,
            lr=1.0,
            inner_lr=0.1,
            L=1,
            gamma=float("inf"),
            alpha=0.0,
            noise=0.0,
            momentum=0.0,
            weight_decay=1e-3,
            foreach=foreach,
        ),
        lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=1e-3),
    )


@pytest.mark.parametrize("foreach", [False, True])
def test_heat_with_one_sample_and_zero_variance_is_sgd(foreach):
    _compare(
        lambda ps: dlo.Heat(ps, L=1, gamma=0.0, foreach=foreach, **SGD_KW),
        lambda ps: torch.optim.SGD(ps, **SGD_KW),
    )


@pytest.mark.parametrize("foreach", [False, True])
def test_entropy_adam_with_one_step_and_infinite_scope_is_adam(foreach):
    eta, eps = 0.5, 1e-8
    _compare(
        lambda ps: dlo.EntropyAdam(
            ps,
            lr=1e-2,
            inner_lr=eta,
            L=1,
            gamma=float("inf"),
            alpha=0.0,
            noise=0.0,
            momentum=0.0,
            betas=(0.8, 0.99),
            eps=eps,
            foreach=foreach,
        ),
        lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), eps=eps / eta),
    )
