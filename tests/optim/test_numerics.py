"""Parameters and usage beyond float64 toy models: complex and 16-bit parameters, ``maximize``,
``zero_grad(set_to_none=False)``, checkpoints loaded while noise is being drawn ahead, param groups added
mid-run.

Truths: a complex parameter is its ``torch.view_as_real`` pair of reals (as in ``torch.optim``), so an
optimizer on it must follow the same optimizer on the real view (1e-12: complex and real arithmetic round
differently); Entropy-Adam in its degenerate setting is ``torch.optim.Adam``; a 16-bit run is within the
rounding error of ``torch.optim.SGD``'s own 16-bit run of a float64 reference; maximizing f is minimizing −f
(bit for bit); zeroed gradients are the gradients set to ``None`` when every parameter gets one; a group
added mid-run starts its own cycle (a fresh optimizer on that group alone) and leaves the others alone.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deeplandscape.optim as dlo

from ._problems import (
    EVERY,
    assert_identical,
    build_any,
    embedding_loss,
    embedding_model,
    save_load,
    take_steps,
    weights_and_reference,
)

# ----------------------------------------------------------------------------------------------- complex

_g = torch.Generator().manual_seed(0)
W = torch.randn(4, 5, dtype=torch.complex128, generator=_g)
T = torch.randn(4, dtype=torch.complex128, generator=_g)
C0 = torch.randn(5, dtype=torch.complex128, generator=_g)


def _complex_loss(c: torch.Tensor) -> torch.Tensor:
    return ((W @ c - T).abs() ** 2).sum()


def _run_on(param: nn.Parameter, opt, loss, steps: int = 9) -> None:
    for _ in range(steps):
        opt.zero_grad()
        loss(param).backward()
        if isinstance(opt, dlo.SAM):
            opt.step(lambda: loss(param).backward())
        else:
            opt.step()


COMPLEX_SETTINGS = {
    "anneal-sgd": dict(J=0.1, p=3, tau0=50.0),
    "anneal-sgd:adam": dict(J=0.1, p=3, tau0=50.0),
    "gradient-noise": dict(eta=0.1),
    "gradient-noise:adam": dict(eta=0.1),
    "sgld": dict(temperature=0.1),
    "entropy-sgd": dict(noise=0.1),
    "entropy-adam": dict(noise=0.1),
    "hj": {},
    "heat": dict(gamma=0.1),
    "sam": {},
    "sam:adam": dict(rho=0.5),
    "parle": dict(noise=0.1),
    "elastic-sgd": {},
    "distributed-parle": dict(noise=0.1),
    "distributed-elastic-sgd": {},
}


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", list(EVERY))
def test_complex_parameter_follows_its_pair_of_reals(name, foreach):
    """Noise is N(0, 1) in each real component (torch.randn of a complex dtype gives variance 1/2), Adam's
    second moment is per real component, ASAM's |w| per real component."""
    c = nn.Parameter(C0.clone())
    r = nn.Parameter(torch.view_as_real(C0).clone())
    _run_on(c, build_any(name, [c], foreach=foreach, **COMPLEX_SETTINGS[name]), _complex_loss)
    _run_on(r, build_any(name, [r], foreach=foreach, **COMPLEX_SETTINGS[name]),
            lambda p: _complex_loss(torch.view_as_complex(p)))  # fmt: skip
    assert (torch.view_as_real(c.detach()) - r.detach()).abs().max().item() <= 1e-12


@pytest.mark.parametrize("foreach", [False, True])
def test_entropy_adam_on_complex_parameters_is_torch_adam(foreach):
    """L = 1, γ = ∞, α = 0, β^{-1} = 0, no inner momentum: Adam on x − z = η∇f, i.e. Adam(eps/η) on ∇f."""
    eta, eps = 0.5, 1e-8
    c1, c2 = nn.Parameter(C0.clone()), nn.Parameter(C0.clone())
    ours = dlo.EntropyAdam([c1], lr=1e-2, inner_lr=eta, L=1, gamma=float("inf"), alpha=0.0, noise=0.0,
                           momentum=0.0, betas=(0.8, 0.99), eps=eps, foreach=foreach)  # fmt: skip
    adam = torch.optim.Adam([c2], lr=1e-2, betas=(0.8, 0.99), eps=eps / eta, foreach=foreach)
    _run_on(c1, ours, _complex_loss, steps=15)
    _run_on(c2, adam, _complex_loss, steps=15)
    assert (c1.detach() - c2.detach()).abs().max().item() <= 1e-12


# ----------------------------------------------------------------------------------------------- 16 bits


def _sgd_like_error(make, dtype: torch.dtype) -> tuple[float, float]:
    """Max error against float64 after 10 steps on 1000 entries: (``make``'s run, torch SGD's own run)."""
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(1000, dtype=torch.float64, generator=gen)
    grads = [torch.randn(1000, dtype=torch.float64, generator=gen) for _ in range(10)]
    out = {}
    for key, dt, build in (
        ("ours", dtype, make),
        ("torch", dtype, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, foreach=False)),
        ("exact", torch.float64, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
    ):
        p = nn.Parameter(p0.to(dt))
        opt = build([p])
        for g in grads:
            p.grad = g.to(dt)
            opt.step()
        out[key] = p.detach().double()
    return (out["ours"] - out["exact"]).abs().max().item(), (out["torch"] - out["exact"]).abs().max().item()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("foreach", [False, True])
