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
    assert torch.equal(eval_grads[0], eval_grads[1])  # identical samples, identical gradients
    train_grads = per_sample_gradients(model, CE, (x, y), train=True).gradients
    assert not torch.equal(train_grads[0], train_grads[1])


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
