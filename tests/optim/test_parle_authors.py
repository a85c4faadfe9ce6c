"""Parle's ``variant="authors"`` against a literal transcription of the authors' published code.

The transcription below follows ``parle_step`` of github.com/ucla-vision/parle ``parle_mpi.py`` (commit
454daca, lines 87–171) statement by statement, with the MPI collectives of ``sync_with_master`` (lines
123–139: reduce to rank 0, divide by n, broadcast) written as a mean over the ranks held in one process,
and its training loop (L inner steps with a mini-batch gradient, L2 added to it, then
``parle_step(sync=True)``).
Its scoping uses the script's couplings: ``gamma`` = 1/γ and ``rho`` = 1/ρ.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deeplandscape.optim.parle import Parle

from ._problems import DT, max_diff, random_quadratics

MOM, ALPHA = 0.9, 0.75  # parle_mpi.py line 90


class Rank:
    """One MPI rank of the script: its model parameters (``p``, the inner iterate) and ``opt['state']``."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.p = [t.clone() for t in params]
        self.s = {"t": 0, "za": {}, "muy": {}, "mux": {}, "xa": {}, "x": {}}
        for i, t in enumerate(self.p):  # lines 100–109
            for k in ("za", "muy", "mux", "xa"):
                self.s[k][i] = t.clone()
            self.s["muy"][i].zero_()
            self.s["mux"][i].zero_()
            self.s["x"][i] = t.clone()


def sync_with_master(ranks: list[Rank], key: str) -> None:
    """Lines 123–139: x ← (1/n) Σ_ranks state[key], on every rank."""
    for i in range(len(ranks[0].p)):
        mean = sum(r.s[key][i] for r in ranks) / float(len(ranks))
        for r in ranks:
            r.s["x"][i] = mean.clone()