def test_16_bit_parameters_round_as_torch_sgd_does(dtype, foreach):
    """Heat with L = 1, γ = 0 is SGD with Nesterov momentum (its update is the shared momentum kernel)."""
    ours, torch_sgd = _sgd_like_error(
        lambda ps: dlo.Heat(ps, lr=0.1, L=1, gamma=0.0, momentum=0.9, nesterov=True, foreach=foreach), dtype
    )
    assert ours <= 3 * torch_sgd


# ---------------------------------------------------------------------------------------------- maximize


@pytest.mark.parametrize("name", ["anneal-sgd", "anneal-sgd:adam", "gradient-noise", "gradient-noise:adam",
                                  "sam", "sam:adam"])  # fmt: skip
def test_maximize_is_minimizing_the_negated_loss(name):
    runs = []
    for maximize in (True, False):
        model = embedding_model()
        opt = build_any(name, model.parameters(), maximize=maximize)
        sign = -1.0 if maximize else 1.0
        take_steps(model, opt, 0, 8, loss_fn=lambda m, t, s=-sign: s * embedding_loss(m, t))
        runs.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


# ------------------------------------------------------------------------------- zero_grad, checkpoints


@pytest.mark.parametrize("name", list(EVERY))
def test_zeroed_gradients_are_gradients_set_to_none(name):
    runs = []
    for set_to_none in (True, False):
        model = embedding_model()
        opt = build_any(name, model.parameters())
        opt.zero_grad = lambda opt=opt, s=set_to_none: type(opt).zero_grad(opt, set_to_none=s)
        for t in range(9):
            opt.zero_grad()
            loss = embedding_loss(model, t) + 1e-3 * model["emb"].weight.sum()  # every entry gets a gradient
            loss.backward()
            if isinstance(opt, dlo.SAM):
                opt.step(
                    lambda m=model, t=t: (embedding_loss(m, t) + 1e-3 * m["emb"].weight.sum()).backward()
                )
            else:
                opt.step()
        runs.append(weights_and_reference(model, opt))
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


@pytest.mark.parametrize("name", list(EVERY))
def test_state_loaded_into_an_optimizer_drawing_ahead_resumes_exactly(name):
    """Both the saved optimizer and the one loading had their next noise being drawn on the worker."""
    truth_model = embedding_model()
    truth = build_any(name, truth_model.parameters())
    take_steps(truth_model, truth, 0, 10)
    model = embedding_model()
    opt = build_any(name, model.parameters())
    take_steps(model, opt, 0, 4)
    ckpt = save_load({"model": model.state_dict(), "opt": opt.state_dict()})
    other = embedding_model(seed=5)
    other_opt = build_any(name, other.parameters(), **({"seed": 11} if "seed" in EVERY[name][1] else {}))
    take_steps(other, other_opt, 20, 23)  # drawing ahead, mid-cycle, with other numbers
    other.load_state_dict(ckpt["model"])
    other_opt.load_state_dict(ckpt["opt"])
    take_steps(other, other_opt, 4, 10)
    assert_identical(weights_and_reference(other, other_opt), weights_and_reference(truth_model, truth))


# ---------------------------------------------------------------------------------- groups added mid-run

DETERMINISTIC = {
    "entropy-sgd": dict(noise=0.0),
    "entropy-adam": dict(noise=0.0),
    "hj": {},
    "heat": dict(gamma=0.0),
}


@pytest.mark.parametrize("name", list(DETERMINISTIC))
def test_group_added_mid_cycle_starts_its_own_cycle(name):
    kw = DETERMINISTIC[name]
    model = embedding_model()
    first, second = list(model["lin"].parameters()), list(model["out"].parameters())
    opt = build_any(name, first, **kw)
    take_steps(model, opt, 0, 4)  # mid-cycle (L = 3)
    start = [p.detach().clone() for p in second]
    opt.add_param_group({"params": second})
    take_steps(model, opt, 4, 11)
    with opt.reference_weights():
        got = [p.detach().clone() for p in first + second]

    alone = embedding_model()  # the first group alone, as if nothing had been added
    only = build_any(name, list(alone["lin"].parameters()), **kw)
    take_steps(alone, only, 0, 4)
    late = build_any(name, list(alone["out"].parameters()), **kw)
    for t in range(4, 11):  # the same mini-batches and the same gradients, two separate optimizers
        for o in (only, late):
            o.zero_grad()
        embedding_loss(alone, t).backward()
        only.step()
        late.step()
    assert not all(torch.equal(p.detach(), s) for p, s in zip(second, start, strict=True))  # it did train
    with only.reference_weights(), late.reference_weights():
        expected = [
            p.detach().clone() for p in list(alone["lin"].parameters()) + list(alone["out"].parameters())
        ]
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_anneal_sgd_alignment_of_a_complex_parameter_is_that_of_its_pair_of_reals():
    c = nn.Parameter(C0.clone())
    r = nn.Parameter(torch.view_as_real(C0).clone())
    opts = [build_any("anneal-sgd", [p], **COMPLEX_SETTINGS["anneal-sgd"]) for p in (c, r)]
    _run_on(c, opts[0], _complex_loss, steps=3)
    _run_on(r, opts[1], lambda p: _complex_loss(torch.view_as_complex(p)), steps=3)
    assert abs(opts[0].alignment() - opts[1].alignment()) <= 1e-12 * max(1.0, opts[1].alignment())
