"""Every hyperparameter is validated, in the constructor and in ``add_param_group``, before anything is kept.

A rejected param group must leave the optimizer as it was: the same param groups (also in a wrapped base
optimizer), no state for its parameters, and the parameters untouched (Heat perturbs the parameters of a
group it adds). NaN and ±Inf are refused wherever a finite number is needed, also for the knobs a wrapper
hands to its base optimizer (torch validates those in its constructors only, and NaN passes ``lr < 0``).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import deeplandscape.optim as dlo

from ._problems import EVERY, REPLICATED, WRAPPERS, build_any, embedding_model

SINGLE = [n for n in EVERY if n not in REPLICATED]
BAD = [("lr", math.nan), ("lr", math.inf), ("lr", -1.0), ("weight_decay", math.nan), ("weight_decay", -1.0)]


def _knob_values(name: str) -> list[tuple[str, float]]:
    extra = {
        "anneal-sgd": [("J", math.nan), ("tau0", math.inf), ("momentum", math.nan)],
        "anneal-sgd:adam": [("betas", (0.9, math.nan)), ("eps", -1.0)],
        "gradient-noise": [("eta", math.inf), ("momentum", -0.1)],
        "gradient-noise:adam": [("betas", (1.5, 0.999))],
        "sgld": [("temperature", math.nan)],
        "entropy-sgd": [("gamma", math.nan), ("inner_lr", math.inf), ("outer_momentum", 1.0), ("L", 0)],
        "entropy-adam": [("betas", (0.5, math.inf)), ("alpha", 2.0), ("foreach", "yes")],
        "hj": [("noise", -1.0), ("scoping", math.nan)],
        "heat": [("gamma", math.inf), ("momentum", math.nan)],
        "sam": [("rho", math.nan), ("momentum", math.inf)],
        "sam:adam": [("rho", -1.0), ("betas", (0.9, -0.1))],
    }[name]
    return [(k, v) for k, v in BAD if not (name == "sgld" and k == "momentum")] + extra


CASES = [(name, knob, value) for name in SINGLE for knob, value in _knob_values(name)]


@pytest.mark.parametrize(("name", "knob", "value"), CASES)
def test_invalid_knob_in_the_constructor_raises_naming_it(name, knob, value):
    model = embedding_model()
    before = [p.detach().clone() for p in model.parameters()]
    label = "betas\\[\\d\\]" if knob == "betas" else knob
    with pytest.raises(ValueError, match=rf"Invalid {label}: "):
        build_any(name, model.parameters(), **{knob: value})
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


@pytest.mark.parametrize(("name", "knob", "value"), CASES)
def test_invalid_param_group_is_refused_before_anything_is_added(name, knob, value):
    model = embedding_model()
    opt = build_any(name, list(model["lin"].parameters()))
    groups = list(opt.param_groups)
    base_groups = list(opt.base.param_groups) if hasattr(opt, "base") else None
    new = list(model["out"].parameters())
    before = [p.detach().clone() for p in new]
    label = "betas\\[\\d\\]" if knob == "betas" else knob
    with pytest.raises(ValueError, match=rf"Invalid {label}: "):
        opt.add_param_group({"params": new, knob: value})
    assert opt.param_groups == groups and len(opt.param_groups) == 1
    if base_groups is not None:
        assert opt.base.param_groups == base_groups
    assert all(p not in opt.state for p in new)
    assert all(torch.equal(p.detach(), b) for p, b in zip(new, before, strict=True))
    opt.add_param_group({"params": new})  # a valid group is still accepted afterwards
    assert len(opt.param_groups) == 2


@pytest.mark.parametrize("name", WRAPPERS)
def test_a_group_the_base_optimizer_refuses_is_kept_by_neither(name):
    model = embedding_model()
    opt = build_any(name, list(model["lin"].parameters()))
    with pytest.raises(ValueError):  # torch.optim: a parameter may be in one group only
        opt.add_param_group({"params": [model["lin"].weight]})
    assert len(opt.param_groups) == len(opt.base.param_groups) == 1


@pytest.mark.parametrize("name", sorted(REPLICATED))
def test_replicated_optimizers_refuse_new_groups_and_keep_theirs(name):
    model = embedding_model()
    opt = build_any(name, list(model["lin"].parameters()))
    with pytest.raises(RuntimeError, match="add_param_group is not supported"):
        opt.add_param_group({"params": list(model["out"].parameters())})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("name", sorted(REPLICATED))
@pytest.mark.parametrize(("knob", "value"), [("lr", math.nan), ("lr", math.inf), ("momentum", math.nan)])
def test_replicated_optimizers_refuse_non_finite_knobs(name, knob, value):
    with pytest.raises(ValueError, match=rf"Invalid {knob}: "):
        build_any(name, embedding_model().parameters(), **{knob: value})


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_a_base_optimizer_whose_step_needs_a_closure_is_refused(wrapper):
    w = [nn.Parameter(torch.zeros(3, 3))]
    kw = {"anneal-sgd": dict(p=3), "gradient-noise": {}, "sam": {}}[wrapper]
    with pytest.raises(ValueError, match=r"LBFGS .*closure"):
        dlo.get(wrapper)(w, torch.optim.LBFGS, **kw)
