"""Exact per-sample gradients of layered models from one batched backward pass (no ``vmap``).

For a network built only of layers that treat each sample separately, the gradient of the per-sample loss
``f_k`` with respect to a layer's weights is a product of two per-sample factors: the layer's input
``a_k`` and the back-propagated gradient ``δ_k = ∂f_k/∂z_k`` of its output ``z_k``. For a linear layer
``z = W a + c``:

    ∇_W f_k = δ_k a_kᵀ,    ∇_c f_k = δ_k,

summed over positions for a convolution (``a_k`` unfolded into patches) and over the leading dimensions
of a linear layer applied to a sequence; for an eval-mode BatchNorm ``z = γ x̂ + β`` with
``x̂ = (a − μ_run)/√(σ²_run + ε)``: ``∇_γ f_k = Σ_pos δ_k ⊙ x̂_k``, ``∇_β f_k = Σ_pos δ_k``. Because no
layer mixes samples, back-propagating ``Σ_k f_k`` through the batch gives every ``δ_k`` at once; the output
gradient ``∂f_k/∂o_k`` is taken with ``vmap(grad(ℓ))`` on the model's ``(N, C)`` output, where
``ℓ(o, y) = loss_fn(o[None], y[None])`` is the loss of a batch of one, so any loss (any reduction, class
weights) gives exactly the ``g_k`` of the ``vmap`` path (for an unweighted ``nn.CrossEntropyLoss``, from
its ``reduction="none"`` terms instead, the same numbers without ``vmap``'s overhead).

Handled: an ``nn.Sequential`` (nested ones too) of ``nn.Linear``, ``nn.Conv2d`` (``groups=1``, zero
padding), ``nn.BatchNorm1d/2d/3d`` in eval mode with running statistics, element-wise activations,
pooling, ``nn.Flatten`` and, in eval mode, Dropout, each module used once, with no hooks. The layers are
run by a small interpreter on the snapshot parameters (the parameter-free layers are called as they are;
nothing is hooked or written to). For anything else :func:`plan` returns ``None`` and the caller uses the
``vmap`` path.

The interpreter keeps every layer output ``z`` it differentiates against, and every input ``a`` it
multiplies by, exactly as the forward pass produced them: a layer that would overwrite its input
(``nn.ReLU(inplace=True)``, the torchvision idiom) is given a copy, and the version counters of all recorded
tensors are checked before the backward pass (a tensor written in place since it was recorded sends the
batch to the ``vmap`` path instead of giving ``δ`` of the wrong tensor).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad_and_value, vmap

from deeplandscape.analysis._functional import FunctionalLoss, all_finite

# Parameter-free layers that act on each sample separately (element-wise, or over non-batch dimensions).
_SAMPLEWISE = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softsign, nn.Tanhshrink,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)  # fmt: skip
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _has_hooks(module: nn.Module) -> bool:
    return any(
        getattr(module, attr, None)
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    )


def _global_hooks() -> bool:
    from torch.nn.modules import module as module_mod

    return any(
        getattr(module_mod, name, None)
        for name in (
            "_global_forward_hooks",
            "_global_forward_pre_hooks",
            "_global_backward_hooks",
            "_global_backward_pre_hooks",
        )
    )


class _Plan:
    """The flat list of ``(prefix, module)`` layers of a supported model, in call order."""

    def __init__(self, layers: list[tuple[str, nn.Module]]) -> None:
        self.layers = layers


def _walk(module: nn.Module, prefix: str, train: bool, seen: set[int], out: list) -> bool:
    if id(module) in seen or _has_hooks(module):
        return False
    seen.add(id(module))
    kind = type(module)
    if kind is nn.Sequential:
        return all(
            _walk(child, f"{prefix}{name}.", train, seen, out) for name, child in module._modules.items()
        )
    if kind is nn.Linear:
        pass
    elif kind is nn.Conv2d:
        if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
            return False
    elif kind in _BATCHNORM:
        if train or module.running_mean is None or module.running_var is None:
            return False
    elif kind is nn.Flatten:
        if module.start_dim < 1:
            return False
    elif kind in _DROPOUT:
        if train:
            return False
    elif kind not in _SAMPLEWISE:
        return False
    if (kind in _SAMPLEWISE or kind in _DROPOUT or kind is nn.Flatten) and (
        module._parameters or module._buffers
    ):
        return False
    out.append((prefix, module))
    return True


def plan(loss: FunctionalLoss) -> _Plan | None:
    """The layers of ``loss.model`` if the layer path applies to it (see module doc), else ``None``."""
    model = loss.model
    if type(model) is not nn.Sequential or loss.output is not None or _global_hooks():
        return None
    layers: list[tuple[str, nn.Module]] = []
    if not _walk(model, "", loss.train, set(), layers):
        return None
    # Every trainable parameter belongs to exactly one supported layer (no parameter shared between layers).
    owned = [f"{prefix}{name}" for prefix, m in layers for name, p in m._parameters.items() if p is not None]
    ids = [id(p) for _, m in layers for p in m._parameters.values() if p is not None]
    if len(set(ids)) != len(ids) or len(set(owned)) != len(owned) or not set(loss.names) <= set(owned):
        return None
    return _Plan(layers)


def _tensor(loss: FunctionalLoss, name: str, trainable: dict[str, Tensor]) -> Tensor | None:
    if name in trainable:
        return trainable[name]
    return loss.fixed.get(name)


def per_sample_chunk(
    loss: FunctionalLoss, plan_: _Plan, inputs: Tensor, targets: Tensor, out: Tensor
) -> tuple[Tensor, bool]:
    """Write ``g_k`` of the samples in ``inputs`` into ``out`` (``(n, d)``); return the losses ``(n,)`` and
    whether every ``g_k`` is finite."""
    offsets, start = {}, 0
    for name, numel in zip(loss.names, loss.numels, strict=True):
        offsets[name] = (start, numel)
        start += numel
    trainable = {name: loss.params[name].detach().requires_grad_(True) for name in loss.names}
    records: list[tuple[str, nn.Module, Tensor, Tensor]] = []
    versions: list[tuple[Tensor, int]] = []
    with torch.enable_grad():
        a = inputs
        for prefix, module in plan_.layers:
            kind = type(module)
            if kind is nn.Linear or kind is nn.Conv2d or kind in _BATCHNORM:
                w = _tensor(loss, prefix + "weight", trainable)
                b = _tensor(loss, prefix + "bias", trainable)
                if kind is nn.Linear:
                    z = F.linear(a, w, b)
                elif kind is nn.Conv2d:
                    if a.dim() != 4:
                        raise _Unsupported
                    # Channels-last runs the convolution and the pooling after it several times faster
                    # on CPU (same values; only the memory layout differs).
                    a = a.contiguous(memory_format=torch.channels_last)
                    z = module._conv_forward(a, w, b).contiguous(memory_format=torch.channels_last)
                else:
                    mean = loss.fixed[prefix + "running_mean"]
                    var = loss.fixed[prefix + "running_var"]
                    if a.dim() < 2:
                        raise _Unsupported
                    z = F.batch_norm(a, mean, var, w, b, False, 0.0, module.eps)
                if any(f"{prefix}{p}" in trainable for p in ("weight", "bias")):
                    records.append((prefix, module, a.detach(), z))
                    versions += [(a, a._version), (z, z._version)]
                a = z
            else:
                if getattr(module, "inplace", False):
                    a = a.clone()  # an in-place layer would overwrite a recorded output z (or input a)
                a = module(a)
                if (
                    isinstance(module, _POOLS)
                    and a.dim() == 4
                    and a.is_contiguous(memory_format=torch.channels_last)
                ):
                    a = _ChannelsLastGrad.apply(a)
        outputs = a

        def sample_loss(o: Tensor, y: Tensor) -> Tensor:
            value = loss.loss_fn(o.unsqueeze(0), y.unsqueeze(0))
            if value.dim() != 0:
                shape = tuple(value.shape)
                raise ValueError(
                    f"Invalid loss_fn: returned shape {shape}, expected a scalar (mean reduction)"
                )
            return value

        delta, values = _output_gradients(loss.loss_fn, sample_loss, outputs.detach(), targets)
        if not records or not all_finite(values):
            return values, True  # no trainable layer, or a non-finite loss that the caller reports
        if any(t._version != version for t, version in versions):
            raise _Unsupported  # a recorded tensor was written in place after it was recorded
        deltas = torch.autograd.grad(outputs, [z for *_, z in records], grad_outputs=delta)
    finite = True
    for (prefix, module, a, _), g in zip(records, deltas, strict=True):
        finite = _write_layer(loss, prefix, module, a, g, offsets, out) and finite
    return values, finite


def _output_gradients(loss_fn, sample_loss, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """``(∂ℓ_k/∂o_k, ℓ_k)`` for every sample, ``ℓ_k = loss_fn(o_k[None], y_k[None])``.

    ``vmap(grad(ℓ))`` in general. For ``nn.CrossEntropyLoss`` without class weights and with class-index
    targets (none equal to ``ignore_index``), the loss of a batch of one is that sample's term of
    ``reduction="none"``, so one batched call and one backward pass give the same numbers.
    """
    if (
        type(loss_fn) is nn.CrossEntropyLoss
        and loss_fn.weight is None
        and loss_fn.reduction in ("mean", "sum")
        and outputs.dim() == 2
        and targets.dim() == 1
        and not targets.is_floating_point()
        and not bool((targets == loss_fn.ignore_index).any())
    ):
        with torch.enable_grad():
            o = outputs.requires_grad_(True)
            values = F.cross_entropy(o, targets, reduction="none", label_smoothing=loss_fn.label_smoothing)
            (delta,) = torch.autograd.grad(values.sum(), o)
        return delta, values.detach()
    return vmap(grad_and_value(sample_loss))(outputs, targets)


class _Unsupported(Exception):
    """Raised inside :func:`per_sample_chunk` for an input the layer path does not handle."""


def _slot(out: Tensor, offsets: dict, name: str) -> Tensor | None:
    if name not in offsets:
        return None
    start, numel = offsets[name]
    return out[:, start : start + numel]


def _finite(slot: Tensor, g: Tensor, a: Tensor, terms: int) -> bool:
    """Whether every entry of ``slot`` (sums of ``terms`` products of entries of ``g`` and ``a``) is finite.

    When the factors are much smaller than ``slot`` (a linear layer's outer products), bounded from them:
    if they are finite and ``2·terms·max|g|·max|a|`` is representable, no entry can overflow. Otherwise,
    or when the bound fails, the entries themselves are checked.
    """
    if 4 * (g.numel() + a.numel()) < slot.numel():
        inf = float("inf")
        bound = (
            2.0 * terms * float(torch.linalg.vector_norm(g, inf)) * float(torch.linalg.vector_norm(a, inf))
        )
        if bound < torch.finfo(slot.dtype).max:
            return True
    return all_finite(slot)


def _write_layer(
    loss: FunctionalLoss, prefix: str, module: nn.Module, a: Tensor, g: Tensor, offsets: dict, out: Tensor
) -> bool:
    """Write the per-sample gradients of one layer's parameters into ``out``; return whether finite."""
    n = out.shape[0]
    w_out = _slot(out, offsets, prefix + "weight")
    b_out = _slot(out, offsets, prefix + "bias")
    kind = type(module)
    finite = True
    if kind is nn.Linear:
        a3 = a.reshape(n, -1, a.shape[-1])
        g3 = g.reshape(n, -1, g.shape[-1])
        if w_out is not None:
            w3 = w_out.view(n, g3.shape[2], a3.shape[2])
            if a3.shape[1] == 1:  # g_W[k] = δ_k a_kᵀ
                torch.mul(g3[:, 0, :, None], a3[:, 0, None, :], out=w3)
            else:  # g_W[k] = Σ_t δ_kt a_ktᵀ
                w3.copy_(torch.bmm(g3.transpose(1, 2), a3))
            finite = _finite(w_out, g3, a3, a3.shape[1])
        if b_out is not None:
            b_out.copy_(g3.sum(dim=1))
    elif kind is nn.Conv2d:  # g_W[k] = Σ_positions δ_k,pos patch_k,posᵀ
        g3 = g.permute(0, 2, 3, 1).reshape(n, -1, g.shape[1])  # (n, L, O), a view when channels-last
        if w_out is not None:
            cols = _patches(a, module, g.shape[2:])
            w_out.view(n, g3.shape[2], cols.shape[1]).copy_(torch.bmm(cols, g3).transpose(1, 2))
            finite = _finite(w_out, g3, a, g3.shape[1])  # max |patch entry| ≤ max |a|
        if b_out is not None:
            b_out.copy_(g3.sum(dim=1))
    else:  # BatchNorm in eval mode: g_γ[k] = Σ_pos δ_k ⊙ x̂_k, g_β[k] = Σ_pos δ_k
        g3 = g.reshape(n, g.shape[1], -1)
        if w_out is not None:
            mean = loss.fixed[prefix + "running_mean"]
            var = loss.fixed[prefix + "running_var"]
            a3 = a.reshape(n, a.shape[1], -1)
            xhat = (a3 - mean[None, :, None]) / torch.sqrt(var[None, :, None] + module.eps)
            w_out.copy_((g3 * xhat).sum(dim=2))
            finite = all_finite(w_out)
        if b_out is not None:
            b_out.copy_(g3.sum(dim=2))
    return finite and (b_out is None or all_finite(b_out))


def _patches(a: Tensor, module: nn.Conv2d, out_hw: torch.Size) -> Tensor:
    """``(n, C·kh·kw, L)``: the patch of ``a`` seen by each of the ``L`` output positions (``F.unfold``),
    gathered from a strided view with one copy."""
    ph, pw = module.padding
    if ph or pw:
        a = F.pad(a, (pw, pw, ph, ph))
    n, c = a.shape[:2]
    kh, kw = module.kernel_size
    dh, dw = module.dilation
    sh, sw = module.stride
    s_n, s_c, s_h, s_w = a.stride()
    view = a.as_strided(
        (n, c, kh, kw, out_hw[0], out_hw[1]),
        (s_n, s_c, dh * s_h, dw * s_w, sh * s_h, sw * s_w),
        a.storage_offset(),
    )
    return view.reshape(n, c * kh * kw, out_hw[0] * out_hw[1])


class _ChannelsLastGrad(torch.autograd.Function):
    """Identity whose backward hands the gradient on in channels-last layout (the layout of the pooling
    before it, whose backward is several times slower on a gradient in the default layout)."""

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


def try_per_sample(
    loss: FunctionalLoss, plan_: _Plan, inputs: Tensor, targets: Tensor, out: Tensor, chunk_size: int | None
) -> tuple[Tensor, bool] | None:
    """Per-sample gradients of one batch by the layer path, in chunks of ``chunk_size`` samples, written
    into ``out``: ``(losses, all finite)``, or ``None`` where the path does not apply (use ``vmap``)."""
    n = inputs.shape[0]
    step = n if chunk_size is None else chunk_size
    values, finite = [], True
    try:
        for start in range(0, n, step):
            stop = min(n, start + step)
            v, ok = per_sample_chunk(loss, plan_, inputs[start:stop], targets[start:stop], out[start:stop])
            values.append(v)
            finite = finite and ok
    except _Unsupported:
        return None
    return (torch.cat(values) if len(values) > 1 else values[0]), finite
