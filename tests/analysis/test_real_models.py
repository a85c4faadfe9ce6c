"""Per-sample gradients, Fisher, D(x) and Hessian–vector products on the models people write.

In-place activations and residual adds, shared and tied weights, BatchNorm, Dropout, LSTM/GRU, dict and tuple
outputs, in float64 and float32: every per-sample result is compared with a float64 Python loop over
samples on an in-place-free twin of the model (``_zoo``), and with ``torch.func.vmap`` on the twin where it
runs; every Hessian with ``torch.autograd.functional.hessian`` (double backward) of the twin.
"""

import pytest
import torch
from torch.func import functional_call, grad, vmap

from deeplandscape.analysis.fisher import fisher_diagonal
from deeplandscape.analysis.hessian import exact_hessian
from deeplandscape.analysis.hvp import HessianOperator
from deeplandscape.analysis.noise import diffusion_spectrum
from deeplandscape.analysis.per_sample import per_sample_gradients

from ._curvature_cases import assert_unchanged, single_thread, snapshot  # noqa: F401
from ._zoo import CE, ZOO, cached_hessian, loop_gradients, make, pick

EXPECTED_METHOD = {
    "mlp_inplace": "layers",
    "conv_bn_inplace": "layers",
    "lstm": "loop",
    "gru": "loop",
}


def _vmap_gradients(twin, batches, output) -> torch.Tensor:
    """``torch.func.vmap`` of ``grad`` over samples on the twin (float64, eval mode)."""
    twin = twin.eval()
    params = {k: p.detach() for k, p in twin.named_parameters()}
    buffers = dict(twin.named_buffers())

    def f(p, x, y):
        raw = functional_call(twin, {**buffers, **p}, (x[None],))
        return CE(pick(raw, output), y[None])

    rows = []
    for x, y in batches:
        x = x.double() if x.is_floating_point() else x
        g = vmap(grad(f), in_dims=(None, 0, 0))(params, x, y)
        rows.append(torch.cat([g[k].reshape(x.shape[0], -1) for k in params], dim=1))
    return torch.cat(rows)


def _tolerance(dtype: torch.dtype, reference: torch.Tensor) -> dict:
    if dtype == torch.float64:
        return {"rtol": 1e-10, "atol": 1e-12}
    return {"rtol": 1e-4, "atol": 1e-5 * float(reference.abs().max())}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(ZOO))
def test_per_sample_gradients_equal_a_loop_over_samples(name, dtype):
    model, twin, batches, output = make(name, dtype)
    model.train()  # the instrument must evaluate in eval mode and restore train mode
    before = snapshot(model)
    result = per_sample_gradients(model, CE, batches, output=output)
    assert_unchanged(model, before)
    reference = loop_gradients(twin, batches, output)
    assert result.gradients.dtype == dtype
    torch.testing.assert_close(result.gradients.double(), reference, **_tolerance(dtype, reference))
    if dtype == torch.float64:  # in float32 the LSTM runs a oneDNN kernel that vmap runs by a slow fallback
        assert result.method == EXPECTED_METHOD.get(name, "vmap")
    if name not in ("lstm", "gru"):  # vmap has no batching rule for the recurrent kernels
        torch.testing.assert_close(_vmap_gradients(twin, batches, output), reference, rtol=1e-10, atol=1e-12)
    chunked = per_sample_gradients(model, CE, batches, output=output, chunk_size=2)
    torch.testing.assert_close(chunked.gradients, result.gradients, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["mlp_inplace", "conv_bn_inplace", "resnet", "tied_embedding", "lstm"])
def test_fisher_and_diffusion_inherit_exactness(name):
    """diag I = (1/N) Σ (g_k − ḡ)² and the spectrum of D = (1/N) Cᵀ C from the loop's gradients."""
    model, twin, batches, output = make(name, torch.float64, n=9)
    reference = loop_gradients(twin, batches, output)
    centred = reference - reference.mean(dim=0)
    fisher = fisher_diagonal(model, CE, batches, output=output, chunk_size=3)
    torch.testing.assert_close(fisher.diagonal, (centred**2).mean(dim=0), rtol=1e-10, atol=1e-14)
    dense = torch.linalg.eigvalsh(centred.T @ centred / centred.shape[0]).flip(0)
    spectrum = diffusion_spectrum(model, CE, batches, output=output)
    top = spectrum.eigenvalues[: spectrum.rank]
    torch.testing.assert_close(top, dense[: spectrum.rank], rtol=1e-9, atol=1e-12)
    assert spectrum.rank == int((dense > dense[0] * dense.numel() * 2.2e-16).sum())


