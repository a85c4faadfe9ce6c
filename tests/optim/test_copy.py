"""``copy.deepcopy`` and ``pickle`` of every optimizer give one that continues exactly.

Truth: the uninterrupted run. An optimizer is run for 5 mini-batches together with its model, the pair is
copied (as EMA/SWA utilities and checkpoint tools do: ``copy.deepcopy({"model": m, "opt": o})``, or a
pickle round trip), and the copy, driven by the same mini-batches, must be bit-for-bit the run that never
stopped — parameters and reference weights. The original must continue exactly as well. The noisy
optimizers have their next step's noise being drawn ahead (on a worker thread) when they are copied.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import deeplandscape.optim as dlo
from deeplandscape.optim._parle_replicas import LocalMean

from ._problems import (
    EVERY,
    assert_identical,
    build_any,
    embedding_loss,
    embedding_model,
    take_steps,
    weights_and_reference,
)


def _uninterrupted(name: str, steps: int) -> list[torch.Tensor]:
    model = embedding_model()
    opt = build_any(name, model.parameters())
    take_steps(model, opt, 0, steps)
    return weights_and_reference(model, opt)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("name", list(EVERY))
def test_copy_with_its_model_continues_exactly(name, how):
    model = embedding_model()
    opt = build_any(name, model.parameters())
    take_steps(model, opt, 0, 5)
    bundle = {"model": model, "opt": opt}
    copied = copy.deepcopy(bundle) if how == "deepcopy" else pickle.loads(pickle.dumps(bundle))
    m2, o2 = copied["model"], copied["opt"]
    assert all(p is q for p, q in zip(o2.param_groups[0]["params"], m2.parameters(), strict=False))
    take_steps(m2, o2, 5, 12)
    take_steps(model, opt, 5, 12)
    expected = _uninterrupted(name, 12)
    assert_identical(weights_and_reference(m2, o2), expected)
    assert_identical(weights_and_reference(model, opt), expected)


def test_copied_wrapper_keeps_one_set_of_knobs():
    model = embedding_model()
    opt = build_any("anneal-sgd", model.parameters())
    o2 = copy.deepcopy({"model": model, "opt": opt})["opt"]
    assert o2.base.param_groups[0] is o2.param_groups[0]  # an LR scheduler on the copy reaches its base
    assert o2.param_groups[0] is not opt.param_groups[0]


def test_sam_copied_between_its_two_passes_continues_exactly():
    def run(copy_midway: bool) -> list[torch.Tensor]:
        model = embedding_model()
        opt = build_any("sam", model.parameters())
        take_steps(model, opt, 0, 3)
        opt.zero_grad()
        embedding_loss(model, 3).backward()
        opt.first_step(zero_grad=True)
        if copy_midway:
            bundle = copy.deepcopy({"model": model, "opt": opt})
            model, opt = bundle["model"], bundle["opt"]
        embedding_loss(model, 3).backward()
        opt.second_step()
        take_steps(model, opt, 4, 7)
        return weights_and_reference(model, opt)

    assert_identical(run(True), run(False))


class _OverProcesses:
    """Stands for the average over a process group (any averager but the in-process one)."""

    n_replicas, first_replica = 1, 0

    def mean_(self, out, replicas):
        return LocalMean(1).mean_(out, replicas)


def test_optimizer_communicating_over_a_process_group_refuses_to_be_copied():
    model = embedding_model()
    opt = dlo.Parle(model.parameters(), L=3, _averager=_OverProcesses())
    with pytest.raises(TypeError, match=r"process group .* state_dict"):
        copy.deepcopy(opt)
    with pytest.raises(TypeError, match="process group"):
        pickle.dumps(opt)
