"""Parle and Elastic-SGD over torch.distributed (gloo on 127.0.0.1), one replica per spawned process.

Checked against the single-process optimizers over the same n replicas (same initial weights, data splits,
mini-batches and seeds): the master is bitwise identical on all ranks and equal to the single-process one,
and ``all_reduce`` (counted by wrapping ``torch.distributed.all_reduce``) runs once at construction and
then only on Parle's outer steps (every L-th step; twice there with ``variant="authors"``), on every step for
Elastic-SGD.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from deeplandscape.optim.distributed import DistributedElasticSGD, DistributedParle, replica_mean
from deeplandscape.optim.elastic import ElasticSGD
from deeplandscape.optim.parle import Parle, split_dataset

DT = torch.float64
STEPS, L = 11, 4
PARLE = dict(
    lr=0.1, inner_lr=0.05, L=L, gamma=0.8, rho=0.5, scoping=0.1, gamma_min=0.3, rho_min=0.2, noise=1e-4
)
ELASTIC = dict(lr=0.05, rho=0.5, scoping=0.1, rho_min=0.2)
# the authors' code (variant="authors"): one learning rate for both loops, two averages per outer step
AUTHORS = dict(PARLE, inner_lr=None, lr=0.05, variant="authors")


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)).to(DT)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(60, 3, generator=g, dtype=DT)
    return X, torch.sin(X.sum(1, keepdim=True))


def batch_stream(rank: int, world: int) -> list[torch.Tensor]:
    """Mini-batches of replica ``rank`` drawn from its disjoint split (Thesis §5.5)."""
    X, _ = data()
    split = torch.tensor(split_dataset(torch.utils.data.TensorDataset(X), world, seed=0)[rank].indices)
    g = torch.Generator().manual_seed(100 + rank)
    return [split[torch.randint(0, len(split), (8,), generator=g)] for _ in range(STEPS)]


def flat(ts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in ts]).clone()


def train(models, opt, streams, on_step=None) -> list[torch.Tensor]:
    X, Y = data()
    masters = []
    for t in range(STEPS):
        if on_step is not None:
            on_step(t)
        opt.zero_grad()
        for m, stream in zip(models, streams, strict=True):
            nn.functional.mse_loss(m(X[stream[t]]), Y[stream[t]]).backward()
        opt.step()
        masters.append(flat(opt.master_weights()))
    return masters


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        current = [-1]  # -1: construction
        calls: list[int] = []
        real_all_reduce = dist.all_reduce

        def counting_all_reduce(*args, **kwargs):
            calls.append(current[0])
            return real_all_reduce(*args, **kwargs)

        dist.all_reduce = counting_all_reduce
        result = {}
        for name, cls, knobs in (
            ("parle", DistributedParle, PARLE),
            ("parle-authors", DistributedParle, AUTHORS),
            ("elastic", DistributedElasticSGD, ELASTIC),
        ):
            current[0] = -1
            calls.clear()
            model = make_model(rank)
            opt = (
                cls(model.parameters(), seed=3, **knobs)
                if name.startswith("parle")
                else cls(model.parameters(), **knobs)
            )
            masters = train(
                [model], opt, [batch_stream(rank, world)], on_step=lambda t: current.__setitem__(0, t)
            )
            opt.synchronize()
            result[name] = {"masters": torch.stack(masters), "calls": list(calls), "counted": opt.collectives}
        dist.all_reduce = real_all_reduce
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 3])
def test_distributed_equals_single_process(world, tmp_path, monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    mp.spawn(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]

    streams = [batch_stream(a, world) for a in range(world)]
    models = [make_model(a) for a in range(world)]
    single_parle = torch.stack(
        train(models, Parle([m.parameters() for m in models], seed=3, **PARLE), streams)
    )
    models = [make_model(a) for a in range(world)]
    single_authors = torch.stack(
        train(models, Parle([m.parameters() for m in models], seed=3, **AUTHORS), streams)
    )
    models = [make_model(a) for a in range(world)]
    single_elastic = torch.stack(
        train(models, ElasticSGD([m.parameters() for m in models], **ELASTIC), streams)
    )

    outer = [t for t in range(STEPS) if (t + 1) % L == 0]
    for name, single, expected_calls in (
        ("parle", single_parle, [-1, *outer]),
        ("parle-authors", single_authors, [-1] + [t for t in outer for _ in range(2)]),
        ("elastic", single_elastic, [-1, *range(STEPS)]),
    ):
        masters = [r[name]["masters"] for r in ranks]
        for m in masters[1:]:
            assert torch.equal(m, masters[0]), f"{name}: master differs between ranks"
        # the all_reduce may sum in another order than the single process: agreement to rounding
        assert (masters[0] - single).abs().max().item() <= 1e-12, name
        for r in ranks:
            assert r[name]["calls"] == expected_calls, (name, r[name]["calls"])
            assert r[name]["counted"] == len(expected_calls)


def test_single_process_group_never_communicates(tmp_path, monkeypatch):
    """A process group of one process: the optimizer is the single-process one with n = 1, no collective."""
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        assert replica_mean().n_replicas == 1
        m1, m2 = make_model(0), make_model(0)
        o1 = Parle(m1.parameters(), seed=3, **PARLE)
        o2 = DistributedParle(m2.parameters(), seed=3, **PARLE)
        a = train([m1], o1, [batch_stream(0, 1)])
        b = train([m2], o2, [batch_stream(0, 1)])
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)) and o2.collectives == 0
    finally:
        dist.destroy_process_group()