def test_batchnorm_in_train_mode_is_refused_for_every_consumer():
    model, _, batches, _ = make("resnet")
    before = snapshot(model)
    for instrument in (per_sample_gradients, fisher_diagonal, diffusion_spectrum):
        with pytest.raises(ValueError, match="Invalid train: True with BatchNorm"):
            instrument(model, CE, batches, train=True)
    assert_unchanged(model, before)


def test_output_selection_errors_name_the_choices():
    model, _, batches, _ = make("dict_output")
    with pytest.raises(ValueError, match=r"Invalid output: None, but the model returned dict with keys"):
        per_sample_gradients(model, CE, batches)
    with pytest.raises(ValueError, match=r"'scores' is not a key of the model's dict with keys"):
        per_sample_gradients(model, CE, batches, output="scores")
    tuple_model, _, batches, _ = make("tuple_output")
    with pytest.raises(ValueError, match=r"index 5 does not select from the model's tuple of length 2"):
        per_sample_gradients(tuple_model, CE, batches, output=5)
    with pytest.raises(ValueError, match=r"Invalid output: 1\.5"):
        per_sample_gradients(tuple_model, CE, batches, output=1.5)


def test_loop_fallback_reports_the_models_own_error():
    """A model that fails outside vmap too raises its own error, not a vmap error."""
    model, _, batches, _ = make("lstm")
    bad = [(x[..., :2], y) for x, y in batches]  # wrong feature size for the LSTM
    with pytest.raises(RuntimeError, match=r"input.size\(-1\) must be equal to input_size"):
        per_sample_gradients(model, CE, bad)


