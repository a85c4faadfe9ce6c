"""Convergence: noise-free settings reach the minimum of the quadratic, Rosenbrock (b = 1) and Beale
functions from (1.5, 1.5) within 1e-3; default settings at least halve the loss of a 2-4-1 MLP on two
Gaussian blobs within 300 mini-batches of 32.

Settings for the test functions: every random source is off (AnnealSGD's field is annealed to zero by a
linear schedule, GradientNoise η = 0, SGLD temperature 0, Entropy-SGD/Entropy-Adam/HJ β^{-1} = 0, Heat's
variance scoped towards 0), cycles are L = 5 and the scope γ = 1 is finite, so the relaxation methods are
genuinely two-loop. Step sizes are per function (a Beale start at (1.5, 1.5) sits on a steep wall).
"""

from __future__ import annotations

import pytest
import torch

import deeplandscape.optim as dlo

from ._problems import (
    BEALE_MIN,
    NAMES,
    QUADRATIC_MIN,
    ROSENBROCK_MIN,
    batches,
    bce,
    beale,
    blobs,
    mlp_241,
    quadratic,
    rosenbrock,
    train,
)

FUNCTIONS = {
    "quadratic": (quadratic, QUADRATIC_MIN, 0.1, 3000),
    "rosenbrock": (rosenbrock, ROSENBROCK_MIN, 0.05, 4000),
    "beale": (beale, BEALE_MIN, 0.01, 12000),
}


def _noise_free(name, params, lr):
    if name == "anneal-sgd":
        return dlo.AnnealSGD(
            params, lr=lr / 5, momentum=0.9, nesterov=True, J=0.01, p=3, tau0=100.0, schedule="linear", seed=0
        )
    if name == "gradient-noise":
        return dlo.GradientNoise(params, lr=lr / 5, momentum=0.9, nesterov=True, eta=0.0)
    if name == "sgld":
        return dlo.SGLD(params, lr=lr, temperature=0.0)
    if name == "entropy-sgd":
        return dlo.EntropySGD(params, inner_lr=lr, L=5, gamma=1.0, noise=0.0, momentum=0.0)
    if name == "entropy-adam":
        return dlo.EntropyAdam(params, lr=0.05, inner_lr=lr, L=5, gamma=1.0, noise=0.0, momentum=0.0)
    if name == "hj":
        return dlo.HJ(params, inner_lr=lr, L=5, gamma=1.0, momentum=0.0)
    if name == "heat":
        return dlo.Heat(params, lr=lr / 5, L=5, gamma=1e-4, scoping=0.01, seed=0)
    raise AssertionError(name)


def _converge(name, fn, target, lr, budget):
    w = torch.tensor([1.5, 1.5], dtype=torch.float64, requires_grad=True)
    opt = _noise_free(name, [w], lr)
    # Adam's steps do not shrink with the gradient: decay its lr (a scheduler acting on the param group).
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.9996) if name == "entropy-adam" else None
    target = torch.tensor(target, dtype=torch.float64)
    err = float("inf")
    for k in range(budget):
        opt.zero_grad()
        fn(w).backward()
        opt.step()
        if sched is not None:
            sched.step()
        if k % 50 == 49:
            with opt.reference_weights() if hasattr(opt, "reference_weights") else torch.no_grad():
                err = (w.detach() - target).abs().max().item()
            if err < 1e-4:
                break
    return err


@pytest.mark.parametrize("name", NAMES)
def test_reaches_the_minimum_of_the_quadratic(name):
    fn, target, lr, budget = FUNCTIONS["quadratic"]
    assert _converge(name, fn, target, lr, budget) <= 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("function", ["rosenbrock", "beale"])
def test_reaches_the_minimum_of_rosenbrock_and_beale(function, name):
    fn, target, lr, budget = FUNCTIONS[function]
    assert _converge(name, fn, target, lr, budget) <= 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_default_settings_halve_the_loss_of_a_small_mlp(name):
    """Defaults of every knob, except the lr of the optimizers whose lr default is torch's generic 1e-3
    (AnnealSGD's and GradientNoise's base SGD, SGLD: lr = 0.1) and AnnealSGD's p = 3 (a 2-4-1 MLP has
    p = 2 weight layers, where v_c = J√(p(p−2)) = 0)."""
    x, y = blobs(400, seed=0)
    data = batches(x, y, batch_size=32, steps=300, seed=1)
    model = mlp_241(seed=0)
    kw = {"lr": 0.1} if name in ("anneal-sgd", "gradient-noise", "sgld") else {}
    if name == "anneal-sgd":
        kw["p"] = 3
    opt = dlo.get(name)(model.parameters(), seed=0, **kw)
    with torch.no_grad():
        before = bce(model, x, y).item()  # Heat: at x (the perturbation is drawn at construction)
    if name == "heat":
        with opt.reference_weights(), torch.no_grad():
            before = bce(model, x, y).item()
    train(model, opt, data)
    with opt.reference_weights() if hasattr(opt, "reference_weights") else torch.no_grad(), torch.no_grad():
        after = bce(model, x, y).item()
    assert after <= 0.5 * before, (before, after)
