"""Each optimizer against a direct transcription of its paper's pseudo-code (float64, same random draws).

The transcriptions below loop over the algorithm as printed — Alg. 1 of the AnnealSGD paper, eq. (3.16) for
SGLD, Alg. 2 / §3.2.3 of the Thesis with its L inner iterations written as an inner ``for`` loop, eq. (4.43)
for Heat — and draw their Gaussian numbers from a ``torch.Generator`` seeded like the optimizer's, in the
order the pseudo-code needs them. The optimizers, driven by an ordinary one-``step()``-per-gradient loop,
must agree to 1e-12.
"""

from __future__ import annotations

import math

import pytest
import torch

import deeplandscape.optim as dlo

from ._problems import rosenbrock

TOL = 1e-12
W0 = (-0.7, 1.3)
SEED = 11


def _grad(w):
    w = w.detach().clone().requires_grad_(True)
    rosenbrock(w).backward()
    return w.grad


def _run(opt_factory, steps):
    w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    opt = opt_factory([w])
    for _ in range(steps):
        opt.zero_grad()
        rosenbrock(w).backward()
        opt.step()
    return w, opt


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("schedule", ["exponential", "linear"])
def test_anneal_sgd_is_algorithm_1(schedule, foreach):
    J, p, tau0, lr, steps = 0.05, 4, 7.0, 0.01, 30
    w, opt = _run(
        lambda ps: dlo.AnnealSGD(
            ps, torch.optim.SGD, lr=lr, J=J, p=p, tau0=tau0, schedule=schedule, seed=SEED, foreach=foreach
        ),
        steps,
    )
    gen = torch.Generator().manual_seed(SEED)
    h = J * math.sqrt(p * (p - 2)) * torch.randn(2, generator=gen, dtype=torch.float64)  # line 4
    v = torch.tensor(W0, dtype=torch.float64)
    n = 1.0  # n cancels in eq. (12)-(13)
    for i in range(steps):
        u = math.exp(-i / tau0) if schedule == "exponential" else max(1 - i / tau0, 0.0)
        tau = n * (u - 0.5)  # line 8 (the linear schedule replaces e^{-i/τ0} by max(1 − i/τ0, 0))
        h_curr = math.sqrt(1 + 2 * tau / n) * h  # line 9
        v = v - lr * (_grad(v) + h_curr)  # line 10
    assert (w.detach() - v).abs().max().item() <= TOL
    assert torch.equal(opt.state[w]["field"], h)


def test_gradient_noise_is_annealed_resampled_noise():
    eta, gamma, lr, steps = 0.3, 0.55, 0.01, 20
    w, _ = _run(lambda ps: dlo.GradientNoise(ps, lr=lr, eta=eta, gamma=gamma, seed=SEED), steps)
    gen = torch.Generator().manual_seed(SEED)
    v = torch.tensor(W0, dtype=torch.float64)
    for t in range(steps):
        sigma = math.sqrt(eta / (1 + t) ** gamma)
        v = v - lr * (_grad(v) + sigma * torch.randn(2, generator=gen, dtype=torch.float64))
    assert (w.detach() - v).abs().max().item() <= TOL


def test_sgld_is_langevin_dynamics():
    lr, temp, steps = 0.01, 0.3, 20
    w, _ = _run(lambda ps: dlo.SGLD(ps, lr=lr, temperature=temp, seed=SEED), steps)
    gen = torch.Generator().manual_seed(SEED)
    v = torch.tensor(W0, dtype=torch.float64)
    for _ in range(steps):
        v = v - lr * _grad(v) + math.sqrt(2 * lr * temp) * torch.randn(2, generator=gen, dtype=torch.float64)
    assert (w.detach() - v).abs().max().item() <= TOL


def _entropy_sgd_oracle(
    K, L, *, lr, inner_lr, gamma, scoping, alpha, noise, momentum, nesterov, outer_momentum=0.0,
    outer_nesterov=False, adam=None
):  # fmt: skip
    """Thesis Alg. 2 with scoping (§3.2.3), the scaled outer update, momentum in the inner loop (on the
    gradient of f, its buffer restarting with each cycle) and optionally in the outer one. Knobs named as
    EntropySGD's."""
    eta, mu = inner_lr, momentum
    gen = torch.Generator().manual_seed(SEED)
    x = torch.tensor(W0, dtype=torch.float64)
    outer_buf = torch.zeros(2, dtype=torch.float64)
    m = torch.zeros(2, dtype=torch.float64)
    s = torch.zeros(2, dtype=torch.float64)
    for t in range(K):
        g_t = gamma * (1 - scoping) ** t
        y, z = x.clone(), x.clone()  # line 1
        inner_buf = torch.zeros(2, dtype=torch.float64)
        for _ in range(L):  # line 2
            g = _grad(y)
            inner_buf = mu * inner_buf + g  # momentum on the gradient of f
            dy = (g + mu * inner_buf if nesterov else inner_buf) + (y - x) / g_t  # line 3
            noise_term = math.sqrt(2 * eta * noise) * torch.randn(2, generator=gen, dtype=torch.float64)
            y = y - eta * dy + noise_term  # line 4
            z = alpha * z + (1 - alpha) * y  # line 5
        d = x - z
        if adam is None:  # line 6 in the scaled form x ← x − η′(x − z), with momentum
            outer_buf = outer_momentum * outer_buf + d
            x = x - lr * (d + outer_momentum * outer_buf if outer_nesterov else outer_buf)
        else:
            (b1, b2), eps = adam
            m = b1 * m + (1 - b1) * d
            s = b2 * s + (1 - b2) * d * d
            mhat, shat = m / (1 - b1 ** (t + 1)), s / (1 - b2 ** (t + 1))
            x = x - lr * mhat / (shat.sqrt() + eps)
    return x


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("outer", [(0.0, False), (0.3, False), (0.6, True)])
def test_entropy_sgd_is_algorithm_2(outer, nesterov, foreach):
    K, L = 6, 4
    kw = dict(
        lr=0.7, inner_lr=0.02, gamma=0.5, scoping=0.1, alpha=0.25, noise=1e-3, momentum=0.5,
        nesterov=nesterov, outer_momentum=outer[0], outer_nesterov=outer[1],
    )  # fmt: skip
    w, opt = _run(lambda ps: dlo.EntropySGD(ps, L=L, seed=SEED, foreach=foreach, **kw), K * L)
    x = _entropy_sgd_oracle(K, L, **kw)
    assert (w.detach() - x).abs().max().item() <= TOL  # after a full cycle y = x
    assert opt.param_groups[0]["outer_step"] == K


