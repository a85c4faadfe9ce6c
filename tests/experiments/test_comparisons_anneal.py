"""The ``anneal`` comparison (AnnealSGD paper §5.3–5.6): measurements against direct computations, and the
quick run's claims against the mechanism the paper gives (the field adds a gradient component)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape import nets
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import anneal as A
from deeplandscape.experiments.claims import HELD, NOT_HELD, UNDECIDABLE
from deeplandscape.optim import AnnealSGD, field_scale, noise_std

from . import _synthetic as syn
from ._quick import run_quick

RUN_KEYS = {
    "model", "method", "seeds", "error_mean", "error_std", "val_error_mean", "val_error_std",
    "train_error_mean", "train_loss_mean", "effective_epochs", "hessian_top",
    "hessian_top_std", "hessian_trace", "hessian_trace_std", "tuned", "factor", "min_abs_grad_early",
    "min_abs_grad_early_std", "min_abs_loss_grad_early", "train_loss_early", "optimizer", "own_updates",
    "adaptive_top", "local_entropy", "gamma_star",
}  # fmt: skip


def _tiny(dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).to(dtype)


def _closed_form_grads(model, x, y):
    """∂f/∂W1, ∂f/∂W2 of f = mean cross entropy of Linear–tanh–Linear, by hand."""
    l1, l2 = model[0], model[2]
    h = torch.tanh(x @ l1.weight.T + l1.bias)
    p = torch.softmax(h @ l2.weight.T + l2.bias, dim=1)
    dz = (p - F.one_hot(y, 4).to(x.dtype)) / len(y)
    dw2 = dz.T @ h
    dw1 = ((dz @ l2.weight) * (1 - h**2)).T @ x
    return dw1, dw2


def test_layer_abs_grads_matches_closed_form():
    model = _tiny()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 1, 0])
    dw1, dw2 = _closed_form_grads(model, x, y)
    got = A.layer_abs_grads(model, x, y)
    torch.testing.assert_close(got, torch.stack([dw1.abs().mean(), dw2.abs().mean()]), rtol=1e-12, atol=0)
    delta = {model[0].weight: torch.randn(5, 3, generator=g, dtype=torch.float64)}
    got = A.layer_abs_grads(model, x, y, delta)
    want = torch.stack([(dw1 + delta[model[0].weight]).abs().mean(), dw2.abs().mean()])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    assert all(p.grad is None for p in model.parameters())  # measured without touching .grad


def test_layer_abs_grads_leaves_batchnorm_and_mode_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2), nn.Linear(2, 2))
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = A.layer_abs_grads(model, x, y)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert got.shape == (3,)  # the three kernels; biases and BN scales are not layers (§5.2)
    model.eval()
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), [p for p in model.parameters() if p.dim() >= 2])
    torch.testing.assert_close(got, torch.stack([g.abs().double().mean() for g in grads]))


def _groups(m):
    return [{"params": list(m[0].parameters())}, {"params": list(m[2].parameters())}]


MAKERS = {
    "anneal": lambda m: AnnealSGD(m.parameters(), torch.optim.SGD, J=0.1, tau0=2.0, p=3, seed=5, lr=1.0),
    "noise": lambda m: A.RecordedGradientNoise(m.parameters(), torch.optim.SGD, eta=0.5, seed=5, lr=1.0),
    "noise-groups": lambda m: A.RecordedGradientNoise(_groups(m), torch.optim.SGD, eta=0.5, seed=5, lr=1.0),
}


@pytest.mark.parametrize("kind", list(MAKERS))
def test_next_perturbation_is_what_the_base_optimizer_adds(kind):
    """With plain SGD of step 1 as base, w_before − w_after = ∇f + δ exactly, for several steps."""
    model, twin = _tiny(), _tiny()
    make = MAKERS[kind]
    opt, opt_twin = make(model), make(twin)
    g = torch.Generator().manual_seed(2)
    for step in range(3):
        x, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randint(0, 4, (6,), generator=g)
        for m, o in ((model, opt), (twin, opt_twin)):
            o.zero_grad()
            F.cross_entropy(m(x), y).backward()
        delta = A.next_perturbation(opt)
        assert set(delta) == set(model.parameters())
        before = [p.detach().clone() for p in model.parameters()]
        grads = [p.grad.clone() for p in model.parameters()]
        opt.step()
        opt_twin.step()
        for p, w, gr in zip(model.parameters(), before, grads, strict=True):
            torch.testing.assert_close(w - p.detach(), gr + delta[p], rtol=1e-12, atol=1e-14)
        for p, q in zip(model.parameters(), twin.parameters(), strict=True):
            assert torch.equal(p, q)  # asking for δ left the optimizer's generator untouched
        if kind == "anneal":
            s = field_scale(step, tau0=2.0)
            for p in model.parameters():
                torch.testing.assert_close(delta[p], s * opt.state[p]["field"], rtol=0, atol=0)
        else:
            eps = opt.last_noise()
            for p in model.parameters():
                torch.testing.assert_close(noise_std(step, 0.5, 0.55) * eps[p], delta[p], rtol=1e-12, atol=0)


def test_alignment_z_closed_form():
    w = [torch.tensor([3.0, 0.0]), torch.tensor([[4.0]])]
    assert A.alignment_z(w, [torch.tensor([1.0, 7.0]), torch.tensor([[1.0]])]) == pytest.approx(7 / 5)
    assert A.alignment_z(w, [-t for t in w]) == pytest.approx(5.0)  # ξ = −w: |ξᵀw|/‖w‖ = ‖w‖


def test_field_is_independent_of_the_initial_weights():
    """Network and field of run 0 come from different streams: z = |ξᵀw₀|/‖w₀‖ is |N(0,1)|-sized."""
    config = {"tau0_scale": 0.1}
    model = nets.get("mnistfc-deep", seed=0)
    opt = A.methods("mnistfc-deep", config)["anneal"].build(model.parameters(), 1.0, seed=0)
    z = A._alignments(opt)["alignment"]
    assert z < 4.0  # P(|N(0,1)| > 4) = 6e-5; drawn from the same stream as w₀ it is ≈ 195


def test_early_points():
    e = np.array([0.0, 0.375, 0.75, 1.0, 1.5])
    assert A.early_points(e, 0.5).tolist() == [False, True, True, False, False]
    assert A.early_points(e, 1.0).tolist() == [False, True, True, True, False]
    assert A.early_points(e, 9.0).tolist() == [False, True, True, True, True]


def _expected_field_grad(steps):
    """mean|s_i h| = s_i v_c √(2/π) on mnistfc-deep (p = 17, J = 1e-3, τ0 = 50), averaged over steps."""
    v_c = 1e-3 * math.sqrt(17 * 15)
    return float(np.mean([field_scale(int(i), tau0=50.0) * v_c * math.sqrt(2 / math.pi) for i in steps]))


def _predicted_alignment(steps):
    """z after ``steps`` Adam steps of ≈ lr·sign(h) each: i·lr·‖ξ‖₁/‖w_i‖, ‖ξ‖₁ ≈ D√(2/π), lr = 1e-3."""
    w0 = torch.cat([p.detach().flatten().double() for p in nets.get("mnistfc-deep", seed=0).parameters()])
    d, shift = w0.numel(), steps * 1e-3
    return shift * d * math.sqrt(2 / math.pi) / math.sqrt(float(w0 @ w0) + shift**2 * d)


def test_field_boosts_the_minimum_gradient_after_a_few_steps():
    """Eight steps of Adam and of AnnealSGD from the same network and batches of the quick scale."""
    d = C.load_images({"data": "digits", "mnist_path": "", "train_subset": 256})
    methods = A.methods("mnistfc-deep", {"tau0_scale": 0.1})
    extra = A.measurement(d.x[:32], d.y[:32])
    values = {}
    for key in ("adam", "anneal"):
        model = nets.get("mnistfc-deep", seed=0)
        opt = methods[key].build(model.parameters(), 1.0, seed=0)
        step, batches = C.single_model_step(model, opt), C.batch_order(256, 32, seed=0)
        for _ in range(8):
            idx = next(batches)
            step(d.x[idx], d.y[idx])
        values[key] = extra(model, opt)
    assert values["anneal"]["min_abs_grad"] > 100 * values["adam"]["min_abs_grad"]
    assert values["anneal"]["min_abs_grad"] == pytest.approx(_expected_field_grad([8]), rel=0.1)
    assert values["adam"]["min_abs_grad"] == values["adam"]["min_abs_loss_grad"]  # Adam adds nothing
    assert values["anneal"]["alignment"] == pytest.approx(_predicted_alignment(8), rel=0.1)


@pytest.mark.slow
def test_quick_run_field_boosts_the_minimum_gradient(tmp_path):
    """The quick run writes every key, and on the deep thin net AnnealSGD's minimum absolute gradient early in
    training exceeds Adam's — by the field's own magnitude, as §5.3 says ("the external magnetic field
    results in a gradient bias and thus artificially boosts the magnitude of the gradient")."""
    results, out = run_quick(
        A.EXPERIMENT, tmp_path,
        ["methods=adam,anneal,noise", "hessian_samples=16", "hessian_probes=1", "grad_samples=32",
         "batch_size=32", "tau0_scale=0.1"],
    )  # fmt: skip
    rows = {r["method"]: r for r in results["runs"]}
    assert set(rows) == {"Adam", "AnnealSGD", "GradientNoise"}
    for r in rows.values():
        assert set(r) >= RUN_KEYS and r["model"] == "mnistfc-deep"
        assert all(math.isfinite(r[k]) for k in RUN_KEYS if isinstance(r[k], float))

    # Fig. 3b. Deep in the net ∇f has vanished (≈ 1e-9), so the fed gradient of AnnealSGD is the field:
    # mean|s_i h| = s_i v_c √(2/π) per layer (≥ 1280 entries each: ~2% sampling error, 10% allowed).
    adam, anneal = rows["Adam"], rows["AnnealSGD"]
    assert anneal["min_abs_grad_early"] > 100 * adam["min_abs_grad_early"]
    arrays = np.load(out / "anneal.npz")
    epochs = arrays["mnistfc-deep_AnnealSGD_effective_epochs"][0]
    steps = np.rint(epochs * 256 / 32)  # train_subset / batch_size at the quick scale
    early = A.early_points(epochs, 1.0)
    expected = _expected_field_grad(steps[early])
    assert anneal["min_abs_grad_early"] == pytest.approx(expected, rel=0.1)
    assert anneal["min_abs_grad_early"] - anneal["min_abs_loss_grad_early"] > 0.9 * expected

    # Fig. 4. Adam fed ∇f + s_i h with |∇f| ≪ |h| moves every weight by ≈ lr·sign(h) per step, so
    # z_i = |ξᵀw_i|/‖w_i‖ ≈ i·lr·‖ξ‖₁/‖w_i‖ with ‖ξ‖₁ ≈ D√(2/π); resampled noise does not accumulate.
    curves = {c["method"]: c for c in results["alignment"]["curves"]}
    assert set(curves) == {"AnnealSGD", "GradientNoise"}
    z = curves["AnnealSGD"]["z_mean"]
    assert z[0] < 4.0  # the field is drawn independently of w₀
    assert z[-1] == pytest.approx(_predicted_alignment(steps[-1]), rel=0.1)
    assert curves["GradientNoise"]["z_mean"][0] is None  # no noise drawn before the first step
    assert curves["GradientNoise"]["z_max"] < z[-1] / 5


@pytest.mark.slow
def test_quick_run_all_methods(tmp_path):
    results, _ = run_quick(A.EXPERIMENT, tmp_path)
    assert {r["method"] for r in results["runs"]} == {"Adam", "AnnealSGD", "GradientNoise"}  # SAM on request
    for r in results["runs"]:
        assert set(r) >= RUN_KEYS
    assert results["alignment"]["chance"] == pytest.approx(math.sqrt(2 / math.pi))


# ---------------------------------------------------------------------------------------------- claims


def _claim(name):
    return next(c for c in A.CLAIMS if c.id == f"anneal.{name}")


EPOCHS = np.tile(np.linspace(0.0, 8.0, 5), (syn.SEEDS, 1))  # early: the points at 2 effective epochs


def _curves(loss=1.0, grad=1e-3, z=1.0, seed=0):
    """Per-seed curves: training loss, min|grad| (fed and ∇f alone), alignment z."""
    return {
        "effective_epochs": EPOCHS, "train_loss": syn.per_seed(loss, columns=5, spread=0.05, seed=seed),
        "extra_min_abs_grad": 10 ** syn.per_seed(np.log10(grad), columns=5, spread=0.1, seed=seed + 1),
        "extra_min_abs_loss_grad": np.full((syn.SEEDS, 5), 1e-9),
        "extra_alignment": 10 ** syn.per_seed(np.log10(z), columns=5, spread=0.1, seed=seed + 2),
    }  # fmt: skip


def _run(tmp_path, anneal=None, adam=None, noise=None, model="mnistfc-deep", field=1e-3):
    specs = {
        "AnnealSGD": dict(optimizer="anneal-sgd", error=2.0, seed=1, row={"field_fraction_end": field},
                          **{**_curves(loss=0.5, grad=1e-2, z=30.0), **syn.width(0.5, seed=1)}),
        "Adam": dict(optimizer="adam", error=4.0, seed=2, **{**_curves(seed=3), **syn.width(1.0, seed=2)}),
        "GradientNoise": dict(optimizer="gradient-noise", error=3.0, seed=3, **_curves(z=0.8, seed=4)),
    }  # fmt: skip
    for key, edit in (("AnnealSGD", anneal), ("Adam", adam), ("GradientNoise", noise)):
        specs[key] = {**specs[key], **(edit or {})}
    methods = {(model, k): syn.method(v.pop("optimizer"), **v) for k, v in specs.items()}
    return syn.run(tmp_path, methods, early_epochs=2.0)


def test_faster_early(tmp_path):
    faster = _claim("faster-early")
    assert faster.evaluate(_run(tmp_path)).status == HELD
    # a claim on training while the field is on: a field not yet decayed at the end does not guard it
    assert faster.evaluate(_run(tmp_path, field=0.5)).status == HELD
    assert _claim("error").evaluate(_run(tmp_path, field=0.5)).status == UNDECIDABLE
    slower = faster.evaluate(_run(tmp_path, anneal={"train_loss": syn.per_seed(2.0, columns=5)}))
    assert slower.status == NOT_HELD
    same = faster.evaluate(
        _run(tmp_path, anneal={"train_loss": syn.per_seed(1.0, columns=5, spread=0.05, seed=9)})
    )
    assert same.status == UNDECIDABLE
    # the early points: after the start, up to the first at or beyond early_epochs (= 2: points 1 and 2)
    run = _run(tmp_path)
    loss = A._early_values(run, "mnistfc-deep", "AnnealSGD", "train_loss")
    np.testing.assert_allclose(
        loss, A.V.arrays(run, "mnistfc-deep", "AnnealSGD")["train_loss"][:, 1:2].mean(1)
    )


def test_min_grad_even_when_adams_vanishes_to_zero(tmp_path):
    min_grad = _claim("min-grad")
    assert min_grad.evaluate(_run(tmp_path)).status == HELD
    # On MNIST Adam's smallest layer-mean gradient can vanish to exactly 0 in float32: log10 of float32's
    # smallest normal number stands for it, and the claim is decided
    zero = min_grad.evaluate(_run(tmp_path, adam={"extra_min_abs_grad": np.zeros((syn.SEEDS, 5))}))
    assert zero.status == HELD and np.isfinite(zero.statistic.estimate)
    smaller = min_grad.evaluate(_run(tmp_path, anneal={"extra_min_abs_grad": np.full((syn.SEEDS, 5), 1e-6)}))
    assert smaller.status == NOT_HELD
    same = _curves(grad=1e-3, seed=11)["extra_min_abs_grad"]
    assert min_grad.evaluate(_run(tmp_path, anneal={"extra_min_abs_grad": same})).status == UNDECIDABLE


ERROR_CLAIMS = [("error", "AnnealSGD", "Adam"), ("fixed-field", "AnnealSGD", "GradientNoise"),
                ("noise-helps", "GradientNoise", "Adam")]  # fmt: skip


@pytest.mark.parametrize(("name", "a", "b"), ERROR_CLAIMS)
def test_error_claims_and_their_guards(tmp_path, name, a, b):
    claim = _claim(name)
    keys = {"AnnealSGD": "anneal", "Adam": "adam", "GradientNoise": "noise"}

    def run(error_a, error_b, **more):
        return _run(tmp_path, **{keys[a]: {"error": error_a}, keys[b]: {"error": error_b}}, **more)

    assert claim.evaluate(run(1.0, 4.0)).status == HELD
    assert claim.evaluate(run(6.0, 3.0)).status == NOT_HELD
    assert claim.evaluate(run(3.0, 3.0)).status == UNDECIDABLE
    # a method at chance (Adam on the 16-layer net at small budgets): not decidable, with a warning
    chance = claim.evaluate(run(1.0, 90.0))
    assert chance.status == UNDECIDABLE and "chance" in chance.reason and chance.warnings
    # AnnealSGD's field still on at the end
    field = claim.evaluate(run(1.0, 4.0, field=0.05))
    assert (field.status == UNDECIDABLE) == ("AnnealSGD" in (a, b))


def test_alignment(tmp_path):
    alignment = _claim("alignment")
    assert alignment.evaluate(_run(tmp_path)).status == HELD
    low = _curves(z=0.1)["extra_alignment"]
    assert alignment.evaluate(_run(tmp_path, anneal={"extra_alignment": low})).status == NOT_HELD
    same = _curves(z=0.8, seed=20)["extra_alignment"]
    assert alignment.evaluate(_run(tmp_path, anneal={"extra_alignment": same})).status == UNDECIDABLE
    # before the first draw of the noise its alignment is NaN: left out of the mean
    first = _curves(z=0.8, seed=4)["extra_alignment"]
    first[:, 0] = np.nan
    assert alignment.evaluate(_run(tmp_path, noise={"extra_alignment": first})).status == HELD


def test_wider_is_beyond_the_paper(tmp_path):
    wider = _claim("wider")
    assert wider.beyond_papers
    assert wider.evaluate(_run(tmp_path)).status == HELD
    assert wider.evaluate(_run(tmp_path, anneal=syn.width(1.5))).status == NOT_HELD


@pytest.mark.parametrize(("scale", "steps"), [("default", 27 * 77), ("reference", round(1.5 * 1563))])
def test_field_decays_below_one_percent_at_the_default_and_reference_scales(scale, steps):
    """τ0 = tau0_scale × the paper's: s_T / s_0 = e^(−T/2τ0) at the end of the run ≤ 1% for both networks."""
    from deeplandscape.experiments.spec import resolve_config

    config = resolve_config(A.EXPERIMENT, scale, 0)
    for model, settings in A.SETTINGS.items():
        tau0 = settings.tau0 * config["tau0_scale"]
        assert field_scale(steps, tau0=tau0) / field_scale(0, tau0=tau0) <= C.FIELD_LIMIT, model
