"""The models people actually write, with independent truths to check the instruments against.

Every model comes with a *twin*: the same function and weights written without any in-place operation
(``inplace=False`` activations, ``out = out + identity``), so that a reference computed on the twin does
not rely on how in-place operations are differentiated. The references are plain Python loops over samples
with ``torch.autograd.grad`` in float64, and ``torch.autograd.functional.hessian`` (double backward) for the
Hessian.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn

CE = nn.CrossEntropyLoss()
CLASSES = 3


def _randomize_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Running statistics and affine parameters away from their defaults (else eval-mode BatchNorm is
    nearly the identity and a wrong BatchNorm gradient could go unnoticed)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=g))
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return model


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, written by hand: conv-BN-ReLU-conv-BN, ``out += identity``, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, inplace: bool = True) -> None:
        super().__init__()
        self.inplace = inplace
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.inplace:
            out += identity
        else:
            out = out + identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """torchvision's ResNet Bottleneck, by hand: 1×1 / 3×3 / 1×1 convolutions with BN, ``out += identity``."""

    def __init__(self, channels: int, width: int, inplace: bool = True) -> None:
        super().__init__()
        self.inplace = inplace
        self.conv1 = nn.Conv2d(channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=inplace)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.inplace:
            out += x
        else:
            out = out + x
        return self.relu(out)


class ResNet(nn.Module):
    """A tiny ResNet: stem conv-BN-ReLU(inplace), a BasicBlock with downsampling, a Bottleneck, pool, fc."""

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(2, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2), nn.ReLU(inplace=inplace)
        )
        self.block = BasicBlock(2, 3, stride=2, inplace=inplace)
        self.bottleneck = Bottleneck(3, 2, inplace=inplace)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.pool(self.bottleneck(self.block(self.stem(x)))), 1))


class SharedLinear(nn.Module):
    """One ``nn.Linear`` applied twice (a shared weight), then a head."""

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 5)
        self.act = nn.LeakyReLU(0.1, inplace=inplace)
        self.head = nn.Linear(5, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.act(self.fc(self.act(self.fc(x)))))


class TiedLM(nn.Module):
    """Bag-of-tokens language model whose decoder is the embedding matrix (tied weights)."""

    VOCAB = 7

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.embedding = nn.Embedding(self.VOCAB, 4)
        self.act = nn.Hardtanh(-0.5, 0.5, inplace=inplace)
        self.decoder = nn.Linear(4, self.VOCAB)
        self.decoder.weight = self.embedding.weight

    def forward(self, tokens: Tensor) -> Tensor:
        return self.decoder(self.act(self.embedding(tokens).mean(dim=1)))


class Recurrent(nn.Module):
    """An LSTM or GRU over a sequence, classifying from the last step."""

    def __init__(self, cell: type[nn.Module], inplace: bool = True) -> None:
        super().__init__()
        self.rnn = cell(3, 4, batch_first=True)
        self.fc = nn.Linear(4, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


class DictOutput(nn.Module):
    """Returns ``{"features": ..., "logits": ...}`` (a HuggingFace-style output)."""

    def __init__(self, inplace: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 6), nn.ReLU(inplace=inplace))
        self.head = nn.Linear(6, CLASSES)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.body(x)
        return {"features": features, "logits": self.head(features)}


