import numpy as np
import pytest
import torch
from torch import nn

from deeplandscape.analysis.probes import TrainingProbe

from ._unchanged import assert_unchanged, snapshot


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randn(8, 2, dtype=torch.float64)
    return model, x, y


def test_probe_matches_values_computed_by_hand():
    model, x, y = _setup()
    d = sum(p.numel() for p in model.parameters())
    h = torch.linspace(-1, 1, d, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = TrainingProbe(model, field=h).attach(opt)
    expected = []
    for _ in range(3):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        w = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        expected.append((grads, w))
        opt.step()
    probe.remove()
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()  # not recorded: the probe is detached
    rec = probe.result()
    assert rec.steps.tolist() == [0, 1, 2]
    for k, (grads, w) in enumerate(expected):
        flat = torch.cat([g.reshape(-1) for g in grads.values()])
        assert rec.min_abs_grad[k] == float(flat.abs().min())
        assert rec.grad_norm[k] == pytest.approx(float(flat.norm()), rel=1e-12)
        for layer in ("0", "2"):
            want = torch.sqrt(grads[f"{layer}.weight"].pow(2).sum() + grads[f"{layer}.bias"].pow(2).sum())
            assert rec.layer_grad_norms[layer][k] == pytest.approx(float(want), rel=1e-12)
        assert rec.field_alignment[k] == pytest.approx(abs(float(h @ w)), rel=1e-12)
        assert rec.field_cosine[k] == pytest.approx(abs(float(h @ w)) / float(h.norm() * w.norm()), rel=1e-12)


def test_probe_with_callable_field_per_parameter_tensors_and_every():
    model, x, y = _setup()
    shapes = [p.shape for p in model.parameters()]
    calls = []

    def field(step):
        calls.append(step)
        return [torch.full(s, float(step + 1), dtype=torch.float64) for s in shapes]

    probe = TrainingProbe(model, field=field, every=2)
    before = snapshot(model)
    for _ in range(5):
        model.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        before = snapshot(model)
        probe.record()
        assert_unchanged(model, before)
    rec = probe.result()
    assert rec.steps.tolist() == [0, 2, 4] and calls == [0, 2, 4]
    w = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert rec.field_alignment[-1] == pytest.approx(5 * abs(float(w.sum())), rel=1e-12)


def test_probe_skips_missing_gradients_and_reports_nan_for_layers_without_one():
    model, x, y = _setup()
    model[0].weight.requires_grad_(False)
    model[0].bias.requires_grad_(False)
    model[2].weight.requires_grad_(True)
    probe = TrainingProbe(model)
    nn.functional.mse_loss(model(x), y).backward()
    probe.record()
    rec = probe.result()
    assert set(rec.layer_grad_norms) == {"2"}
    assert rec.field_alignment is None and rec.field_cosine is None
    model2, _, _ = _setup()
    probe2 = TrainingProbe(model2)
    model2[2].weight.grad = torch.ones_like(model2[2].weight)
    probe2.record()
    assert np.isnan(probe2.result().layer_grad_norms["0"][0])
    assert probe2.result().min_abs_grad[0] == 1.0


def test_probe_rejects_bad_input():
    model, _, _ = _setup()
    with pytest.raises(ValueError, match="every: 0"):
        TrainingProbe(model, every=0)
    with pytest.raises(ValueError, match="field: shape"):
        TrainingProbe(model, field=torch.zeros(3))
    with pytest.raises(ValueError, match="field: expected"):
        TrainingProbe(model, field="h")
    with pytest.raises(ValueError, match="no trainable parameter has a gradient"):
        TrainingProbe(model).record()
    model[0].weight.grad = torch.full_like(model[0].weight, float("nan"))
    with pytest.raises(ValueError, match=r"Non-finite gradient in parameter 0.weight at step 0"):
        TrainingProbe(model).record()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = TrainingProbe(model).attach(opt)
    with pytest.raises(ValueError, match="already attached"):
        probe.attach(opt)


def test_probe_alignment_matches_annealsgd_on_its_own_field():
    from deeplandscape.optim.anneal import AnnealSGD

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    opt = AnnealSGD(model.parameters(), lr=0.1, J=1e-2, tau0=5.0, seed=0)
    field = [opt.state[p]["field"] for p in model.parameters()]  # h is drawn once and kept fixed
    probe = TrainingProbe(model, field=field).attach(opt)
    expected = []
    for _ in range(4):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        expected.append(opt.alignment())  # the optimizer's own |hᵀw| at the weights the step starts from
        opt.step()
    rec = probe.result()
    np.testing.assert_allclose(rec.field_alignment, expected, rtol=1e-12)
    assert len(set(rec.field_alignment.tolist())) == 4  # the weights move, so does the alignment
