"""Plumbing shared by every optimizer of :mod:`deeplandscape.optim`.

- :func:`check` validates a hyperparameter and raises ``ValueError("Invalid <name>: <value> (...)")``;
- :func:`check_finite_grads` stops a step before any state changes when a gradient holds a NaN or an Inf;
- :func:`closure_loss` and :func:`collect_grads` open the ``step()`` of the single-model optimizers;
- :func:`with_base_state` and :func:`load_base_state` put the state of a wrapped base optimizer (one that
  shares the wrapper's param groups) into the wrapper's ``state_dict()`` and back;
- :class:`SeededOptimizer` is a ``torch.optim.Optimizer`` that owns explicit ``torch.Generator`` objects
  (one per device) whose states travel in ``state_dict()`` so that a resumed run draws the same numbers,
  and that draws the next step's Gaussian noise on a worker thread while the model computes (CPU).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


def check(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
    choices: Sequence[Any] | None = None,
    allow_inf: bool = False,
) -> None:
    """Raise ``ValueError("Invalid <name>: <value> (<allowed range>)")`` unless ``value`` is allowed.

    Numbers must be real and finite (``allow_inf`` admits +inf), lie in the interval given by ``low`` /
    ``high`` (closed unless ``low_open`` / ``high_open``), and be integers when ``integer`` is set.
    """
    if choices is not None:
        if value not in choices:
            raise ValueError(f"Invalid {name}: {value!r} (must be one of {', '.join(map(repr, choices))})")
        return
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    interval = (
        f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
    )
    kind = "an integer" if integer else "a real number"
    allowed = f"must be {kind} in {interval}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Invalid {name}: {value!r} ({allowed})")
    if integer and not isinstance(value, int):
        raise ValueError(f"Invalid {name}: {value!r} ({allowed})")
    if math.isnan(value) or (math.isinf(value) and not (allow_inf and value > 0)):
        raise ValueError(f"Invalid {name}: {value!r} ({allowed})")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"Invalid {name}: {value!r} ({allowed})")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"Invalid {name}: {value!r} ({allowed})")


def check_finite_grads(grads: Sequence[Tensor], indices: Sequence[int], group_index: int, step: int) -> None:
    """Raise ``FloatingPointError`` naming the parameter if any gradient holds a NaN or an Inf.

    ``indices[i]`` is the position of ``grads[i]``'s parameter in its param group.

    One fused pass computes the 2-norms (NaN or Inf whenever an entry is); only when one of them is not
    finite are the entries checked one by one (a 2-norm can also overflow). Called before an optimizer
    touches any state, so a bad gradient leaves parameters, buffers, counters and generators as they were.
    """
    if not grads:
        return
    norms = torch._foreach_norm(list(grads))
    if bool(torch.stack([n.to(torch.float32) for n in norms]).isfinite().all()):
        return
    # The 2-norm (one cheap pass) is NaN/Inf when an entry is, but may also overflow: confirm exactly.
    bad = [j for j, g in enumerate(grads) if not bool(g.isfinite().all())]
    if not bad:
        return
    i = bad[0]
    what = "nan" if bool(grads[i].isnan().any()) else "inf"
    raise FloatingPointError(
        f"Non-finite gradient ({what}) in param group {group_index}, parameter {indices[i]} "
        f"of shape {tuple(grads[i].shape)} at step {step}; the optimizer state was left unchanged"
    )


def closure_loss(closure: Callable[[], Tensor] | None) -> Tensor | None:
    """The closure's loss, evaluated with gradients enabled (``None`` without a closure)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def collect_grads(
    param_groups: Sequence[dict[str, Any]], keep: Callable[[Tensor], bool] | None = None
) -> list[tuple[list[Tensor], list[Tensor]]]:
    """Per param group, the parameters with a gradient (and ``keep(p)``) and their gradients.

    Every gradient is checked with :func:`check_finite_grads` (at the group's ``step``) before any is
    returned, so that a step that raises leaves the optimizer state as it was.
    """
    work = []
    for gi, group in enumerate(param_groups):
        idx = [i for i, p in enumerate(group["params"]) if p.grad is not None and (keep is None or keep(p))]
        params = [group["params"][i] for i in idx]
        grads = [p.grad for p in params]
        check_finite_grads(grads, idx, gi, group["step"])
        work.append((params, grads))
    return work


