"""Permutation alignment of networks, their overlap, and averaged models (Thesis §5.0.1, Fig. 5.1).

A network's hidden units can be permuted without changing its function: for consecutive layers
y = W₂ σ(W₁ x + b₁) + b₂ and any permutation matrix P, (W₁, b₁, W₂) → (P W₁, P b₁, W₂ Pᵀ) gives the same
map (σ acting unit-wise; a BatchNorm on the layer is permuted with it; for a convolution P permutes output
channels, and a following Linear layer after ``nn.Flatten`` has its input columns permuted in blocks of
the spatial size). Two independently trained networks x_a, x_b are compared through their overlap

    q_ab = ⟨x_a, x_b⟩ / (|x_a| |x_b|)        (Thesis Fig. 5.1),

before and after aligning x_b to x_a. Alignment is layer by layer from the input (the Thesis' "greedy
layer-wise matching"): at hidden layer ℓ, with the inputs of x_b's layer already permuted by the previous
layer's match, the unit features u_i = (incoming weights, bias, BatchNorm scale and shift) are matched by
the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) maximizing Σ_i ⟨u_i^a, u_{π(i)}^b⟩.
If x_b is a permuted copy of x_a with distinct units, Σ_i ⟨u_i^a, u_{π(i)}^b⟩ ≤ Σ_i |u_i^a|² with equality
exactly at the true permutation, so it is recovered exactly.

Supported architectures: an ``nn.Sequential`` (nested ``nn.Sequential`` blocks are flattened in order) of
``nn.Linear``, ``nn.Conv1d``/``nn.Conv2d`` (``groups=1``), ``nn.BatchNorm1d``/``nn.BatchNorm2d`` on the
channels of the preceding weight layer, ``nn.Flatten``, and unit-wise parameter-free layers (activations,
dropout, pooling, ``nn.Identity``). The last weight layer's outputs are not permuted. Anything else raises a
``ValueError`` naming the module.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d)
_UNITWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.AlphaDropout,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
)
SUPPORTED = (
    "nn.Sequential of nn.Linear, nn.Conv1d/nn.Conv2d (groups=1), nn.BatchNorm1d/2d, nn.Flatten and "
    "parameter-free unit-wise layers (activations, dropout, pooling, nn.Identity)"
)


@dataclass(frozen=True)
class Alignment:
    """``model`` (a new module) is the input network with its hidden units permuted to match ``reference``.

    ``permutations[ℓ][i]`` is the unit of the original network placed at position i of hidden layer ℓ;
    ``overlap_before``/``overlap_after``: q = ⟨x_ref, x⟩/(|x_ref||x|) over all parameters; ``distance_before``
    /``distance_after``: ‖x_ref − x‖; ``matched_similarity[ℓ]``: Σ_i ⟨u_i^ref, u_{π(i)}⟩ at layer ℓ.
    """

    model: nn.Module
    permutations: tuple[Tensor, ...]
    overlap_before: float
    overlap_after: float
    distance_before: float
    distance_after: float
    matched_similarity: tuple[float, ...]


@dataclass(frozen=True)
class Overlap:
    """Overlap matrices q_ab = ⟨x_a, x_b⟩/(|x_a||x_b|) of k networks (Thesis Fig. 5.1).

    ``before``: as trained; ``after``: after aligning every network to the first (``None`` if not
    requested); both k × k, symmetric with unit diagonal.
    """

    before: np.ndarray
    after: np.ndarray | None


@dataclass(frozen=True)
class _Layer:
    weight: nn.Module
    norms: tuple[nn.Module, ...]
    flatten_after: bool  # an nn.Flatten lies between this layer and the next weight layer


def _modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"Invalid model: alignment supports {SUPPORTED}; got {type(model).__name__}")
    out = []
    for name, child in model._modules.items():  # every position, a module used twice included
        if isinstance(child, nn.Sequential):
            out += [(f"{name}.{n}", m) for n, m in _modules(child)]
        elif child is not None:
            out.append((name, child))
    return out


def _check_unshared(modules: list[tuple[str, nn.Module]]) -> None:
    """A module applied twice, or a parameter shared by two modules (tied weights), would be permuted in two
    incompatible ways: the permuted network would compute another function."""
    seen: dict[int, str] = {}
    for name, module in modules:
        owner = seen.setdefault(id(module), name)
        if owner != name:
            raise ValueError(f"Invalid model: module {name} is module {owner} applied again (shared weights)")
        for pname, p in module.named_parameters(remove_duplicate=False):
            owner = seen.setdefault(id(p), f"{name}.{pname}")
            if owner != f"{name}.{pname}":
                raise ValueError(f"Invalid model: parameter {name}.{pname} is tied to {owner}")


def _layers(model: nn.Module) -> list[_Layer]:
    modules = _modules(model)
    _check_unshared(modules)
    layers: list[dict] = []
    for name, module in modules:
        if isinstance(module, _WEIGHT_LAYERS):
            if isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.groups != 1:
                raise ValueError(
                    f"Invalid model: module {name} is a grouped convolution (groups={module.groups})"
                )
            layers.append({"weight": module, "norms": [], "flatten": False})
        elif isinstance(module, _NORM_LAYERS):
            if not layers:
                raise ValueError(f"Invalid model: BatchNorm module {name} precedes every weight layer")
            layers[-1]["norms"].append(module)
        elif isinstance(module, nn.Flatten):
            if layers:
                layers[-1]["flatten"] = True
        elif isinstance(module, _UNITWISE):
            if isinstance(module, nn.PReLU) and module.num_parameters != 1:
                raise ValueError(f"Invalid model: module {name} is a per-channel PReLU")
        else:
            raise ValueError(
                f"Invalid model: alignment supports {SUPPORTED}; module {name} is a {type(module).__name__}"
            )
    if len(layers) < 2:
        raise ValueError(f"Invalid model: {len(layers)} weight layer(s); alignment needs at least 2")
    return [_Layer(d["weight"], tuple(d["norms"]), d["flatten"]) for d in layers]


def _check_same_architecture(models: Sequence[nn.Module]) -> None:
    ref = {k: (tuple(v.shape), v.dtype) for k, v in models[0].state_dict().items()}
    for i, m in enumerate(models[1:], start=1):
        if {k: (tuple(v.shape), v.dtype) for k, v in m.state_dict().items()} != ref:
            raise ValueError(
                f"Invalid models: model {i} differs from model 0 in its parameter/buffer names or shapes"
            )
        if [type(a) for a in models[0].modules()] != [type(b) for b in m.modules()]:
            raise ValueError(f"Invalid models: model {i} differs from model 0 in its module types")


def _unit_features(layer: _Layer) -> Tensor:
    w = layer.weight.weight.detach()
    parts = [w.reshape(w.shape[0], -1)]
    if layer.weight.bias is not None:
        parts.append(layer.weight.bias.detach()[:, None])
    for bn in layer.norms:
        if bn.weight is not None:
            parts += [bn.weight.detach()[:, None], bn.bias.detach()[:, None]]
    return torch.cat(parts, dim=1).to(torch.float64)


@torch.no_grad()
def _permute_layer(layer: _Layer, following: nn.Module, perm: Tensor) -> None:
    """Permute the output units of ``layer`` (and its BatchNorms) and the matching inputs of ``following``."""
    layer.weight.weight.copy_(layer.weight.weight[perm])
    if layer.weight.bias is not None:
        layer.weight.bias.copy_(layer.weight.bias[perm])
    for bn in layer.norms:
        for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
            if t is not None:
                t.copy_(t[perm])
    w = following.weight
    channels = perm.numel()
    if isinstance(following, nn.Linear) and w.shape[1] != channels:
        if not layer.flatten_after or w.shape[1] % channels:
            raise ValueError(
                f"Invalid model: a Linear layer with {w.shape[1]} inputs follows a layer with {channels} "
                "channels (needs nn.Flatten and a multiple of the channel count)"
            )
        blocks = w.reshape(w.shape[0], channels, -1)
        w.copy_(blocks[:, perm].reshape(w.shape))
    else:
        w.copy_(w[:, perm])


def permute_hidden_units(model: nn.Module, permutations: Sequence[Tensor]) -> nn.Module:
    """A new network equal to ``model`` with hidden layer ℓ's units reordered by ``permutations[ℓ]``.

    Unit i of the result is unit ``permutations[ℓ][i]`` of ``model``; the function computed is unchanged
    (Thesis §5.0.1: permutation symmetry). One permutation per hidden weight layer (all but the last).
    """
    layers = _layers(model)
    if len(permutations) != len(layers) - 1:
        raise ValueError(
            f"Invalid permutations: {len(permutations)} given; the model has {len(layers) - 1} hidden layers"
        )
    out = copy.deepcopy(model)
    out_layers = _layers(out)
    for ell, perm in enumerate(permutations):
        units = out_layers[ell].weight.weight.shape[0]
        perm = torch.as_tensor(perm, dtype=torch.long)
        if perm.shape != (units,) or not torch.equal(perm.sort().values, torch.arange(units)):
            raise ValueError(f"Invalid permutations[{ell}]: not a permutation of range({units})")
        _permute_layer(
            out_layers[ell], out_layers[ell + 1].weight, perm.to(out_layers[ell].weight.weight.device)
        )
    return out


def _flat(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1).to(torch.float64) for p in model.parameters()])


def _overlap(a: Tensor, b: Tensor) -> float:
    denominator = float(a.norm() * b.norm())
    if denominator == 0:
        raise ValueError("Invalid models: a network has all-zero parameters; the overlap is undefined")
    return float(a @ b) / denominator


def align(reference: nn.Module, model: nn.Module) -> Alignment:
    """Permute the hidden units of ``model`` to match ``reference`` layer by layer (Thesis §5.0.1).

    Both networks must have the same architecture (see the module docstring for what is supported).
    Hungarian matching on unit features maximizes Σ_i ⟨u_i^ref, u_{π(i)}⟩ per layer. Neither input is
    modified; the aligned network is a new module.
    """
    _check_same_architecture([reference, model])
    ref_layers = _layers(reference)
    out = copy.deepcopy(model)
    out_layers = _layers(out)
    perms, similarities = [], []
    for ell in range(len(ref_layers) - 1):
        sim = (_unit_features(ref_layers[ell]) @ _unit_features(out_layers[ell]).T).cpu().numpy()
        rows, cols = linear_sum_assignment(sim, maximize=True)
        perm = torch.as_tensor(cols[np.argsort(rows)], dtype=torch.long)
        similarities.append(float(sim[np.arange(len(perm)), perm.numpy()].sum()))
        _permute_layer(
            out_layers[ell], out_layers[ell + 1].weight, perm.to(out_layers[ell].weight.weight.device)
        )
        perms.append(perm)
    x_ref, x_before, x_after = _flat(reference), _flat(model), _flat(out)
    return Alignment(
        model=out,
        permutations=tuple(perms),
        overlap_before=_overlap(x_ref, x_before),
        overlap_after=_overlap(x_ref, x_after),
        distance_before=float((x_ref - x_before).norm()),
        distance_after=float((x_ref - x_after).norm()),
        matched_similarity=tuple(similarities),
    )


def _check_models(models: Sequence[nn.Module]) -> list[nn.Module]:
    models = list(models)
    if len(models) < 1 or not all(isinstance(m, nn.Module) for m in models):
        raise ValueError(
            f"Invalid models: expected a non-empty sequence of nn.Module, got {len(models)} item(s)"
        )
    _check_same_architecture(models)
    return models


def overlap_matrix(models: Sequence[nn.Module], *, aligned: bool = True) -> Overlap:
    """The k × k overlap matrix q_ab = ⟨x_a, x_b⟩/(|x_a||x_b|) of k networks (Thesis Fig. 5.1).

    ``before`` uses the networks as given; with ``aligned=True``, ``after`` first aligns every network to
    the first one (:func:`align`), as in the Thesis. The vectors x are all parameters, flattened.
    """
    models = _check_models(models)

    def matrix(ms: list[nn.Module]) -> np.ndarray:
        x = torch.stack([_flat(m) for m in ms])
        norms = x.norm(dim=1)
        if (norms == 0).any():
            raise ValueError("Invalid models: a network has all-zero parameters; the overlap is undefined")
        q = (x @ x.T) / (norms[:, None] * norms[None, :])
        q = (q + q.T) / 2
        q.fill_diagonal_(1.0)
        return q.cpu().numpy()

    after = None
    if aligned:
        if len(models) > 1:
            _layers(models[0])  # a clear error for unsupported architectures before any work
        after = matrix([models[0]] + [align(models[0], m).model for m in models[1:]])
    return Overlap(matrix(models), after)


@torch.no_grad()
def average_models(models: Sequence[nn.Module], *, aligned: bool = False) -> nn.Module:
    """The weight average x̄ = (1/k) Σ_a x_a of k networks as a new module (Thesis §5.0.1).

    ``aligned=False`` is the naive "one-shot" average; ``aligned=True`` first aligns every network to the
    first one (:func:`align`). Floating-point buffers (BatchNorm running statistics) are averaged the same
    way; integer buffers (``num_batches_tracked``) are the first network's.
    """
    models = _check_models(models)
    if aligned and len(models) > 1:
        models = [models[0]] + [align(models[0], m).model for m in models[1:]]
    out = copy.deepcopy(models[0])
    states = [m.state_dict() for m in models]
    for key, value in out.state_dict().items():
        if value.is_floating_point():
            value.copy_(torch.stack([s[key].to(value) for s in states]).mean(dim=0))
    return out
