"""Noise drawn ahead on a worker thread (``SeededOptimizer.prefetch_noise``) gives exactly the numbers of the
synchronous draws: the same trajectories bit for bit, the same generator state whenever it is observed, the
same resumed runs."""

import io
import os
import signal
import time

import pytest
import torch
from torch import nn

from deeplandscape import optim

NOISY = {
    "sgld": dict(lr=0.05, temperature=0.1),
    "gradient-noise": dict(base=torch.optim.SGD, lr=0.05, eta=0.3),
    "entropy-sgd": dict(lr=1.0, inner_lr=0.05, L=3, noise=1e-2),
    "heat": dict(lr=0.05, L=3, gamma=1e-2),
}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2)).double()


def _build(name: str, params, prefetch: bool) -> torch.optim.Optimizer:
    kwargs = dict(NOISY[name])
    base = kwargs.pop("base", None)
    cls = optim.get(name)
    opt = cls(params, base, seed=3, **kwargs) if base is not None else cls(params, seed=3, **kwargs)
    opt.prefetch_noise = prefetch
    return opt


def _steps(model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
    for t in steps:
        g = torch.Generator().manual_seed(t)
        x = torch.randn(8, 5, generator=g, dtype=torch.float64)
        y = torch.randint(0, 2, (8,), generator=g)

        def closure(x=x, y=y):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        closure()
        opt.step(closure)


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", sorted(NOISY))
def test_prefetched_noise_gives_the_synchronous_trajectory(name):
    runs = {}
    for prefetch in (False, True):
        model = _model()
        opt = _build(name, model.parameters(), prefetch)
        _steps(model, opt, range(7))
        assert ("_prefetch" in opt.__dict__) == prefetch  # the worker did draw ahead
        runs[prefetch] = (_flat(model), opt.generator("cpu").get_state())
    assert torch.equal(runs[True][0], runs[False][0])
    assert torch.equal(runs[True][1], runs[False][1])  # observed state: as if nothing was drawn ahead


def test_two_groups_sharing_the_generator_keep_the_synchronous_order():
    runs = {}
    for prefetch in (False, True):
        model = _model()
        groups = [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.02}]
        opt = _build("sgld", groups, prefetch)
        _steps(model, opt, range(5))
        assert "_prefetch" not in opt.__dict__  # the second group's draw stopped the drawing ahead
        runs[prefetch] = _flat(model)
    assert torch.equal(runs[True], runs[False])


@pytest.mark.parametrize("name", sorted(NOISY))
def test_turning_prefetch_off_mid_run_keeps_the_trajectory_and_frees_the_buffer(name):
    runs = []
    for switch in (False, True):  # synchronous all along; drawing ahead, then turned off with a draw pending
        model = _model()
        opt = _build(name, model.parameters(), prefetch=switch)
        _steps(model, opt, range(4))
        if switch:
            assert "_prefetch" in opt.__dict__
            opt.prefetch_noise = False
            assert "_prefetch" not in opt.__dict__
            assert not [key for key in opt.__dict__["_scratch"] if key[0] == "noise-ahead"]
        _steps(model, opt, range(4, 8))
        assert "_prefetch" not in opt.__dict__
        runs.append(_flat(model))
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("name", ["sgld", "entropy-sgd"])
def test_checkpoint_with_a_draw_pending_resumes_bit_for_bit(name):
    model = _model()
    opt = _build(name, model.parameters(), True)
    _steps(model, opt, range(4))
    assert "_prefetch" in opt.__dict__
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    _steps(model, opt, range(4, 9))
    uninterrupted = _flat(model)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = _model()
    resumed.load_state_dict(saved["model"])
    opt2 = _build(name, resumed.parameters(), True)
    opt2.load_state_dict(saved["opt"])
    _steps(resumed, opt2, range(4, 9))
    assert torch.equal(_flat(resumed), uninterrupted)

    synchronous = _model()
    opt3 = _build(name, synchronous.parameters(), False)
    _steps(synchronous, opt3, range(9))
    assert torch.equal(_flat(synchronous), uninterrupted)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_draws_with_its_own_worker():
    # The process forks right after a step, while the worker is drawing the next step's 4 M numbers
    # (≈ 10 ms): the draw must finish before the fork (the child has no worker thread to finish it, and must
    # not inherit a generator caught mid-draw), and the child must draw ahead with a worker of its own.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # no OpenMP region in the child (OpenMP is not fork-safe)
    try:
        w = nn.Parameter(torch.zeros(4_000_000))
        opt = optim.SGLD([w], lr=0.01, temperature=0.1, seed=5)

        def step():
            w.grad = torch.ones_like(w)
            opt.step()

        step()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: two more steps, then report the parameters' checksum
            os.close(read)
            step()
            step()
            os.write(write, repr(float(w.detach().double().sum())).encode())
            os._exit(0)
        os.close(write)
        deadline = time.monotonic() + 60
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung waiting for the parent's worker thread")
        child_sum = float(os.read(read, 100).decode())
        os.close(read)
        assert os.waitstatus_to_exitcode(done[1]) == 0
        step()
        step()
        assert child_sum == float(w.detach().double().sum())
    finally:
        torch.set_num_threads(threads)