@pytest.mark.parametrize("mode", ["auto", "double", "forward", "reverse"])
@pytest.mark.parametrize("name", list(ZOO))
def test_hessian_vector_products_and_exact_hessian_equal_double_backward_oracle(name, mode):
    """Every HVP mode, matvec and matmat (vmap, or the column loop where vmap cannot run) and the exact
    Hessian, against ``torch.autograd.functional.hessian`` of the in-place-free float64 twin."""
    model, _, batches, output = make(name)
    oracle = cached_hessian(name)
    before = snapshot(model)
    op = HessianOperator(model, CE, batches, mode=mode, output=output)
    v = torch.randn(op.dim, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(op.matvec(v[:, 0]), oracle @ v[:, 0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(op.matmat(v, chunk_size=2), oracle @ v, rtol=1e-10, atol=1e-12)
    exact = exact_hessian(model, CE, batches, mode=mode, output=output)
    torch.testing.assert_close(exact.matrix, oracle, rtol=1e-10, atol=1e-12)
    assert_unchanged(model, before)


@pytest.mark.parametrize("name", ["mlp_inplace", "resnet", "tied_embedding", "lstm", "dict_output"])
def test_float32_hessian_vector_products_match_the_float64_oracle(name):
    model, _, batches, output = make(name, torch.float32)
    oracle = cached_hessian(name)
    v = torch.randn(oracle.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = oracle @ v
    for mode in ("auto", "double", "reverse"):
        hv = HessianOperator(model, CE, batches, mode=mode, output=output).matvec(v.float())
        assert hv.dtype == torch.float32
        torch.testing.assert_close(hv.double(), expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_train_mode_batchnorm_hessian_of_a_resnet():
    """Train mode: the Hessian of the loss with batch statistics (per batch), every mode."""
    model, _, batches, _ = make("resnet")
    oracle = cached_hessian("resnet", train=True)
    v = torch.randn(oracle.shape[0], 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    before = snapshot(model)
    for mode in ("auto", "double", "forward", "reverse"):
        op = HessianOperator(model, CE, batches, train=True, mode=mode)
        torch.testing.assert_close(op.matmat(v), oracle @ v, rtol=1e-10, atol=1e-12)
    assert_unchanged(model, before)


def test_forward_mode_on_a_kernel_without_forward_derivative_is_a_clear_error():
    """float32 LSTMs run a oneDNN kernel with no forward-mode rule: ``auto`` picks double backward, an
    explicit ``mode="forward"`` says what to use instead."""
    model, _, batches, _ = make("lstm", torch.float32)
    assert HessianOperator(model, CE, batches).mode == "double"
    op = HessianOperator(model, CE, batches, mode="forward")
    with pytest.raises(ValueError, match="Invalid mode: 'forward' cannot differentiate this model"):
        op.matvec(torch.ones(op.dim))


def _twin_loss(twin, batches, output, vector: torch.Tensor) -> float:
    """f at the flat parameter vector, on the in-place-free float64 twin (eval mode)."""
    twin = twin.eval()
    named = [(k, p) for k, p in twin.named_parameters()]
    params, start = {}, 0
    for k, p in named:
        params[k] = vector[start : start + p.numel()].view_as(p)
        start += p.numel()
    n = sum(x.shape[0] for x, _ in batches)
    total = 0.0
    for x, y in batches:
        x = x.double() if x.is_floating_point() else x
        raw = functional_call(twin, {**dict(twin.named_buffers()), **params}, (x,))
        total += float(CE(pick(raw, output), y)) * x.shape[0] / n
    return total


@pytest.mark.parametrize("name", ["mlp_inplace", "resnet", "tied_embedding", "lstm", "dict_output"])
def test_slices_width_and_gradient_norm_on_real_models(name):
    """float32 models: loss slices (loop and vmap) against the float64 twin, Local Entropy's vectorized
    chains against chain-by-chain evaluation, and ‖∇f‖ against the loop's mean per-sample gradient."""
    from deeplandscape.analysis.slices import loss_line, random_direction
    from deeplandscape.analysis.trajectory import TrajectoryRecorder, full_gradient_norm
    from deeplandscape.analysis.width import local_entropy

    model, twin, batches, output = make(name, torch.float32)
    before = snapshot(model)
    direction = random_direction(model, seed=0)
    x0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    alphas = [-0.5, 0.0, 0.5]
    expected = [_twin_loss(twin, batches, output, x0 + a * direction.double()) for a in alphas]
    for vectorize in (False, True):
        line = loss_line(model, CE, batches, direction, alphas, output=output, vectorize=vectorize)
        torch.testing.assert_close(
            torch.tensor(line.losses), torch.tensor(expected).double(), rtol=1e-5, atol=1e-6
        )
    kwargs = {"n_chains": 2, "n_nodes": 2, "n_steps": 3, "burnin": 2, "seed": 0, "output": output}
    chains = [local_entropy(model, CE, batches, 1e-3, vectorize=v, **kwargs) for v in (True, False)]
    assert chains[0].loss == pytest.approx(expected[1], rel=1e-5)
    assert chains[0].value == pytest.approx(chains[1].value, rel=1e-4)
    mean_gradient = loop_gradients(twin, batches, output).mean(dim=0)
    norm = full_gradient_norm(model, CE, batches, output=output)
    assert norm == pytest.approx(float(mean_gradient.norm()), rel=1e-5)
    recorder = TrajectoryRecorder(model, loss_fn=CE, data=batches, output=output)
    recorder.record()
    assert recorder.trajectory().grad_norms[0] == pytest.approx(norm, rel=1e-6)
    assert_unchanged(model, before)


def test_width_refuses_train_mode_dropout():
    """With train-mode Dropout the loss is random: Local Entropy's Metropolis test would compare two
    different functions; a clear error instead."""
    from deeplandscape.analysis.width import local_entropy, robust_width

    model, _, batches, _ = make("mlp_inplace")
    with pytest.raises(ValueError, match=r"Invalid train: True with Dropout \(module 6\)"):
        local_entropy(model, CE, batches, 1e-3, train=True)
    with pytest.raises(ValueError, match="Invalid train: True with Dropout"):
        robust_width(model, CE, batches, 0.1, [1e-3], train=True)
    with pytest.raises(ValueError, match="Invalid train: True with Dropout"):
        HessianOperator(model, CE, batches, train=True)


def test_batchnorm_without_running_statistics_is_refused_in_eval_mode_too():
    """track_running_stats=False: BatchNorm uses batch statistics in eval mode as well."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3, track_running_stats=False), torch.nn.Flatten(),
        torch.nn.Linear(48, 3),
    ).double()  # fmt: skip
    x, y = torch.randn(5, 2, 6, 6, dtype=torch.float64), torch.randint(0, 3, (5,))
    for instrument in (per_sample_gradients, fisher_diagonal, diffusion_spectrum):
        with pytest.raises(ValueError, match="BatchNorm module 1 has no running statistics"):
            instrument(model, CE, (x, y))
