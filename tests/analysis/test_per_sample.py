import pytest
import torch
from torch import nn

from deeplandscape.analysis.per_sample import per_sample_gradients

from ._curvature_cases import (
    CE,
    MODELS_AND_DATA,
    assert_unchanged,
    busy_batch,
    busy_model,
    mlp,
    mlp_data,
    single_thread,  # noqa: F401
    snapshot,
)


def _loop(model: nn.Module, data) -> torch.Tensor:
    """Reference: one autograd backward per sample, in eval mode."""
    was = model.training
    model.eval()
    rows = []
    for x, y in data:
        for k in range(x.shape[0]):
            params = [p for p in model.parameters() if p.requires_grad]
            grads = torch.autograd.grad(CE(model(x[k : k + 1]), y[k : k + 1]), params)
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    model.train(was)
    return torch.stack(rows)


@pytest.mark.parametrize(("make_model", "make_data"), MODELS_AND_DATA)
def test_per_sample_gradients_equal_a_python_loop(make_model, make_data):
    model, data = make_model(), make_data()
    result = per_sample_gradients(model, CE, data, chunk_size=3)
    torch.testing.assert_close(result.gradients, _loop(model, data), rtol=1e-12, atol=1e-14)
    n = sum(x.shape[0] for x, _ in data)
    assert result.gradients.shape == (n, sum(p.numel() for p in model.parameters()))
    losses = torch.cat([nn.CrossEntropyLoss(reduction="none")(model(x), y) for x, y in data]).detach()
    torch.testing.assert_close(result.losses, losses)
    assert result.names == tuple(k for k, _ in model.named_parameters())


def test_batchnorm_model_in_eval_mode_is_unchanged_and_matches_loop():
    model = busy_model()
    before = snapshot(model)
    data = [busy_batch()]
    result = per_sample_gradients(model, CE, data)
    assert_unchanged(model, before)
    torch.testing.assert_close(result.gradients, _loop(model, data), rtol=1e-12, atol=1e-14)
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="Invalid train: True with BatchNorm"):
        per_sample_gradients(model, CE, data, train=True)


def test_dropout_in_train_mode_draws_a_mask_per_sample():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 40), nn.Dropout(0.5), nn.Linear(40, 3)).double()
    x = torch.randn(1, 5, dtype=torch.float64).repeat(8, 1)
    y = torch.zeros(8, dtype=torch.long)
    eval_grads = per_sample_gradients(model, CE, (x, y)).gradients
    # Identical samples, identical gradients (up to the rounding of the batched kernels, which may differ
    # between rows on some CPUs); in train mode each sample draws its own dropout mask: O(1) differences.
    torch.testing.assert_close(eval_grads, eval_grads[:1].expand_as(eval_grads), rtol=0, atol=1e-14)
    train_grads = per_sample_gradients(model, CE, (x, y), train=True).gradients
    assert (train_grads - train_grads[:1]).abs().max() > 1e-3


def test_bad_input_errors():
    model, data = mlp(), mlp_data()
    with pytest.raises(ValueError, match="no trainable parameters"):
        per_sample_gradients(nn.Tanh(), CE, data)
    with pytest.raises(ValueError, match="empty"):
        per_sample_gradients(model, CE, [])
    with pytest.raises(ValueError, match="Invalid chunk_size"):
        per_sample_gradients(model, CE, data, chunk_size=0)
    bad = [(data[0][0].clone().fill_(float("inf")), data[0][1])]
    with pytest.raises(ValueError, match="Non-finite loss on batch 0"):
        per_sample_gradients(model, CE, bad)