def couplings(rank: Rank, opt: dict) -> tuple[float, float]:
    """Lines 119–121."""
    t = rank.s["t"]
    gamma = opt["gamma"] * (1 + 0.5 / opt["nb"]) ** (t // opt["L"])
    rho = opt["rho"] * (1 + 0.5 / opt["nb"]) ** (t // opt["L"])
    return min(gamma, 1), min(rho, 10)


def parle_step(ranks: list[Rank], grads: list[list[torch.Tensor]] | None, opt: dict, *, per_tensor: bool):
    """Lines 141–171 on every rank; ``per_tensor``: the counter incremented inside the parameter loop (line
    171, as written), else once per step (Thesis eq. (5.10), what ``variant="authors"`` does)."""
    lr = opt["lr"]
    if grads is None:  # sync=True
        rho = couplings(ranks[0], opt)[1]
        sync_with_master(ranks, "za")  # line 143
        for r in ranks:
            for i, p in enumerate(r.p):
                tmp = r.s["x"][i]
                g = torch.zeros_like(p)  # lines 151–152
                g.add_(r.s["xa"][i] - r.s["za"][i], alpha=1).add_(r.s["xa"][i] - tmp, alpha=rho)
                r.s["mux"][i].mul_(MOM).add_(g)  # lines 154–156
                g.add_(r.s["mux"][i])
                p.add_(g, alpha=-lr)
                r.s["xa"][i].copy_(p)  # line 158
        sync_with_master(ranks, "xa")  # line 159
        return
    for r, gr in zip(ranks, grads, strict=True):
        gamma = couplings(r, opt)[0]
        for i, p in enumerate(r.p):
            g = gr[i].clone()
            g.add_(p - r.s["xa"][i], alpha=gamma)  # line 163
            r.s["muy"][i].mul_(MOM).add_(g)  # lines 165–167
            g.add_(r.s["muy"][i])
            p.add_(g, alpha=-lr)
            r.s["za"][i].mul_(ALPHA).add_(p, alpha=1 - ALPHA)  # line 169
            if per_tensor:
                r.s["t"] += 1  # line 171
        if not per_tensor:
            r.s["t"] += 1


def quadratic_grads(params: list[torch.Tensor], A, b, l2: float) -> list[torch.Tensor]:
    """The gradient of ½ vᵀAv − bᵀv for v the concatenated tensors, split like them, plus L2 (lines ~200)."""
    v = torch.cat([p.reshape(-1) for p in params])
    g = (A @ v - b).split([p.numel() for p in params])
    return [gi.reshape(p.shape) + l2 * p for gi, p in zip(g, params, strict=True)]


SCRIPT = dict(lr=0.05, L=3, gamma=0.3, rho=2.0, nb=1)  # couplings grow ×1.5 per cycle: both caps reached
CYCLES, L2 = 6, 1e-2


def run_both(shapes: list[tuple[int, ...]], *, per_tensor: bool, foreach: bool):
    n, dim = 3, sum(math.prod(s) for s in shapes)
    A, b, x0 = random_quadratics(dim, n, seed=4)
    sizes = [math.prod(s) for s in shapes]
    split = [[t.reshape(s) for t, s in zip(v.split(sizes), shapes, strict=True)] for v in x0]
    # the script
    ranks = [Rank(params) for params in split]
    for _ in range(CYCLES):
        for _ in range(SCRIPT["L"]):
            parle_step(ranks, [quadratic_grads(r.p, A[a], b[a], L2) for a, r in enumerate(ranks)], SCRIPT,
                       per_tensor=per_tensor)  # fmt: skip
        parle_step(ranks, None, SCRIPT, per_tensor=per_tensor)
    # ours
    ps = [[nn.Parameter(t.clone()) for t in params] for params in split]
    opt = Parle(
        ps, lr=SCRIPT["lr"], L=SCRIPT["L"], gamma=1 / SCRIPT["gamma"], rho=1 / SCRIPT["rho"],
        scoping=0.5 / SCRIPT["nb"], gamma_min=1.0, rho_min=0.1, weight_decay=L2, foreach=foreach,
        variant="authors",
    )  # fmt: skip
    for _ in range(CYCLES * SCRIPT["L"]):
        for a, params in enumerate(ps):
            grads = quadratic_grads([p.detach() for p in params], A[a], b[a], 0.0)
            for p, g in zip(params, grads, strict=True):
                p.grad = g
        opt.step()
    return ranks, ps, opt


@pytest.mark.parametrize("foreach", [False, True])
def test_matches_the_authors_code_one_tensor(foreach):
    """With one parameter tensor the script's counter (incremented inside the parameter loop) counts steps:
    the variant reproduces the script to rounding — inner iterates, x^a, z^a (never reset), the master, and
    the couplings that grew to their caps."""
    ranks, ps, opt = run_both([(5,)], per_tensor=True, foreach=foreach)
    assert max_diff([p.detach() for params in ps for p in params], [t for r in ranks for t in r.p]) <= 1e-12
    assert max_diff([opt.state[p]["x"] for params in ps for p in params],
                    [r.s["xa"][0] for r in ranks]) <= 1e-12  # fmt: skip
    assert max_diff([opt.state[p]["z"] for params in ps for p in params],
                    [r.s["za"][0] for r in ranks]) <= 1e-12  # fmt: skip
    assert max_diff(opt.master_weights(), [ranks[0].s["x"][0]]) <= 1e-12
    # the caps of lines 119–121 were reached (γ = 1, ρ = 0.1) and the moves are not trivial
    assert opt.gamma_at(CYCLES * SCRIPT["L"] - 1) == 1.0 and opt.rho_at(CYCLES * SCRIPT["L"] - 1) == 0.1
    assert opt.gamma_at(0) == pytest.approx(1 / 0.3) and opt.rho_at(SCRIPT["L"] - 1) == pytest.approx(1 / 3.0)
    assert min(float((r.s["xa"][0] - r.s["za"][0]).abs().max()) for r in ranks) > 1e-4


def test_matches_the_authors_code_many_tensors_with_a_step_counter():
    """Several parameter tensors: the variant equals the script with its counter moved out of the loop over
    tensors (the one deviation, documented), and differs from the script as written."""
    shapes = [(2, 2), (3,), (1,)]
    ranks, ps, _ = run_both(shapes, per_tensor=False, foreach=True)
    ours = [p.detach() for params in ps for p in params]
    assert max_diff(ours, [t for r in ranks for t in r.p]) <= 1e-12
    as_written, _, _ = run_both(shapes, per_tensor=True, foreach=True)
    assert max_diff(ours, [t for r in as_written for t in r.p]) > 1e-6


def test_differs_from_eq_5_8():
    """The two variants are different algorithms on the same problem (the variant is not a no-op)."""
    A, b, x0 = random_quadratics(4, 2, seed=1)
    finals = []
    for variant in ("thesis", "authors"):
        ps = [nn.Parameter(v.clone()) for v in x0]
        opt = Parle([[p] for p in ps], lr=0.05, L=3, gamma=2.0, rho=2.0, scoping=0.2, variant=variant)
        for _ in range(12):
            for a, p in enumerate(ps):
                p.grad = A[a] @ p.detach() - b[a]
            opt.step()
        finals.append(torch.cat([m.reshape(-1) for m in opt.master_weights()]))
    assert float((finals[0] - finals[1]).abs().max()) > 1e-3


def test_validation_of_the_variant():
    p = nn.Parameter(torch.zeros(3, dtype=DT))
    with pytest.raises(ValueError, match="Invalid variant"):
        Parle([p], variant="paper")
    with pytest.raises(ValueError, match="Invalid nesterov"):
        Parle([p], variant="authors", nesterov=False)
    with pytest.raises(ValueError, match="Invalid inner_lr"):
        Parle([p], lr=0.1, inner_lr=0.05, variant="authors")
    q = nn.Parameter(torch.zeros(2, dtype=DT))
    with pytest.raises(ValueError, match="Invalid variant"):
        Parle([{"params": [p]}, {"params": [q], "variant": "authors"}])
    assert Parle([p], variant="authors").param_groups[0]["alpha"] == ALPHA
    assert Parle([p]).param_groups[0]["alpha"] == 0.25


def test_authors_variant_checkpoint_resume_is_bitwise():
    """Mid-cycle save and load (weights_only) into fresh objects: the same trajectory as without."""
    import io

    A, b, x0 = random_quadratics(3, 2, seed=2)

    def build(values):
        ps = [nn.Parameter(v.clone()) for v in values]
        return ps, Parle([[p] for p in ps], lr=0.05, L=3, gamma=2.0, rho=2.0, scoping=0.2, variant="authors")

    def steps(ps, opt, k):
        for _ in range(k):
            for a, p in enumerate(ps):
                p.grad = A[a] @ p.detach() - b[a]
            opt.step()

    ps, opt = build(x0)
    steps(ps, opt, 14)
    ps1, opt1 = build(x0)
    steps(ps1, opt1, 7)
    buffer = io.BytesIO()
    torch.save({"p": [p.detach() for p in ps1], "opt": opt1.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    ps2, opt2 = build(saved["p"])
    opt2.load_state_dict(saved["opt"])
    steps(ps2, opt2, 7)
    assert max_diff([p.detach() for p in ps2], [p.detach() for p in ps]) == 0.0
    assert max_diff(opt2.master_weights(), opt.master_weights()) == 0.0
