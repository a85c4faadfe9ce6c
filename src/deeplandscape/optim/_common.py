"""Plumbing shared by every optimizer of :mod:`deeplandscape.optim`.

- :func:`check` validates a hyperparameter and raises ``ValueError("Invalid <name>: <value> (...)")``;
- :func:`check_finite_grads` stops a step before any state changes when a gradient holds a NaN or an Inf;
- :func:`closure_loss` and :func:`collect_grads` open the ``step()`` of the single-model optimizers;
- :func:`with_base_state` and :func:`load_base_state` put the state of a wrapped base optimizer (one that
  shares the wrapper's param groups) into the wrapper's ``state_dict()`` and back;
- :func:`check_state_dict` refuses, before anything is loaded, a state saved by another optimizer or for
  other parameters;
- :class:`CopyableOptimizer` makes ``copy.deepcopy`` and ``pickle`` keep everything an optimizer needs to
  continue (torch's ``Optimizer.__getstate__`` keeps only defaults, state and param groups);
- :class:`SeededOptimizer` is a ``torch.optim.Optimizer`` that owns explicit ``torch.Generator`` objects
  (one per device) whose states travel in ``state_dict()`` so that a resumed run draws the same numbers,
  and that draws the next step's Gaussian noise on a worker thread while the model computes (CPU).

Complex parameters are treated as pairs of real numbers, as ``torch.optim`` does (``torch.view_as_real``):
Gaussian noise has unit variance in each real component (:func:`standard_normal_`).
"""

from __future__ import annotations

import inspect
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

    Sparse gradients are screened through their stored values (:func:`first_non_finite`). Called before an
    optimizer touches any state, so a bad gradient leaves parameters, buffers, counters and generators as
    they were.
    """
    bad = first_non_finite(grads)
    if bad is None:
        return
    entries = stored_entries(grads[bad])
    what = "nan" if bool(entries.isnan().any()) else "inf"
    raise FloatingPointError(
        f"Non-finite gradient ({what}) in param group {group_index}, parameter {indices[bad]} "
        f"of shape {tuple(grads[bad].shape)} at step {step}; the optimizer state was left unchanged"
    )


def stored_entries(t: Tensor) -> Tensor:
    """The entries a tensor stores: itself when dense, its values when sparse (COO, CSR, …)."""
    if t.layout == torch.strided:
        return t
    return t._values() if t.layout == torch.sparse_coo else t.values()


def first_non_finite(tensors: Sequence[Tensor]) -> int | None:
    """The position of the first tensor holding a NaN or an Inf (sparse tensors: among their stored values).

    One fused pass computes the 2-norms (NaN or Inf whenever an entry is); only when one of them is not
    finite are the entries checked one by one (a 2-norm can also overflow).
    """
    if not tensors:
        return None
    entries = [stored_entries(t) for t in tensors]
    norms = torch._foreach_norm(entries)
    device = norms[0].device
    if bool(torch.stack([n.to(device, torch.float32) for n in norms]).isfinite().all()):
        return None
    return next((i for i, e in enumerate(entries) if not bool(e.isfinite().all())), None)


def standard_normal_(t: Tensor, generator: torch.Generator) -> Tensor:
    """Fill ``t`` with N(0, 1) numbers from ``generator``; a complex ``t`` gets N(0, 1) in each real
    component (``torch.randn`` of a complex dtype gives each component variance 1/2)."""
    (torch.view_as_real(t) if t.is_complex() else t).normal_(generator=generator)
    return t


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
    base optimizer it wraps, and ``base_extra``, anything else its ``state_dict()`` holds (the generators of
    a base from this package); the param groups are shared and stored once."""
    base_sd = base.state_dict()
    state_dict["base_state"] = base_sd["state"]
    state_dict["base_extra"] = {k: v for k, v in base_sd.items() if k not in ("state", "param_groups")}
    return state_dict


def load_base_state(
    wrapper: Optimizer, base: Optimizer, state_dict: dict[str, Any], load: Callable[[dict[str, Any]], None]
) -> None:
    """Load a state written with :func:`with_base_state`: the base optimizer's state, then the wrapper's own
    through ``load`` (its parent's ``load_state_dict``), then re-link the shared param groups (loading gives
    each optimizer new group dicts). The state is checked with :func:`check_state_dict` first."""
    state_dict = dict(state_dict)
    check_state_dict(wrapper, state_dict, top=("base_state",))
    base_sd = {
        **state_dict.pop("base_extra", {}),
        "state": state_dict.pop("base_state"),
        "param_groups": state_dict["param_groups"],
    }
    check_state_dict(wrapper, base_sd)
    base.load_state_dict(base_sd)
    load(state_dict)
    base.param_groups = list(wrapper.param_groups)