def test_entropy_sgd_mid_cycle_reference_weights_are_the_last_outer_iterate():
    K, L = 3, 5
    kw = dict(
        lr=0.7, inner_lr=0.02, gamma=0.5, scoping=0.1, alpha=0.25, noise=1e-3, momentum=0.5, nesterov=True,
        outer_momentum=0.5, outer_nesterov=True,
    )  # fmt: skip
    w, opt = _run(lambda ps: dlo.EntropySGD(ps, L=L, seed=SEED, **kw), K * L + 2)
    x = _entropy_sgd_oracle(K, L, **kw)
    inner = w.detach().clone()
    with opt.reference_weights():
        assert (w.detach() - x).abs().max().item() <= TOL
    assert torch.equal(w.detach(), inner)
    assert not torch.equal(inner, x)


def test_entropy_adam_is_adam_on_the_local_entropy_direction():
    K, L = 6, 3
    kw = dict(lr=0.05, inner_lr=0.02, gamma=2.0, scoping=0.05, alpha=0.25, noise=1e-3, momentum=0.0)
    w, _ = _run(lambda ps: dlo.EntropyAdam(ps, L=L, seed=SEED, betas=(0.9, 0.99), eps=1e-6, **kw), K * L)
    x = _entropy_sgd_oracle(K, L, **kw, nesterov=True, adam=((0.9, 0.99), 1e-6))
    assert (w.detach() - x).abs().max().item() <= TOL


def test_hj_is_the_last_inner_iterate_without_noise():
    K, L, eta, gamma, lr = 5, 5, 0.02, 0.5, 0.8
    w, _ = _run(lambda ps: dlo.HJ(ps, lr=lr, inner_lr=eta, gamma=gamma, scoping=0.0, momentum=0.0), K * L)
    x = torch.tensor(W0, dtype=torch.float64)
    for _ in range(K):  # §4.6.1.2: eq. (4.40)-(4.41) with β_ex^{-1} = 0 and ⟨y⟩ = y_L
        y = x.clone()
        for _ in range(L):
            y = y - eta * (_grad(y) + (y - x) / gamma)
        x = x - lr * (x - y)
    assert (w.detach() - x).abs().max().item() <= TOL


@pytest.mark.parametrize("foreach", [False, True])
def test_entropy_sgd_alpha_changed_within_a_cycle_follows_line_5_step_by_step(foreach):
    # α = 0 keeps no average (z is y itself); switching it off and on again inside a cycle must still give
    # z_ℓ = α_ℓ z_{ℓ-1} + (1 − α_ℓ) y_ℓ at every step, from z_0 = x.
    alphas, eta, gamma, lr = (0.25, 0.25, 0.0, 0.0, 0.5, 0.25), 0.02, 0.5, 0.8
    w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    kw = dict(lr=lr, inner_lr=eta, L=len(alphas), gamma=gamma, scoping=0.0, noise=0.0, momentum=0.0)
    opt = dlo.EntropySGD([w], foreach=foreach, **kw)
    for alpha in alphas:
        opt.param_groups[0]["alpha"] = alpha
        opt.zero_grad()
        rosenbrock(w).backward()
        opt.step()
    x = torch.tensor(W0, dtype=torch.float64)
    y, z = x.clone(), x.clone()
    for alpha in alphas:
        y = y - eta * (_grad(y) + (y - x) / gamma)
        z = alpha * z + (1 - alpha) * y
    x = x - lr * (x - z)
    assert (w.detach() - x).abs().max().item() <= TOL


@pytest.mark.parametrize("foreach", [False, True])
def test_heat_is_equation_4_43(foreach):
    K, L, lr, gamma, scoping = 5, 4, 0.01, 0.02, 0.2
    w, opt = _run(
        lambda ps: dlo.Heat(
            ps, lr=lr, L=L, gamma=gamma, scoping=scoping, momentum=0.0, seed=SEED, foreach=foreach
        ),
        K * L,
    )
    gen = torch.Generator().manual_seed(SEED)
    x = torch.tensor(W0, dtype=torch.float64)
    for t in range(K):
        g_t = gamma * (1 - scoping) ** t
        total = torch.zeros(2, dtype=torch.float64)
        for _ in range(L):
            eps = math.sqrt(g_t) * torch.randn(2, generator=gen, dtype=torch.float64)
            total = total + _grad(x + eps)
        x = x - lr / L * total
    with opt.reference_weights():
        assert (w.detach() - x).abs().max().item() <= TOL