class _Scale(nn.Module):
    """A layer the layer path does not know (per-sample, but not in its list): forces the vmap path."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor([1.5], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


def _layer_path_cases():
    g = torch.Generator().manual_seed(11)
    torch.manual_seed(12)
    mlp_model = nn.Sequential(
        nn.Linear(5, 7), nn.GELU(), nn.Sequential(nn.Linear(7, 6), nn.ReLU()), nn.Linear(6, 3)
    )
    mlp_x = torch.randn(9, 5, generator=g, dtype=torch.float64)
    cnn_model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, stride=2), nn.BatchNorm2d(4), nn.Tanh(), nn.MaxPool2d(2),
        nn.Conv2d(4, 5, 2, dilation=1, bias=False), nn.SiLU(), nn.AvgPool2d(1), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(5, 3),
    )  # fmt: skip
    cnn_model[1].running_mean.uniform_(-0.5, 0.5)
    cnn_model[1].running_var.uniform_(0.5, 2.0)
    cnn_model[1].weight.data.uniform_(0.5, 1.5)
    cnn_x = torch.randn(7, 2, 10, 10, generator=g, dtype=torch.float64)
    seq_model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Flatten(), nn.Linear(18, 3))  # (N, T, 4) inputs
    seq_x = torch.randn(6, 3, 4, generator=g, dtype=torch.float64)
    fallback_model = nn.Sequential(nn.Linear(5, 6), _Scale(), nn.Tanh(), nn.Linear(6, 3))
    cases = []
    for name, model, x, supported in [
        ("mlp", mlp_model, mlp_x, True),
        ("cnn", cnn_model, cnn_x, True),
        ("sequence", seq_model, seq_x, True),
        ("fallback", fallback_model, mlp_x, False),
    ]:
        y = torch.randint(0, 3, (x.shape[0],), generator=g)
        cases.append(pytest.param(model.double(), x, y, supported, id=name))
    return cases


@pytest.mark.parametrize(("model", "x", "y", "supported"), _layer_path_cases())
def test_layer_path_equals_vmap_path_and_python_loop(model, x, y, supported, monkeypatch):
    """The hook-free layer path (δ_k a_kᵀ per layer) gives the vmap path's and a loop's g_k (float64)."""
    from deeplandscape.analysis import per_sample
    from deeplandscape.analysis._functional import FunctionalLoss
    from deeplandscape.analysis._per_sample_layers import plan

    model.train()  # left in train mode: the instrument must evaluate in eval mode and restore it
    assert (plan(FunctionalLoss(model, CE, (x, y))) is not None) == supported
    before = snapshot(model)
    layered = per_sample_gradients(model, CE, (x, y))
    chunked = per_sample_gradients(model, CE, [(x[:4], y[:4]), (x[4:], y[4:])], chunk_size=3)
    assert_unchanged(model, before)
    monkeypatch.setattr(per_sample, "plan", lambda loss: None)
    vmapped = per_sample_gradients(model, CE, (x, y))
    assert_unchanged(model, before)
    reference = _loop(model, [(x, y)])
    for result in (layered, chunked):
        torch.testing.assert_close(result.gradients, vmapped.gradients, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(result.gradients, reference, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(result.losses, vmapped.losses, rtol=1e-12, atol=1e-14)


def test_layer_path_with_frozen_layers_weighted_loss_and_float_targets():
    """Frozen parameters are skipped; class-weighted CE, label-smoothed CE and MSE are the losses of a batch
    of one sample."""
    torch.manual_seed(13)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    model[0].bias.requires_grad_(False)
    g = torch.Generator().manual_seed(14)
    x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (8,), generator=g)
    weighted = nn.CrossEntropyLoss(weight=torch.tensor([0.2, 1.0, 3.0], dtype=torch.float64))
    smoothed = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="sum")
    mse_targets = torch.randn(8, 3, generator=g, dtype=torch.float64)
    for loss_fn, targets in [(weighted, y), (smoothed, y), (nn.MSELoss(), mse_targets)]:
        result = per_sample_gradients(model, loss_fn, (x, targets))
        params = [p for p in model.parameters() if p.requires_grad]
        model.eval()
        rows = []
        for k in range(8):
            grads = torch.autograd.grad(loss_fn(model(x[k : k + 1]), targets[k : k + 1]), params)
            rows.append(torch.cat([gr.reshape(-1) for gr in grads]))
        model.train()
        torch.testing.assert_close(result.gradients, torch.stack(rows), rtol=1e-12, atol=1e-14)
        assert result.names == ("0.weight", "2.weight", "2.bias")


def test_layer_path_reports_non_finite_gradients(monkeypatch):
    """A first-layer gradient δ₁ xᵀ ≈ 2e24 · 1e16 overflows float32 while the loss is finite: reported by
    both paths, not returned."""
    from deeplandscape.analysis import per_sample

    model = nn.Sequential(nn.Linear(16, 16, bias=False), nn.Linear(16, 2, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(1e-41)
        model[1].weight.fill_(1e24)
        model[1].weight[1].neg_()
    x = torch.full((3, 16), 1e16)
    y = torch.ones(3, dtype=torch.long)
    assert torch.isfinite(CE(model(x), y))
    with pytest.raises(ValueError, match="Non-finite per-sample gradient on batch 0"):
        per_sample_gradients(model, CE, (x, y))
    monkeypatch.setattr(per_sample, "plan", lambda loss: None)
    with pytest.raises(ValueError, match="Non-finite per-sample gradient on batch 0"):
        per_sample_gradients(model, CE, (x, y))
