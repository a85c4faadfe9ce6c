"""The injected randomness has the law the formulas give (sample mean and variance within 5σ bounds).

With N i.i.d. draws of N(0, σ²), the sample mean has standard deviation σ/√N and the sample variance
σ²√(2/(N−1)); every check below allows 5 of those (a false alarm has probability < 1e-6 per check; the
seeds are fixed, so the outcome is deterministic). Gradients are set to zero so that a step's displacement is
the injected term alone.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import deeplandscape.optim as dlo

N = 200_000


def _check_gaussian(sample: torch.Tensor, var: float) -> None:
    sample = sample.double().flatten()
    n = sample.numel()
    assert abs(sample.mean().item()) <= 5 * math.sqrt(var / n)
    assert abs(sample.var().item() - var) <= 5 * var * math.sqrt(2 / (n - 1))


def _zero_grad_step(opt, w):
    w.grad = torch.zeros_like(w)
    opt.step()


def test_sgld_noise_is_sqrt_2_lr_temperature():
    lr, temp = 0.01, 0.5
    w = nn.Parameter(torch.zeros(N))
    opt = dlo.SGLD([w], lr=lr, temperature=temp, seed=1)
    _zero_grad_step(opt, w)
    _check_gaussian(w.detach(), 2 * lr * temp)


@pytest.mark.parametrize("t", [0, 9])
def test_gradient_noise_variance_decays_as_eta_over_1_plus_t_to_the_gamma(t):
    eta, gamma = 0.3, 0.55
    w = nn.Parameter(torch.zeros(N))
    opt = dlo.GradientNoise([w], lr=1.0, eta=eta, gamma=gamma, seed=2)  # SGD with lr 1: Δw = −ε_t
    for _ in range(t):
        _zero_grad_step(opt, w)
    before = w.detach().clone()
    _zero_grad_step(opt, w)
    _check_gaussian(before - w.detach(), eta / (1 + t) ** gamma)


def test_entropy_sgd_thermal_noise_is_sqrt_2_eta_over_beta():
    eta, noise = 0.1, 1e-3
    w = nn.Parameter(torch.zeros(N))
    opt = dlo.EntropySGD([w], inner_lr=eta, noise=noise, L=5, momentum=0.0, seed=3)
    _zero_grad_step(opt, w)  # first Langevin step from y = x = 0 with zero gradient: y = √(2ηβ^{-1}) ε
    _check_gaussian(w.detach(), 2 * eta * noise)


def test_heat_perturbations_have_variance_gamma():
    gamma = 0.04
    w = nn.Parameter(torch.zeros(N))
    opt = dlo.Heat([w], gamma=gamma, scoping=0.5, L=2, seed=4)
    _check_gaussian(w.detach(), gamma)  # x + ε at construction, x = 0
    for _ in range(2):
        _zero_grad_step(opt, w)  # one outer update: x stays 0, the scope halves
    with opt.reference_weights():
        assert torch.equal(w.detach(), torch.zeros(N))
    _check_gaussian(w.detach(), gamma * 0.5)


@pytest.mark.parametrize(
    ("schedule", "scaling"), [("exponential", "critical"), ("linear", "critical"), ("exponential", "minima")]
)
def test_anneal_sgd_field_magnitude_follows_the_schedule(schedule, scaling):
    J, p, tau0, n = 0.02, 5, 4.0, 1000.0
    w = nn.Parameter(torch.zeros(N))
    opt = dlo.AnnealSGD([w], lr=1.0, J=J, p=p, n=n, tau0=tau0, schedule=schedule, scaling=scaling, seed=5)
    h = opt.state[w]["field"]
    v_c = J * math.sqrt(p * (p - 2))  # Alg. 1 line 4
    _check_gaussian(h, v_c**2)
    for i in range(7):
        before = w.detach().clone()
        _zero_grad_step(opt, w)
        u = math.exp(-i / tau0) if schedule == "exponential" else max(1 - i / tau0, 0.0)
        if scaling == "critical":
            tau = n * (u - 0.5)  # eq. (13)
            factor = 1 + 2 * tau / n  # eq. (12)
        else:
            factor = 1 + (2 * u - 1) * math.log(n) / n ** (1 / 3)  # eq. (14), κ = 1 annealed like τ
        step = before - w.detach()
        assert torch.allclose(step, math.sqrt(factor) * h, rtol=1e-6, atol=1e-12)
        rms = step.double().pow(2).mean().sqrt().item()
        assert abs(rms**2 - factor * v_c**2) <= 5 * factor * v_c**2 * math.sqrt(2 / N) + 1e-15


def test_field_scale_closed_forms():
    # At i = τ0 ln 2, e^{-i/τ0} = 1/2: τ = 0, the field is h itself (the edge B = 0 of the polynomial band).
    assert dlo.field_scale(0, tau0=10.0) == pytest.approx(math.sqrt(2.0), abs=1e-15)
    assert dlo.field_scale(10.0 * math.log(2.0), tau0=10.0) == pytest.approx(1.0, abs=1e-12)
    assert dlo.field_scale(10, tau0=10.0, schedule="linear") == 0.0
    assert dlo.field_scale(5, tau0=10.0, schedule="linear") == pytest.approx(1.0, abs=1e-15)
    n = 512.0
    s = dlo.field_scale(0, tau0=10.0, scaling="minima", n=n, kappa=0.5)
    assert s == pytest.approx(math.sqrt(1 + 0.5 * math.log(n) / 8.0), abs=1e-15)


def test_anneal_sgd_network_size_and_alignment():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 3))
    size = dlo.estimate_network_size(model)
    num = 10 * 20 + 20 + 20 * 20 + 20 + 20 * 3 + 3
    assert (size.p, size.num_weights) == (3, num)
    assert size.n == pytest.approx(math.sqrt(num / 3), abs=1e-12)
    opt = dlo.AnnealSGD(model.parameters(), lr=0.1, J=1e-2, seed=0)
    assert opt.param_groups[0]["p"] == 3 and opt.param_groups[0]["n"] == pytest.approx(size.n)
    direct = sum((opt.state[p]["field"] * p.detach()).sum() for p in model.parameters())
    assert opt.alignment() == pytest.approx(abs(direct.item()), rel=1e-6)