class TupleOutput(DictOutput):
    """Returns ``(logits, features)``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = super().forward(x)
        return out["logits"], out["features"]


def _mlp(inplace: bool = True) -> nn.Module:
    return nn.Sequential(
        nn.Linear(5, 8),
        nn.ReLU(inplace=inplace),
        nn.Linear(8, 8),
        nn.LeakyReLU(0.2, inplace=inplace),
        nn.Linear(8, 6),
        nn.Hardtanh(-0.7, 0.7, inplace=inplace),
        nn.Dropout(0.3, inplace=inplace),
        nn.Linear(6, CLASSES),
    )


def _conv_bn(inplace: bool = True) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=inplace),
        nn.Conv2d(4, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU6(inplace=inplace),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, CLASSES),
    )


def _image_data(n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 6, 6, generator=g), torch.randint(0, CLASSES, (n,), generator=g)


def _vector_data(n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.randint(0, CLASSES, (n,), generator=g)


def _sequence_data(n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, 3, generator=g), torch.randint(0, CLASSES, (n,), generator=g)


def _token_data(n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, TiedLM.VOCAB, (n, 5), generator=g)
    return tokens, torch.randint(0, TiedLM.VOCAB, (n,), generator=g)


#: name → (model factory taking ``inplace``, data factory ``(n, seed) -> (inputs, targets)``, output selector)
ZOO: dict[str, tuple[Callable[..., nn.Module], Callable[[int, int], tuple[Tensor, Tensor]], object]] = {
    "mlp_inplace": (_mlp, _vector_data, None),
    "conv_bn_inplace": (_conv_bn, _image_data, None),
    "resnet": (ResNet, _image_data, None),
    "shared_linear": (SharedLinear, _vector_data, None),
    "tied_embedding": (TiedLM, _token_data, None),
    "lstm": (lambda inplace=True: Recurrent(nn.LSTM), _sequence_data, None),
    "gru": (lambda inplace=True: Recurrent(nn.GRU), _sequence_data, None),
    "dict_output": (DictOutput, _vector_data, "logits"),
    "tuple_output": (TupleOutput, _vector_data, 0),
    "callable_output": (DictOutput, _vector_data, lambda out: out["logits"]),
}


def make(name: str, dtype: torch.dtype = torch.float64, n: int = 7, seed: int = 0):
    """``(model, twin, batches, output)``: the model with in-place operations, its in-place-free float64
    twin with the same weights, two unequal batches of ``n`` samples in all, and the output selector."""
    factory, data, output = ZOO[name]
    torch.manual_seed(seed)
    model = _randomize_batchnorm(factory(inplace=True), seed)
    twin = factory(inplace=False)
    twin.load_state_dict(model.state_dict())
    model, twin = model.to(dtype), twin.double()
    x, y = data(n, seed + 1)
    if x.is_floating_point():
        x = x.to(dtype)
    cut = n // 2 + 1
    return model, twin, [(x[:cut], y[:cut]), (x[cut:], y[cut:])], output


def pick(raw, output):
    if output is None:
        return raw
    return output(raw) if callable(output) else raw[output]


def loop_gradients(twin: nn.Module, batches, output, loss_fn=CE) -> Tensor:
    """Reference ``g_k``: one float64 ``torch.autograd.grad`` per sample on the in-place-free twin (eval)."""
    twin = copy.deepcopy(twin).double().eval()
    params = [p for p in twin.parameters() if p.requires_grad]
    rows = []
    for x, y in batches:
        x = x.double() if x.is_floating_point() else x
        for k in range(x.shape[0]):
            value = loss_fn(pick(twin(x[k : k + 1]), output), y[k : k + 1])
            grads = torch.autograd.grad(value, params, allow_unused=True)
            pairs = zip(grads, params, strict=True)
            rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in pairs]))
    return torch.stack(rows)


@functools.cache
def cached_hessian(name: str, n: int = 7, train: bool = False) -> Tensor:
    """:func:`dataset_hessian` of the twin of zoo model ``name`` (built by :func:`make`), computed once."""
    _, twin, batches, output = make(name, n=n)
    return dataset_hessian(twin, batches, output, train=train)


def dataset_hessian(twin: nn.Module, batches, output, loss_fn=CE, train: bool = False) -> Tensor:
    """Reference Hessian of ``Σ_b n_b ℓ_b / N``: ``torch.autograd.functional.hessian`` (double backward) on
    the in-place-free float64 twin."""
    twin = copy.deepcopy(twin).double().train(train)
    named = [(k, p) for k, p in twin.named_parameters() if p.requires_grad]
    x0 = torch.cat([p.detach().reshape(-1) for _, p in named])
    n = sum(x.shape[0] for x, _ in batches)
    state = {k: b.clone() for k, b in twin.named_buffers()}

    def f(flat: Tensor) -> Tensor:
        params, start = {}, 0
        for k, p in named:
            params[k] = flat[start : start + p.numel()].view_as(p)
            start += p.numel()
        total = flat.new_zeros(())
        for x, y in batches:
            x = x.double() if x.is_floating_point() else x
            buffers = {k: b.clone() for k, b in state.items()}
            raw = torch.func.functional_call(twin, {**buffers, **params}, (x,))
            total = total + x.shape[0] / n * loss_fn(pick(raw, output), y)
        return total

    return torch.autograd.functional.hessian(f, x0)
