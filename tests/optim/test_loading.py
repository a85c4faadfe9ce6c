"""``load_state_dict`` refuses what it cannot resume from, and Heat resumes exactly.

A state saved by another optimizer, for parameters of another shape or number, or missing one of its
entries raises ``ValueError`` before anything is loaded: the optimizer then continues exactly as the run that
never tried (truth: the uninterrupted run). Heat built on a model loaded from a checkpoint (which perturbs
the loaded point once more) and given the checkpoint's optimizer state resumes bit for bit.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deeplandscape.optim as dlo

from ._problems import (
    EVERY,
    WRAPPERS,
    assert_identical,
    build_any,
    embedding_model,
    save_load,
    take_steps,
    weights_and_reference,
)


def _other(name: str) -> str:
    """An optimizer of another kind whose state is offered to ``name``."""
    return "heat" if name != "heat" else "entropy-sgd"


def _assert_refused_and_unchanged(name: str, bad_state, match: str) -> None:
    model = embedding_model()
    opt = build_any(name, model.parameters())
    take_steps(model, opt, 0, 4)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(bad_state)
    take_steps(model, opt, 4, 9)
    truth_model = embedding_model()
    truth = build_any(name, truth_model.parameters())
    take_steps(truth_model, truth, 0, 9)
    assert_identical(weights_and_reference(model, opt), weights_and_reference(truth_model, truth))


@pytest.mark.parametrize("other", ["sgd", "ours"])
@pytest.mark.parametrize("name", list(EVERY))
def test_state_of_another_optimizer_is_refused(name, other):
    model = embedding_model()
    if other == "sgd":
        donor = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    else:
        replicated = name.startswith(("parle", "elastic", "distributed"))
        donor = build_any("sgld" if replicated else _other(name), model.parameters())
    take_steps(model, donor, 0, 4)
    _assert_refused_and_unchanged(name, save_load(donor.state_dict()), "Invalid state_dict: ")


@pytest.mark.parametrize("name", [n for n in EVERY if n != "sgld"])  # SGLD keeps no per-parameter state
def test_state_saved_for_other_parameters_is_refused(name):
    torch.manual_seed(1)
    other = nn.ModuleDict(
        {"emb": nn.Embedding(12, 4), "lin": nn.Linear(4, 3), "out": nn.Linear(3, 1)}
    ).double()
    opt = build_any(name, other.parameters())
    take_steps(other, opt, 0, 4)
    _assert_refused_and_unchanged(name, save_load(opt.state_dict()), r"shape \(12, 4\)")


@pytest.mark.parametrize("name", list(EVERY))
def test_state_for_fewer_parameters_is_refused(name):
    model = embedding_model()
    opt = build_any(name, list(model["lin"].parameters()) + list(model["out"].parameters()))
    take_steps(model, opt, 0, 4)
    _assert_refused_and_unchanged(name, save_load(opt.state_dict()), "holds 4 parameters")


def _without(sd: dict, path: tuple) -> dict:
    sd = dict(sd)
    if len(path) == 1:
        del sd[path[0]]
        return sd
    state = {k: dict(v) for k, v in sd["state"].items()}
    del state[path[1]][path[2]]
    return {**sd, "state": state}


MISSING = {
    "anneal-sgd": [("rng",), ("base_state",), ("state", 0, "field")],
    "gradient-noise": [("rng",), ("base_state",)],
    "sgld": [("rng",)],
    "entropy-sgd": [("rng",), ("state", 1, "reference")],
    "hj": [("state", 2, "reference")],
    "heat": [("rng",), ("state", 0, "reference"), ("state", 3, "grad_sum")],
    "sam": [("base_state",)],
    "parle": [("replicas",), ("state", 0, "x"), ("state", 1, "master")],
    "elastic-sgd": [("replicas",), ("state", 4, "master")],
}
MISSING_CASES = [(name, path) for name, paths in MISSING.items() for path in paths]


@pytest.mark.parametrize(("name", "path"), MISSING_CASES)
def test_state_missing_an_entry_is_refused(name, path):
    model = embedding_model()
    opt = build_any(name, model.parameters())
    take_steps(model, opt, 0, 4)
    bad = _without(save_load(opt.state_dict()), path)
    _assert_refused_and_unchanged(name, bad, f"Invalid state_dict: .*{path[-1]}")


@pytest.mark.parametrize("load_model_first", [True, False])
def test_heat_built_on_a_loaded_model_resumes_bit_for_bit(load_model_first):
    def make(model, seed=0):
        return dlo.Heat(model.parameters(), lr=0.05, L=3, gamma=1e-3, seed=seed)

    truth_model = embedding_model()
    truth = make(truth_model)
    take_steps(truth_model, truth, 0, 11)

    model = embedding_model()
    opt = make(model)
    take_steps(model, opt, 0, 5)  # mid-cycle
    ckpt = save_load({"model": model.state_dict(), "opt": opt.state_dict()})

    fresh = embedding_model(seed=3)
    if load_model_first:  # the loaded point is perturbed once more by the constructor
        fresh.load_state_dict(ckpt["model"])
        fresh_opt = make(fresh, seed=9)
    else:
        fresh_opt = make(fresh, seed=9)
        fresh.load_state_dict(ckpt["model"])
    fresh_opt.load_state_dict(ckpt["opt"])
    take_steps(fresh, fresh_opt, 5, 11)
    assert_identical(weights_and_reference(fresh, fresh_opt), weights_and_reference(truth_model, truth))


def test_heat_skips_a_parameter_without_gradient():
    """Thesis eq. (4.43) for the used parameter (an oracle with its draws), the unused one left alone."""
    lr, L, gamma, steps, seed = 0.1, 2, 0.01, 7, 4
    w = nn.Parameter(torch.tensor([0.5, -1.0], dtype=torch.float64))
    unused = nn.Parameter(torch.tensor([2.0, 3.0, 4.0], dtype=torch.float64))
    opt = dlo.Heat([w, unused], lr=lr, L=L, gamma=gamma, scoping=0.0, momentum=0.0, seed=seed)
    parked = unused.detach().clone()
    reference = opt.state[unused]["reference"].clone()
    for _ in range(steps):
        opt.zero_grad()
        (w**4).sum().backward()
        opt.step()
        assert torch.equal(unused.detach(), parked)  # not perturbed again
    assert torch.equal(opt.state[unused]["reference"], reference)
    assert opt.state[unused]["grads"] == 0 and not opt.state[unused]["grad_sum"].any()

    gen = torch.Generator().manual_seed(seed)
    x = torch.tensor([0.5, -1.0], dtype=torch.float64)
    point = x + gamma**0.5 * torch.randn(2, generator=gen, dtype=torch.float64)
    torch.randn(3, generator=gen, dtype=torch.float64)  # the unused parameter's first perturbation
    total, k = torch.zeros(2, dtype=torch.float64), 0
    for _ in range(steps):
        total, k = total + 4 * point**3, k + 1
        if k == L:
            x, total, k = x - lr * total / L, torch.zeros(2, dtype=torch.float64), 0
        point = x + gamma**0.5 * torch.randn(2, generator=gen, dtype=torch.float64)
    assert (w.detach() - point).abs().max().item() <= 1e-14
    with opt.reference_weights():
        assert (w.detach() - x).abs().max().item() <= 1e-14


def test_heat_state_dict_leaves_the_live_state_alone():
    model = embedding_model()
    opt = dlo.Heat(model.parameters(), lr=0.05, L=3, gamma=1e-3, seed=0)
    take_steps(model, opt, 0, 2)
    sd = opt.state_dict()
    assert all("point" in st for st in sd["state"].values())
    assert all("point" not in opt.state[p] for p in model.parameters())


def test_entropy_sgd_state_saved_before_outer_momentum_existed_keeps_its_meaning():
    """Then ``momentum``/``nesterov`` acted on both loops: loading sets the outer knobs to them."""
    model = embedding_model()
    kw = dict(lr=0.5, inner_lr=0.05, L=3, gamma=1.0, noise=1e-3, momentum=0.6, seed=0)
    opt = dlo.EntropySGD(model.parameters(), outer_momentum=0.6, outer_nesterov=True, **kw)
    take_steps(model, opt, 0, 4)
    sd = save_load(opt.state_dict())
    new_knobs = ("outer_momentum", "outer_nesterov")
    old = {
        **sd,
        "param_groups": [{k: v for k, v in g.items() if k not in new_knobs} for g in sd["param_groups"]],
    }
    fresh = dlo.EntropySGD(model.parameters(), **kw)
    fresh.load_state_dict(old)
    assert fresh.param_groups[0]["outer_momentum"] == 0.6 and fresh.param_groups[0]["outer_nesterov"] is True


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_a_wrapper_around_a_seeded_base_resumes_bit_for_bit(wrapper):
    """The base optimizer's own generators (SGLD as base) travel in the wrapper's state_dict."""
    kw = {"anneal-sgd": dict(J=0.01, p=3, seed=0), "gradient-noise": dict(eta=0.01, seed=0), "sam": {}}[
        wrapper
    ]

    def make(model):
        return dlo.get(wrapper)(model.parameters(), dlo.SGLD, lr=0.05, temperature=1e-3, **kw)

    torch.manual_seed(0)  # the base SGLD draws its seed from torch's global generator
    truth_model = embedding_model()
    truth = make(truth_model)
    take_steps(truth_model, truth, 0, 9)
    torch.manual_seed(0)
    model = embedding_model()
    opt = make(model)
    take_steps(model, opt, 0, 4)
    ckpt = save_load({"model": model.state_dict(), "opt": opt.state_dict()})
    torch.manual_seed(1)  # another seed for the fresh base: the checkpoint must override it
    fresh = embedding_model(seed=2)
    fresh_opt = make(fresh)
    fresh.load_state_dict(ckpt["model"])
    fresh_opt.load_state_dict(ckpt["opt"])
    take_steps(fresh, fresh_opt, 4, 9)
    assert_identical(weights_and_reference(fresh, fresh_opt), weights_and_reference(truth_model, truth))
