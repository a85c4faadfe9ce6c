import pytest
import torch
from torch import nn

from deeplandscape.analysis._model import as_batches, preserved, trainable_parameters


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))


def test_preserved_restores_everything_after_mutation_and_error():
    model = _net()
    model.train()
    model[3].weight.requires_grad_(False)
    before_params = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom"), preserved(model) as m:
        assert not m.training and not m[1].training
        m(torch.randn(5, 3))
        m.train()
        m(torch.randn(5, 3))  # updates BatchNorm running statistics
        with torch.no_grad():
            m[0].weight.add_(1.0)
        m[3].weight.requires_grad_(True)
        raise RuntimeError("boom")
    assert model.training and all(sub.training for sub in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before_params[key]), key
    assert model[3].weight.requires_grad is False


def test_as_batches_validates():
    x, y = torch.randn(4, 3), torch.randn(4)
    assert len(as_batches((x, y))) == 1
    with pytest.raises(ValueError, match="empty"):
        as_batches([])
    with pytest.raises(ValueError, match="3 targets"):
        as_batches([(x, y[:3])])
    with pytest.raises(ValueError, match="no trainable"):
        trainable_parameters(nn.ReLU())