def with_base_state(state_dict: dict[str, Any], base: Optimizer) -> dict[str, Any]:
    """``state_dict`` of a wrapper plus ``base_state``, the state (momentum buffers, Adam moments, …) of the
    base optimizer it wraps; the param groups are shared and stored once."""
    state_dict["base_state"] = base.state_dict()["state"]
    return state_dict


def load_base_state(
    wrapper: Optimizer, base: Optimizer, state_dict: dict[str, Any], load: Callable[[dict[str, Any]], None]
) -> None:
    """Load a state written with :func:`with_base_state`: the base optimizer's state, then the wrapper's own
    through ``load`` (its parent's ``load_state_dict``), then re-link the shared param groups (loading gives
    each optimizer new group dicts)."""
    state_dict = dict(state_dict)
    base_state = state_dict.pop("base_state", {})
    base.load_state_dict({"state": base_state, "param_groups": state_dict["param_groups"]})
    load(state_dict)
    base.param_groups = list(wrapper.param_groups)


def draw_seed() -> int:
    """A seed taken from torch's global generator, so that ``torch.manual_seed`` fixes it too."""
    return int(torch.randint(0, 2**62, (), dtype=torch.int64).item())


_NOISE_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _noise_pool() -> ThreadPoolExecutor:
    """The one worker thread on which every optimizer of this process draws its next step's noise (a new
    one after a fork: the child does not inherit the parent's worker thread)."""
    global _NOISE_POOL
    if _NOISE_POOL is None or _NOISE_POOL[0] != os.getpid():
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="deeplandscape-noise")
        _NOISE_POOL = (os.getpid(), pool)
    return _NOISE_POOL[1]


def _finish_draws_before_fork() -> None:
    """Let the worker finish every draw it was given before this process forks: a child must neither wait
    for a worker thread it does not have nor inherit a generator caught in the middle of a draw."""
    if _NOISE_POOL is not None and _NOISE_POOL[0] == os.getpid():
        _NOISE_POOL[1].submit(lambda: None).result()  # one worker, first in first out


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_finish_draws_before_fork)


@dataclass
class _Prefetch:
    """Standard normals being drawn ahead for ``key`` (the ids of the parameters, in order) into
    ``buffers`` (the work buffers named ``label``); ``state`` is the CPU generator's state before the draw,
    to give the numbers back."""

    key: tuple[int, ...]
    label: str
    state: Tensor
    buffers: list[Tensor]
    future: Future