#: torch.optim's hook registries: ``Optimizer.__getstate__`` leaves them out and ``__setstate__`` makes new
#: empty ones (hooks are often closures that cannot be pickled).
_TORCH_HOOKS = frozenset(
    f"_optimizer_{kind}_{when}_hooks"
    for kind in ("step", "state_dict", "load_state_dict")
    for when in ("pre", "post")
)


class CopyableOptimizer(Optimizer):
    """``torch.optim.Optimizer`` whose ``copy.deepcopy`` and ``pickle`` keep everything it needs to continue.

    torch's ``Optimizer.__getstate__`` keeps only ``defaults``, ``state`` and ``param_groups``; the optimizers
    here also hold generators, a wrapped base optimizer, counters and settings. A copy keeps every attribute
    (hook registries aside, as in torch) except the work buffers named in ``_transient``, which are made
    anew when needed, after :meth:`_prepare_copy` has settled what cannot be copied (a draw or a
    communication in flight). Copied together with the model (``copy.deepcopy({"model": m, "opt": o})``,
    as EMA/SWA utilities do), the copy acts on the copied parameters and continues exactly as the original.
    """

    #: Attributes that are work buffers, not state: left out of copies.
    _transient: tuple[str, ...] = ()

    def _prepare_copy(self) -> None:
        """Settle what a copy cannot carry (subclasses)."""

    def __getstate__(self) -> dict[str, Any]:
        self._prepare_copy()
        skip = _TORCH_HOOKS.union(self._transient)
        return {key: value for key, value in self.__dict__.items() if key not in skip}


def check_state_dict(
    opt: Optimizer,
    state_dict: Any,
    *,
    knobs: Iterable[str] = (),
    top: Iterable[str] = (),
    required: Callable[[Tensor, dict[str, Any] | None], Iterable[str]] | None = None,
) -> None:
    """Raise ``ValueError``, before anything is loaded, unless ``state_dict`` fits ``opt``.

    It must be a dict with ``state`` and ``param_groups`` and the entries ``top``; have as many param groups
    as ``opt``, each with as many parameters and every key in ``knobs`` (a group without them was saved by
    another optimizer); hold state only for those parameters, every tensor of it either a scalar or shaped
    like its parameter; and, where ``required(p, saved_state_or_None)`` names keys, hold them.
    """
    name = type(opt).__name__
    if not (isinstance(state_dict, dict) and "state" in state_dict and "param_groups" in state_dict):
        raise ValueError(
            f"Invalid state_dict: {name}.load_state_dict needs the dict written by {name}.state_dict() "
            f"(with 'state' and 'param_groups'), got {type(state_dict).__name__}"
            + (f" with keys {sorted(map(str, state_dict))}" if isinstance(state_dict, dict) else "")
        )
    for key in top:
        if key not in state_dict:
            raise ValueError(f"Invalid state_dict: no {key!r} entry (not saved by {name}.state_dict())")
    saved = state_dict["param_groups"]
    if len(saved) != len(opt.param_groups):
        raise ValueError(
            f"Invalid state_dict: {len(saved)} param groups, where this {name} has {len(opt.param_groups)}"
        )
    knobs = tuple(knobs)
    params: dict[Any, Tensor] = {}
    for i, (group, sg) in enumerate(zip(opt.param_groups, saved, strict=True)):
        if len(sg["params"]) != len(group["params"]):
            raise ValueError(
                f"Invalid state_dict: param group {i} holds {len(sg['params'])} parameters, where this "
                f"{name}'s holds {len(group['params'])}"
            )
        for key in knobs:
            if key not in sg:
                raise ValueError(
                    f"Invalid state_dict: param group {i} has no {key!r} "
                    f"(saved by another optimizer than {name})"
                )
        params.update(zip(sg["params"], group["params"], strict=True))
    for pid, st in state_dict["state"].items():
        p = params.get(pid)
        if p is None:
            raise ValueError(f"Invalid state_dict: state for parameter {pid!r}, which is in no param group")
        for key, value in st.items():
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape != p.shape:
                raise ValueError(
                    f"Invalid state_dict: {key!r} of parameter {pid} has shape {tuple(value.shape)}, the "
                    f"parameter {tuple(p.shape)} (saved for other parameters)"
                )
    if required is not None:
        for pid, p in params.items():
            st = state_dict["state"].get(pid)
            for key in required(p, st):
                if st is None or key not in st:
                    raise ValueError(
                        f"Invalid state_dict: parameter {pid} (shape {tuple(p.shape)}) has no {key!r} "
                        f"(not saved by {name}.state_dict())"
                    )


