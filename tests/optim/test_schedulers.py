"""LR schedulers that cycle the momentum (``OneCycleLR``, ``CyclicLR(cycle_momentum=True)``) act on the
wrappers' base optimizers.

Truth: the base optimizer alone under the same scheduler. AnnealSGD with J = 0, GradientNoise with η = 0
and SAM with ρ = 0 are their base optimizer exactly, so under the same schedule the trajectories must be
bit-for-bit identical; that the cycled momentum (``momentum`` of SGD, β1 of Adam) reaches the update is
checked by the run differing from the one where only the learning rate is cycled.
"""

from __future__ import annotations

import pytest
import torch

import deeplandscape.optim as dlo

from ._problems import embedding_model, take_steps

BASES = {"sgd": (torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)), "adam": (torch.optim.Adam, {})}
OFF = {"anneal-sgd": dict(J=0.0, p=3, seed=0), "gradient-noise": dict(eta=0.0, seed=0), "sam": dict(rho=0.0)}


def _schedule(opt, kind: str, cycle_momentum: bool):
    if kind == "one-cycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=0.1, total_steps=30, cycle_momentum=cycle_momentum
        )
    return torch.optim.lr_scheduler.CyclicLR(
        opt, base_lr=0.01, max_lr=0.1, step_size_up=4, cycle_momentum=cycle_momentum
    )


def _run(wrapper: str | None, base: str, kind: str, cycle_momentum: bool = True) -> list[torch.Tensor]:
    model = embedding_model()
    cls, kw = BASES[base]
    if wrapper is None:
        opt = cls(model.parameters(), **kw)
    else:
        opt = dlo.get(wrapper)(model.parameters(), cls, **OFF[wrapper], **kw)
    sched = _schedule(opt, kind, cycle_momentum)
    for t in range(20):
        take_steps(model, opt, t, t + 1)
        sched.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["one-cycle", "cyclic"])
@pytest.mark.parametrize("base", list(BASES))
@pytest.mark.parametrize("wrapper", list(OFF))
def test_cycled_momentum_reaches_the_base_optimizer(wrapper, base, kind):
    ours = _run(wrapper, base, kind)
    alone = _run(None, base, kind)
    assert all(torch.equal(a, b) for a, b in zip(ours, alone, strict=True))
    without = _run(wrapper, base, kind, cycle_momentum=False)
    assert not all(torch.equal(a, b) for a, b in zip(ours, without, strict=True))


@pytest.mark.parametrize("wrapper", list(OFF))
def test_wrapper_defaults_expose_the_base_optimizer_knobs(wrapper):
    model = embedding_model()
    opt = dlo.get(wrapper)(model.parameters(), torch.optim.SGD, **OFF[wrapper], lr=0.05, momentum=0.9)
    assert opt.defaults["momentum"] == 0.9 and opt.defaults["lr"] == 0.05
    opt = dlo.get(wrapper)(model.parameters(), torch.optim.Adam, **OFF[wrapper])
    assert opt.defaults["betas"] == (0.9, 0.999)
