"""Many independent networks of one architecture trained as one batched model.

Choromanska et al. §5 train up to 1000 one-hidden-layer networks per width n1 from independent random
starts, and Sagun et al. §3.1.3 train many students per size; each network is small, so training them one
at a time spends most of its time in per-call overhead. :class:`Ensemble` stacks the parameters θ^(k) of E
members along a new leading axis, ``Θ[k] = θ^(k)`` (``torch.func.stack_module_state`` layout), and
evaluates every member in one call, ``f(Θ, x)[k] = f(θ^(k), x)``, by ``torch.vmap`` over
``torch.func.functional_call``. The summed loss ``Σ_k L_k(θ^(k))`` has gradient ``∂/∂θ^(k) = ∇L_k(θ^(k))``
(member k's parameters appear in no other term), so one backward pass gives every member its own gradient
(:class:`deeplandscape.optim.EnsembleSGD` applies torch.optim.SGD's update to each member independently,
and :func:`deeplandscape.optim.train_ensemble` is the training loop).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_member_inputs(models: Sequence[nn.Module]) -> None:
    if isinstance(models, nn.Module) or not isinstance(models, Sequence):
        raise ValueError(f"models must be a non-empty sequence of nn.Module, got {type(models).__name__}")
    if len(models) == 0:
        raise ValueError("models must be a non-empty sequence of nn.Module, got an empty sequence")
    first = models[0]
    if not isinstance(first, nn.Module):
        raise ValueError(f"models[0] must be an nn.Module, got {type(first).__name__}")
    ref = {n: (t.shape, t.dtype, t.device) for n, t in first.state_dict(keep_vars=True).items()}
    ref_grad = {n: p.requires_grad for n, p in first.named_parameters()}
    for k, m in enumerate(models[1:], start=1):
        if not isinstance(m, nn.Module):
            raise ValueError(f"models[{k}] must be an nn.Module, got {type(m).__name__}")
        if type(m) is not type(first):
            raise ValueError(
                f"models[{k}] is a {type(m).__name__} but models[0] is a {type(first).__name__}; "
                "all members must share one architecture"
            )
        got = {n: (t.shape, t.dtype, t.device) for n, t in m.state_dict(keep_vars=True).items()}
        if got != ref:
            diff = sorted(set(got.items()) ^ set(ref.items()))[:3]
            raise ValueError(
                f"models[{k}] has parameters/buffers differing from models[0] (name, shape, dtype, device); "
                f"first differences: {diff}; all members must share one architecture"
            )
        if {n: p.requires_grad for n, p in m.named_parameters()} != ref_grad:
            raise ValueError(f"models[{k}] has requires_grad flags differing from models[0]")


_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity)


def _mlp_layers(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """The chain of (name, layer) of a plain MLP, or ``None`` when ``model`` is not one.

    A plain MLP is an ``nn.Sequential`` (nested allowed) of ``Flatten(1, -1)``, ``Linear`` and elementwise
    activations, or one of the zoo's MLPs whose ``forward`` is ``self.net(x)`` with such a ``net``.
    """
    from .choromanska import ChoromanskaNet
    from .teacher import SagunMLP

    if type(model) in (ChoromanskaNet, SagunMLP):
        return [(f"net.{n}", m) for n, m in (_mlp_layers(model.net) or [])] or None
    if type(model) is not nn.Sequential:
        return None
    chain: list[tuple[str, nn.Module]] = []
    for name, layer in model.named_children():
        if type(layer) is nn.Sequential:
            inner = _mlp_layers(layer)
            if inner is None:
                return None
            chain += [(f"{name}.{n}", m) for n, m in inner]
        elif (type(layer) is nn.Flatten and (layer.start_dim, layer.end_dim) == (1, -1)) or type(layer) in (
            nn.Linear,
            *_ELEMENTWISE,
        ):
            chain.append((name, layer))
        else:
            return None
    return chain


class Ensemble(nn.Module):
    """E independent networks of one architecture, evaluated as one batched model.

    Stacking (``torch.func.stack_module_state`` layout): every parameter and buffer ``t`` of the members is
    held once as ``T`` with ``T[k] = t^(k)``, shape ``(E, *t.shape)``; these stacked tensors are the
    ensemble's own parameters/buffers, so ``.to()``, ``.double()`` and ``state_dict()`` work as usual.

    ``forward(x)`` returns ``y`` with ``y[k] = f(θ^(k), x)`` for a shared input ``x`` of shape ``(N, ...)``;
    with ``per_member=True`` the input has shape ``(E, N, ...)`` and ``y[k] = f(θ^(k), x[k])``. Buffers such
    as batch-norm running statistics are updated per member. ``randomness`` is passed to ``torch.vmap``
    (``"different"``: independent dropout masks per member).

    Plain MLPs (``Flatten``/``Linear``/activation chains, e.g. the Choromanska and Sagun networks) take a
    direct route when ``batched_mlp`` (the default): a ``Linear`` on a shared input is one matrix product
    with all members' weights side by side, ``[x W^(1)ᵀ, …, x W^(E)ᵀ] = x [W^(1); …; W^(E)]ᵀ``, and on
    per-member inputs a batched product ``h^(k) W^(k)ᵀ + b^(k)`` (``torch.baddbmm``); other modules go
    through ``vmap``. Both give the same numbers up to rounding.

    Build from a list of modules, or with :meth:`from_factory` / :meth:`from_name`, which build member k
    from seed ``seeds[k]`` exactly as the single network would be built with that seed.
    """

    def __init__(
        self, models: Sequence[nn.Module], *, randomness: str = "different", batched_mlp: bool = True
    ):
        super().__init__()
        _check_member_inputs(models)
        if randomness not in ("error", "different", "same"):
            raise ValueError(f"randomness must be 'error', 'different' or 'same', got {randomness!r}")
        self.randomness = randomness
        self.size = len(models)
        first = models[0]
        # A parameter-free copy of the architecture: functional_call swaps the stacked slices into it.
        base = copy.deepcopy(first).to("meta")
        object.__setattr__(self, "_base", base)  # not a submodule: its (meta) tensors are not ours
        self._mlp = _mlp_layers(base) if batched_mlp else None
        self._param_names = [n for n, _ in first.named_parameters()]
        self._buffer_names = [n for n, _ in first.named_buffers()]
        for i, name in enumerate(self._param_names):
            stacked = torch.stack([m.get_parameter(name).detach() for m in models])
            requires_grad = first.get_parameter(name).requires_grad
            self.register_parameter(f"param_{i}", nn.Parameter(stacked, requires_grad=requires_grad))
        for i, name in enumerate(self._buffer_names):
            self.register_buffer(f"buffer_{i}", torch.stack([m.get_buffer(name).detach() for m in models]))
        self.train(first.training)

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_factory(cls, factory: Callable[[int], nn.Module], seeds: int | Sequence[int], **kw) -> Ensemble:
        """Member k is ``factory(seeds[k])``; an int ``seeds=E`` means seeds ``0, 1, …, E−1``."""
        if isinstance(seeds, bool):
            raise ValueError(f"seeds must be a positive int or a non-empty sequence of ints, got {seeds!r}")
        if isinstance(seeds, int):
            if seeds < 1:
                raise ValueError(f"seeds must be a positive int (the member count), got {seeds!r}")
            seeds = range(seeds)
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds must be a positive int or a non-empty sequence of ints, got an empty one")
        return cls([factory(s) for s in seeds], **kw)

    @classmethod
    def from_name(
        cls,
        name: str,
        count: int,
        *,
        seed: int = 0,
        randomness: str = "different",
        batched_mlp: bool = True,
        **net_kw,
    ) -> Ensemble:
        """``count`` networks of the zoo: member k is ``nets.get(name, seed=seed + k, **net_kw)``."""
        from .registry import get

        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        return cls.from_factory(
            lambda s: get(name, seed=s, **net_kw),
            range(seed, seed + count),
            randomness=randomness,
            batched_mlp=batched_mlp,
        )

    # -- views --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.size

    def stacked_params(self) -> dict[str, torch.Tensor]:
        """The stacked parameters by the members' names: ``{name: Θ}`` with ``Θ[k]`` member k's tensor."""
        return {n: getattr(self, f"param_{i}") for i, n in enumerate(self._param_names)}

    def stacked_buffers(self) -> dict[str, torch.Tensor]:
        """The stacked buffers by the members' names (e.g. batch-norm running statistics)."""
        return {n: getattr(self, f"buffer_{i}") for i, n in enumerate(self._buffer_names)}

    def train(self, mode: bool = True) -> Ensemble:
        """Set training mode of the ensemble and of the shared architecture (dropout, batch norm)."""
        super().train(mode)
        self._base.train(mode)
        return self

    def member(self, k: int) -> nn.Module:
        """Member k as an ordinary, independent ``nn.Module`` (copies of its parameters and buffers)."""
        if isinstance(k, bool) or not isinstance(k, int) or not -self.size <= k < self.size:
            raise ValueError(f"k must be an int in [{-self.size}, {self.size - 1}], got {k!r}")
        ref = next(iter([*self.parameters(), *self.buffers()]), None)
        device = ref.device if ref is not None else torch.device("cpu")
        m = copy.deepcopy(self._base).to_empty(device=device)
        state = {
            n: t[k].detach().clone() for n, t in {**self.stacked_params(), **self.stacked_buffers()}.items()
        }
        m.load_state_dict(state, assign=True)
        for n, p in m.named_parameters():
            p.requires_grad_(self.stacked_params()[n].requires_grad)
        return m.train(self.training)

    def unstack(self) -> list[nn.Module]:
        """All members as ordinary ``nn.Module`` s (the inverse of stacking)."""
        return [self.member(k) for k in range(self.size)]

    # -- evaluation ---------------------------------------------------------------------------------------
    def _call_one(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self._base, (params, buffers), (x,))

    def forward(self, x: torch.Tensor, *, per_member: bool = False) -> torch.Tensor:
        """``y[k] = f(θ^(k), x)`` (shared ``x`` of shape (N, ...)) or ``f(θ^(k), x[k])`` (``per_member``)."""
        if per_member and (x.dim() < 1 or x.shape[0] != self.size):
            raise ValueError(
                f"per-member input x must have leading dimension E={self.size}, got shape {tuple(x.shape)}"
            )
        if self._mlp is not None:
            return self._forward_mlp(x, per_member)
        call = torch.vmap(
            self._call_one, in_dims=(0, 0, 0 if per_member else None), randomness=self.randomness
        )
        return call(self.stacked_params(), self.stacked_buffers(), x)

    def _forward_mlp(self, x: torch.Tensor, per_member: bool) -> torch.Tensor:
        params = self.stacked_params()
        h, shared = x, not per_member
        for name, layer in self._mlp:
            if isinstance(layer, nn.Flatten):
                h = h.flatten(1 if shared else 2)
            elif isinstance(layer, nn.Linear):
                W, b = params[f"{name}.weight"], params.get(f"{name}.bias")
                E, out, inp = W.shape
                if shared:  # one product with the members' weights stacked: (N, in) @ (in, E·out)
                    flat = (
                        h @ W.reshape(E * out, inp).T
                        if b is None
                        else torch.addmm(b.reshape(-1), h, W.reshape(E * out, inp).T)
                    )
                    h, shared = flat.view(h.shape[0], E, out).transpose(0, 1), False
                else:
                    h = (
                        h @ W.transpose(1, 2)
                        if b is None
                        else torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
                    )
            else:
                h = layer(h)
        return h.expand(self.size, *h.shape) if shared else h

    def losses(
        self, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn = F.cross_entropy, *, per_member: bool = False
    ) -> torch.Tensor:
        """Per-member losses ``L_k = loss_fn(f(θ^(k), x_k), y_k)``, shape (E,).

        ``per_member`` applies to both ``x`` and ``y`` (each with leading dimension E); otherwise both are
        shared by all members. ``loss_fn`` maps one member's (output, target) to a scalar.
        """
        if per_member and (y.dim() < 1 or y.shape[0] != self.size):
            raise ValueError(
                f"per-member target y must have leading dimension E={self.size}, got shape {tuple(y.shape)}"
            )
        out = self(x, per_member=per_member)
        if loss_fn is F.cross_entropy and out.dim() == 3 and y.dim() == (2 if per_member else 1):
            # The same mean cross entropy per member, with the classes on dim 1 of (E, C, N): PyTorch's CPU
            # log-softmax over a short last dimension is several times slower than over a strided one.
            target = y if per_member else y.expand(self.size, -1)
            return F.cross_entropy(out.transpose(1, 2), target, reduction="none").mean(1)
        return torch.vmap(loss_fn, in_dims=(0, 0 if per_member else None))(out, y)


@torch.no_grad()
def evaluate_ensemble(
    ensemble: Ensemble,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn = F.cross_entropy,
    *,
    batch_size: int = 4096,
) -> torch.Tensor:
    """Per-member mean loss over the whole set, ``L_k = (1/N) Σ_chunks n_c · loss_fn(f(θ^(k), x_c), y_c)``.

    ``loss_fn`` must return the mean over its batch (the default cross entropy does); chunks of
    ``batch_size`` samples bound the memory to E × batch_size outputs.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    n = x.shape[0]
    if n == 0 or y.shape[0] != n:
        raise ValueError(f"x and y must hold the same positive number of samples, got {n} and {y.shape[0]}")
    total = None
    for start in range(0, n, batch_size):
        xs, ys = x[start : start + batch_size], y[start : start + batch_size]
        part = ensemble.losses(xs, ys, loss_fn) * xs.shape[0]
        total = part if total is None else total + part
    return total / n