def build_base(wrapper: Optimizer, base: type[Optimizer], base_kwargs: dict[str, Any]) -> Optimizer:
    """``base(wrapper.param_groups, **base_kwargs)``: the base optimizer of a wrapper, over the very same
    group dicts (its ``add_param_group`` fills its defaults into them, so every knob lives in one place).

    Its knobs are validated first with :func:`check_base_knobs` (torch validates them in its constructors
    only, and lets NaN pass); then the wrapper's ``defaults`` take the base's too, where ``OneCycleLR`` and
    ``CyclicLR(cycle_momentum=True)`` look for ``momentum`` or ``betas``.
    """
    own = tuple(wrapper._knobs)  # type: ignore[attr-defined]
    for group in wrapper.param_groups:
        check_base_knobs({**base_kwargs, **group}, own)
    built = base(wrapper.param_groups, **base_kwargs)
    wrapper.defaults = {**built.defaults, **wrapper.defaults}
    return built


def add_shared_group(
    wrapper: Optimizer,
    base: Optimizer,
    param_group: dict[str, Any],
    add: Callable[[dict[str, Any]], None],
    init: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Add a param group to a wrapper (through ``add``, its parent's ``add_param_group``) and to its base
    optimizer, the same dict, then ``init`` it. Every knob is validated first; if the base optimizer (or
    ``init``) refuses the group, neither keeps it."""
    if isinstance(param_group, dict):
        check_base_knobs({**wrapper.defaults, **param_group}, wrapper._knobs)  # type: ignore[attr-defined]
    add(param_group)
    group = wrapper.param_groups[-1]
    try:
        base.add_param_group(group)
        if init is not None:
            init(group)
    except BaseException:
        wrapper.param_groups.pop()
        if base.param_groups and base.param_groups[-1] is group:
            base.param_groups.pop()
        for p in group["params"]:
            wrapper.state.pop(p, None)
        raise


def step_base(wrapper: Optimizer, base: Optimizer, sparse: Sequence[tuple[int, int, Tensor]]) -> None:
    """``base.step()``; if it fails while ``sparse`` names parameters (param group, index, parameter) whose
    gradient was sparse, say so: which wrapper, which base optimizer, which parameter."""
    try:
        base.step()
    except RuntimeError as e:
        if not sparse:
            raise
        gi, i, p = sparse[0]
        raise RuntimeError(
            f"{type(wrapper).__name__}: its base optimizer {type(base).__name__} failed on param group {gi}, "
            f"parameter {i} (shape {tuple(p.shape)}), whose gradient is sparse; use a base optimizer that "
            f"takes the gradients it is given ({e})"
        ) from e


def sparse_grads(param_groups: Sequence[dict[str, Any]]) -> list[tuple[int, int, Tensor]]:
    """(param group, index, parameter) of every parameter whose gradient is sparse."""
    return [
        (gi, i, p)
        for gi, group in enumerate(param_groups)
        for i, p in enumerate(group["params"])
        if p.grad is not None and p.grad.layout != torch.strided
    ]


def check_steps_without_closure(base: type[Optimizer], name: str) -> None:
    """Raise ``ValueError`` if ``base.step`` requires a closure (it re-evaluates the loss, as LBFGS does): a
    wrapper calls the base optimizer's ``step()`` once, with the gradients it prepared, and no closure."""
    closure = inspect.signature(base.step).parameters.get("closure")
    if closure is not None and closure.default is inspect.Parameter.empty:
        raise ValueError(
            f"Invalid {name}: {base.__name__} (its step() requires a closure that re-evaluates the loss; a "
            "wrapper hands it one prepared gradient per step)"
        )


#: Knobs of torch.optim optimizers that must be ≥ 0 (all must be finite).
_NON_NEGATIVE_BASE_KNOBS = frozenset(
    {"lr", "momentum", "dampening", "weight_decay", "eps", "lr_decay", "initial_accumulator_value",
     "alpha", "lambd", "t0", "rho", "momentum_decay"}
)  # fmt: skip
_FINITE_BASE_KNOBS = _NON_NEGATIVE_BASE_KNOBS | {"betas", "etas", "step_sizes"}


def check_base_knobs(group: dict[str, Any], own: Iterable[str]) -> None:
    """Validate the knobs of a param group that a wrapper hands to its base optimizer.

    torch.optim validates them in its constructors only, and lets NaN through (``lr=nan`` passes
    ``lr < 0``). Known knobs (``lr``, ``momentum``, ``weight_decay``, ``eps``, ``betas``, …) must be finite,
    the scalar ones ≥ 0, ``betas`` in [0, 1); any other number must not be NaN.
    """
    own = set(own)
    for key, value in group.items():
        if key in own or key == "params":
            continue
        if isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex():
            value = value.item()
        values = value if isinstance(value, (tuple, list)) else (value,)
        if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        for j, v in enumerate(values):
            label = key if values is not value else f"{key}[{j}]"
            if key == "betas":
                check(label, v, low=0.0, high=1.0, high_open=True)
            elif key in _FINITE_BASE_KNOBS:
                check(label, v, low=0.0 if key in _NON_NEGATIVE_BASE_KNOBS else None)
            elif math.isnan(v):
                raise ValueError(f"Invalid {label}: {v!r} (must be a real number, not NaN)")


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


class SeededOptimizer(CopyableOptimizer):
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
    ``copy.deepcopy`` and ``pickle`` give the draw ahead back first, so a copy draws the same numbers.

    ``load_state_dict`` refuses (``ValueError``, nothing loaded) a state without generators, or whose param
    groups lack one of this optimizer's knobs (``defaults`` at construction), or whose per-parameter state
    misses what :meth:`_required_state` names or is shaped for other parameters.
    """

    _transient = ("_prefetch", "_scratch")

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any], seed: int | None = None) -> None:
        if seed is not None:
            check("seed", seed, low=0, integer=True)
        self._seed = draw_seed() if seed is None else int(seed)
        self._generators: dict[str, torch.Generator] = {}
        self._knobs = tuple(defaults)
        super().__init__(params, defaults)

    def _prepare_copy(self) -> None:
        self._give_back_prefetch()

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate the knobs of a param group, its defaults filled in (subclasses)."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a param group: its knobs (the defaults filled in) are validated before anything is added."""
        if isinstance(param_group, dict):
            self._check_group({**self.defaults, **param_group})
        super().add_param_group(param_group)

    def _required_state(self, p: Tensor, saved: dict[str, Any] | None) -> Iterable[str]:
        """Keys that the saved state of parameter ``p`` must hold (subclasses)."""
        return ()

    def _check_loadable(self, state_dict: Any) -> None:
        """:func:`check_state_dict` with this optimizer's knobs, generators and required state."""
        check_state_dict(self, state_dict, knobs=self._knobs, top=("rng",), required=self._required_state)

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
        draw; complex parameters: N(0, 1) in each real component, :func:`standard_normal_`) and stay valid
        until the next call. On the CPU the next call's numbers are drawn ahead (see
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
            out = [standard_normal_(self.scratch(p, label), self._generator(p.device)) for p in params]
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
                    standard_normal_(b, gen)

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
        """Load the state written by :meth:`state_dict`, generators included (checked first: class doc)."""
        self._check_loadable(state_dict)
        self._give_back_prefetch()
        state_dict = dict(state_dict)
        rng = state_dict.pop("rng", None)
        super().load_state_dict(state_dict)
        if rng is not None:
            self._seed = int(rng["seed"])
            self._generators = {}
            for key, gen_state in rng["states"].items():
                self._generator(key).set_state(gen_state)


def use_foreach(foreach: bool | None, *tensors: Sequence[Tensor]) -> bool:
    """Resolve the ``foreach`` knob for ``tensors`` (parameters, gradients): ``None`` picks the fused
    multi-tensor path; a sparse tensor always takes the single-tensor path (the ``torch._foreach_*``
    kernels take dense tensors only)."""
    if any(t.layout != torch.strided for ts in tensors for t in ts):
        return False
    return True if foreach is None else bool(foreach)