class SeededOptimizer(Optimizer):
    """``torch.optim.Optimizer`` with its own random generators, saved and restored with the state.

    ``seed`` (an int ≥ 0, or ``None`` to draw one from torch's global generator) seeds one
    ``torch.Generator`` per device on which parameters live. ``state_dict()`` adds
    ``{"rng": {"seed": int, "states": {device: ByteTensor}}}``; ``load_state_dict`` restores it, so a
    resumed run draws exactly the numbers the uninterrupted run would have drawn.

    **Noise prefetch (CPU).** Drawing a standard normal per parameter costs about 2.5 ms per million numbers
    on one CPU core, a third of an SGD step of a 1 M-parameter MLP at batch 128. When
    :meth:`randn_like_params` has drawn the noise of a step for parameters that all live on the CPU, it
    starts drawing the next step's noise for the same parameters, from the same generator, on a worker
    thread, so that the draw overlaps the next forward and backward pass (torch releases the GIL in its
    kernels). The numbers are those of the synchronous draws, in the same order: a draw for other
    parameters, any direct use of :meth:`generator` and :meth:`state_dict` first wait for the worker and put
    the generator back in the state before the draw ahead (which is then discarded; after a draw for other
    parameters, that is, several param groups sharing the generator, the optimizer stops drawing ahead).
    ``os.fork`` waits for the draws in flight, and a forked child draws ahead on a worker thread of its own.
    Set ``optimizer.prefetch_noise = False`` to draw synchronously (one parameter-sized buffer less).
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], seed: int | None = None) -> None:
        if seed is not None:
            check("seed", seed, low=0, integer=True)
        self._seed = draw_seed() if seed is None else int(seed)
        self._generators: dict[str, torch.Generator] = {}
        super().__init__(params, defaults)

    @property
    def prefetch_noise(self) -> bool:
        """Whether the next step's noise is drawn ahead on the worker thread (CPU; default ``True``).

        Turning it off gives back a draw in progress and frees the buffers it was drawn into.
        """
        return self.__dict__.get("_prefetch_noise", True)

    @prefetch_noise.setter
    def prefetch_noise(self, on: bool) -> None:
        self.__dict__["_prefetch_noise"] = bool(on)
        if not on:
            self._stop_drawing_ahead()

    @property
    def seed(self) -> int:
        """The seed of the optimizer's generators."""
        return self._seed

    def generator(self, device: torch.device | str) -> torch.Generator:
        """The optimizer's generator for ``device`` (created and seeded on first use), in the state that the
        synchronous draws so far left it in (a draw ahead is given back first)."""
        self._give_back_prefetch()
        return self._generator(device)

    def _generator(self, device: torch.device | str) -> torch.Generator:
        device = torch.device(device)
        if device.type != "cpu" and device.index is None:
            device = torch.device(device.type, torch.get_device_module(device.type).current_device())
        key = str(device)
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self._seed)
            self._generators[key] = gen
        return gen

    def _give_back_prefetch(self) -> None:
        """Wait for a draw ahead, discard it and rewind the CPU generator to the state before it."""
        pending: _Prefetch | None = self.__dict__.pop("_prefetch", None)
        if pending is not None:
            pending.future.result()
            self._generators["cpu"].set_state(pending.state)

    def _stop_drawing_ahead(self) -> None:
        """Give back a draw ahead and free the buffers drawn ahead into."""
        self._give_back_prefetch()
        scratch = self.__dict__.get("_scratch", {})
        for key in [k for k in scratch if k[0] == "noise-ahead"]:
            del scratch[key]

    def scratch(self, p: Tensor, key: str) -> Tensor:
        """A persistent work buffer shaped like ``p`` (not part of the state: its content lives one step).

        Reusing it spares a fresh parameter-sized allocation (and its page faults) at every step.
        """
        scratch = self.__dict__.setdefault("_scratch", {})
        buf = scratch.get((key, p))
        if buf is None or buf.shape != p.shape or buf.dtype != p.dtype or buf.device != p.device:
            buf = scratch[(key, p)] = torch.empty_like(p, memory_format=torch.contiguous_format)
        return buf

    def randn_like_params(self, params: Sequence[Tensor]) -> list[Tensor]:
        """Standard normal tensors shaped like ``params``, drawn in order from the optimizer's generators.

        They are written into per-parameter work buffers (the numbers are those ``torch.randn`` would
        draw) and stay valid until the next call. On the CPU the next call's numbers are drawn ahead (see
        the class docstring).
        """
        key = tuple(id(p) for p in params)
        pending: _Prefetch | None = self.__dict__.get("_prefetch")
        if pending is not None and pending.key != key:  # another consumer of the generator
            self.__dict__["_prefetch_disabled"] = True
            self._stop_drawing_ahead()
            pending = None
        if pending is not None:
            del self.__dict__["_prefetch"]
            pending.future.result()
            label, out = pending.label, pending.buffers
        else:
            label = "noise"
            out = [self.scratch(p, label).normal_(generator=self._generator(p.device)) for p in params]
        if (
            self.prefetch_noise
            and params
            and not self.__dict__.get("_prefetch_disabled", False)
            and all(p.device.type == "cpu" for p in params)
        ):
            ahead = "noise-ahead" if label == "noise" else "noise"
            buffers = [self.scratch(p, ahead) for p in params]
            gen = self._generator("cpu")
            state = gen.get_state()

            def draw() -> None:
                for b in buffers:
                    b.normal_(generator=gen)

            self.__dict__["_prefetch"] = _Prefetch(key, ahead, state, buffers, _noise_pool().submit(draw))
        return out

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Optimizer.state_dict()`` plus the generators' seed and states."""
        self._give_back_prefetch()
        sd = super().state_dict()
        sd["rng"] = {
            "seed": self._seed,
            "states": {key: gen.get_state() for key, gen in self._generators.items()},
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the state written by :meth:`state_dict`, generators included."""
        self._give_back_prefetch()
        state_dict = dict(state_dict)
        rng = state_dict.pop("rng", None)
        super().load_state_dict(state_dict)
        if rng is not None:
            self._seed = int(rng["seed"])
            self._generators = {}
            for key, gen_state in rng["states"].items():
                self._generator(key).set_state(gen_state)


def use_foreach(foreach: bool | None, params: Sequence[Tensor]) -> bool:
    """Resolve the ``foreach`` knob: ``None`` picks the fused multi-tensor path unless a tensor is sparse."""
    if foreach is None:
        return not any(p.is_sparse for p in params)
    return bool(foreach)
