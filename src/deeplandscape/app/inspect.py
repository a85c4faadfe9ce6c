"""``deeplandscape inspect``: a landscape report of any model, as a run of the runner.

Given a model factory and a data factory (``package.module:function`` importable from the current
directory, or ``path/to/file.py:function``), an optional checkpoint, a loss and the output of the model the
loss takes, inspect measures the loss landscape at the model's weights. It is an application like
``deeplandscape run``, built on the same machinery (:mod:`deeplandscape.app.runner`): its options are the
:class:`~deeplandscape.experiments.spec.Param` s of :data:`INSPECT` (a value for ``--quick`` and one
otherwise), validated by :func:`~deeplandscape.experiments.spec.resolve_config` before any instrument runs
(values, the factories imported and called, the checkpoint loaded, the output and the loss tried on the
first batch, the device, the memory of the exact Hessian and of D(x)); each instrument is a unit of work,
saved as it finishes, so ``--resume`` continues an interrupted inspect without redoing finished instruments;
the run directory is held, new or empty (or, with ``--resume``, the same inspect), and records the
configuration's digest. An instrument that fails is reported (in the report and ``results.json``, with its
error) and the others run. The run directory holds

    config.json, results.json, timing.json, landscape.npz (the arrays behind the figures), the figures,
    report.md, report.html and report.json, as every run

with, for the Hessian H of the data-set loss: its spectral density by stochastic Lanczos quadrature, the
top and bottom eigenvalues by Lanczos (with residuals), the index and normalized index (|λ| ≤ threshold
counts as zero, Choromanska et al. §5.1), arithmetic and harmonic means, Hutchinson's trace with its
standard error, and the exact spectrum when the model is small; the diagonal of the empirical Fisher
(Thesis §3.3.1); the spectrum, rank, mean and standard deviation of the mini-batch diffusion matrix D(x)
(Thesis Lemma 6.3, §6.3.2); Local Entropy at a few scopes γ and the robust width γ* (Thesis Def. 3.3,
Def. 4.20); filter-normalized 1-D and 2-D loss slices (Li et al. 2018) and the slice along the top Hessian
eigenvector. The model is evaluated in eval mode unless ``--train-mode``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeplandscape.analysis._model import (
    Batch,
    Output,
    _describe,
    as_batches,
    preserved,
    select_output,
    trainable_parameters,
)
from deeplandscape.app import _instruments as instruments
from deeplandscape.app._instruments import INSTRUMENTS, Target
from deeplandscape.experiments.spec import (
    ConfigError,
    Experiment,
    Figure,
    Param,
    Table,
    Unit,
    UnitResult,
    resolve_config,
    show,
)
from deeplandscape.rundir import check_memory, save_npz

LOSSES: dict[str, Callable[[], nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss,
    "nll": nn.NLLLoss,
    "bce_logits": nn.BCEWithLogitsLoss,
}
DTYPES = {"float32": torch.float32, "float64": torch.float64}

# The options, as the runner's parameters; `--quick` is the "quick" scale, and the default scale otherwise.
PARAMS: dict[str, Param] = {
    "model": Param("str", "", "model factory: package.module:function or path/to/file.py:function"),
    "data": Param("str", "", "data factory (batches, a DataLoader or one batch), as --model"),
    "model_kwargs": Param("str", "{}", "JSON object of keyword arguments for --model"),
    "data_kwargs": Param("str", "{}", "JSON object of keyword arguments for --data"),
    "checkpoint": Param("str", "", "state_dict file (torch.save) to load into the model; none by default"),
    "output": Param(
        "str", "", "the tensor the loss takes from a model with dict or tuple outputs: a key or an index"
    ),
    "loss": Param("str", "cross_entropy", "loss (mean reduction)", choices=tuple(sorted(LOSSES))),
    "dtype": Param("str", "float64", "evaluation precision", choices=tuple(sorted(DTYPES))),
    "device": Param("str", "cpu", "torch device: cpu, cuda[:N] or mps"),
    "train_mode": Param("bool", False, "evaluate in train mode (BatchNorm batch statistics, Dropout)"),
    "skip": Param("str", "", f"instruments to leave out, among {', '.join(INSTRUMENTS)}"),
    "threshold": Param("float", 1e-3, "|λ| at or below which an eigenvalue counts as 0", low=0),
    "exact_max": Param("int", 2000, "exact Hessian spectrum up to this many parameters d", low=0),
    "top_k": Param("int", 5, "Lanczos eigenvalues at each end", quick=3, low=1),
    "slq_probes": Param("int", 8, "SLQ random probes", quick=2, low=1),
    "slq_steps": Param("int", 60, "Lanczos steps per SLQ probe (at most d)", quick=20, low=1),
    "trace_probes": Param("int", 50, "Hutchinson probes", quick=10, low=1),
    "noise_samples": Param("int", 512, "samples N for D(x) (the first N of the data)", quick=64, low=2),
    "lr": Param("float", 0.0, "SGD learning rate η, to report β⁻¹ = η/(2b); 0: not reported", low=0),
    "gammas": Param(
        "floats", [1e-4, 1e-3, 1e-2, 1e-1], "Local Entropy scopes γ (increasing)", quick=[1e-3, 1e-2], low=0
    ),
    "epsilon": Param("float", 0.01, "tolerance ε of the robust width", low=0),
    "width_chains": Param("int", 4, "Langevin replicates", quick=2, low=2),
    "width_steps": Param("int", 100, "Langevin steps after burn-in", quick=20, low=1),
    "width_burnin": Param("int", 50, "Langevin burn-in steps", quick=10, low=0),
    "width_nodes": Param("int", 6, "quadrature nodes in s", quick=3, low=1),
    "line_points": Param("int", 41, "points of the 1-D slices", quick=11, low=3),
    "plane_points": Param("int", 21, "points per axis of the 2-D slice", quick=5, low=3),
    "span": Param("float", 1.0, "the slices cover α, β ∈ [−span, span]", low=0),
}


def flag(key: str) -> str:
    """The command-line option of a parameter: ``--exact-max`` for ``exact_max``."""
    return "--" + key.replace("_", "-")


# ------------------------------------------------------------------------------------------ validation


def _skipped(config: dict[str, Any]) -> list[str]:
    names = [name.strip() for name in config["skip"].split(",") if name.strip()]
    unknown = [name for name in names if name not in INSTRUMENTS]
    if unknown or len(set(names)) != len(names):
        raise ConfigError(
            f"Invalid --skip: {' '.join(names)!r} (names among {', '.join(INSTRUMENTS)}, each at most once)"
        )
    return names


def _check_values(config: dict[str, Any]) -> None:
    """What the parameters' types and ranges do not say: strict bounds, order, JSON, the device."""
    _skipped(config)
    for key in ("model", "data"):
        if not config[key]:
            raise ConfigError(f"Invalid {flag(key)}: none given; expected 'package.module:function'")
    gammas = config["gammas"]
    if any(g <= 0 for g in gammas) or sorted(gammas) != list(gammas):
        raise ConfigError(f"Invalid --gammas: {show(gammas)}; must be increasing finite values > 0")
    for key in ("epsilon", "span"):
        if config[key] <= 0:
            raise ConfigError(f"Invalid {flag(key)}: {config[key]!r}; must be a finite value > 0")
    for key in ("model_kwargs", "data_kwargs"):
        _json_object(config[key], flag(key))
    _device(config["device"])


def _json_object(text: str, name: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"Invalid {name}: {text!r} is not JSON ({error})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"Invalid {name}: {text!r}; expected a JSON object")
    return value


def _device(text: str) -> torch.device:
    """``--device`` as a torch device that exists on this machine; ``ValueError`` naming it otherwise."""
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"Invalid --device: {text!r} ({error})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ConfigError(f"Invalid --device: {text!r}: {why}; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"Invalid --device: {text!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"Invalid --device: {text!r}: MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"Invalid --device: {text!r}; allowed: cpu, cuda[:N], mps")
    return device


# ------------------------------------------------------------------------------------------ the user's code


@contextlib.contextmanager
def _importable_from(directory: str) -> Iterator[None]:
    """``directory`` first on ``sys.path`` for the block (as ``python -m`` puts the current directory)."""
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)


def load_callable(spec: str, name: str) -> Callable:
    """Import ``package.module:function`` (the current directory first on the path) or
    ``path/to/file.py:function``; ``ValueError`` naming the option if that fails."""
    where, _, attr = spec.rpartition(":") if isinstance(spec, str) else ("", "", "")
    if not where or not attr:
        raise ConfigError(
            f"Invalid {name}: {spec!r}; expected 'package.module:function' or 'path/to/file.py:function'"
        )
    if where.endswith(".py"):
        module = _module_from_file(Path(where), spec, name)
    else:
        try:
            with _importable_from(os.getcwd()):
                module = importlib.import_module(where)
        except ImportError as error:
            raise ConfigError(f"Invalid {name}: cannot import module {where!r} ({error})") from error
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"Invalid {name}: module {where!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"Invalid {name}: {spec!r} is not callable")
    return target


def _module_from_file(path: Path, spec: str, name: str) -> Any:
    """The module of a Python file, imported under a name of its own (its directory first on the path while
    it runs, so it imports its neighbours as a script would)."""
    if not path.is_file():
        raise ConfigError(f"Invalid {name}: {spec!r}: {path} is not a file")
    resolved = path.resolve()
    module_name = "deeplandscape_user_" + re.sub(r"\W", "_", str(resolved))
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"Invalid {name}: {spec!r}: {path} cannot be imported")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # before it runs: dataclasses and pickling look it up there
    try:
        with _importable_from(str(resolved.parent)):
            loader_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        raise ConfigError(
            f"Invalid {name}: importing {path} raised {type(error).__name__}: {error}"
        ) from error
    return module


def _call(factory: Callable, spec: str, kwargs: dict, option: str) -> Any:
    """``factory(**kwargs)``, with the keywords checked against its signature first; a failure is a
    ``ValueError`` naming ``option`` (the factory is the user's code: its error is part of the message)."""
    from inspect import signature

    try:
        signature(factory).bind(**kwargs)
    except TypeError as error:
        raise ConfigError(
            f"Invalid {option}-kwargs: {spec} does not accept {json.dumps(kwargs)} ({error})"
        ) from None
    except ValueError:  # no signature to check (a builtin): the call decides
        pass
    try:
        with _importable_from(os.getcwd()):
            return factory(**kwargs)
    except Exception as error:
        raise ConfigError(
            f"Invalid {option}: {spec}(**{json.dumps(kwargs)}) raised {type(error).__name__}: {error}"
        ) from error


def _load_checkpoint(model: nn.Module, path: str) -> None:
    if not Path(path).is_file():
        raise ConfigError(f"Invalid --checkpoint: {path!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file, or not one torch.save wrote: pickle, zip, EOF errors …
        raise ConfigError(
            f"Invalid --checkpoint: {path!r} cannot be read: it is damaged or not a file written by "
            f"torch.save ({type(error).__name__})"
        ) from error
    if isinstance(state, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ConfigError(f"Invalid --checkpoint: {path!r} holds a {type(state).__name__}, not a state_dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ConfigError(f"Invalid --checkpoint: {path!r} does not match the model ({error})") from error


def _prepare_data(raw: Any, dtype: torch.dtype, device: torch.device) -> list[Batch]:
    try:
        batches = as_batches(raw)
    except (ValueError, TypeError, AttributeError) as error:
        raise ConfigError(f"Invalid --data: the factory's data cannot be used ({error})") from None
    out = []
    for inputs, targets in batches:
        inputs = inputs.to(device, dtype) if inputs.is_floating_point() else inputs.to(device)
        targets = targets.to(device, dtype) if targets.is_floating_point() else targets.to(device)
        out.append((inputs, targets))
    return out


def _selector(text: str, raw: Any) -> Output:
    """``--output`` for a model's output ``raw``: ``None`` (nothing given), an index for a tuple or list,
    a key (or attribute name) otherwise."""
    if not text:
        return None
    if isinstance(raw, (tuple, list)):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(
                f"Invalid --output: {text!r}; the model returns a {_describe(raw)}: give an index"
            ) from None
    return text


def _check_output_and_loss(
    model: nn.Module, loss_fn: nn.Module, batch: Batch, text: str, train: bool
) -> Output:
    """Run the model on (up to 8 samples of) the first batch, select ``--output`` from what it returns and
    apply the loss: any mismatch is refused here, naming the option, before an instrument runs."""
    inputs, targets = batch[0][:8], batch[1][:8]
    with preserved(model, train=train), torch.no_grad():
        try:
            raw = model(inputs)
        except Exception as error:
            raise ConfigError(
                f"Invalid --model/--data: the model raised {type(error).__name__} on the first batch of the "
                f"data ({error})"
            ) from error
        selector = _selector(text, raw)
        if selector is None and not isinstance(raw, torch.Tensor):
            raise ConfigError(
                f"Invalid --output: none given, but the model returns a {_describe(raw)}; say which tensor "
                "the loss takes with --output KEY (a dict's key) or --output INDEX (a tuple's index)"
            )
        try:
            chosen = select_output(raw, selector)
        except ValueError as error:
            raise ConfigError(str(error).replace("Invalid output:", "Invalid --output:", 1)) from None
        try:
            loss = loss_fn(chosen, targets)
        except Exception as error:
            raise ConfigError(
                f"Invalid --loss: {type(loss_fn).__name__} cannot take the model's output of shape "
                f"{tuple(chosen.shape)} with targets of shape {tuple(targets.shape)} ({error})"
            ) from None
    if loss.dim() != 0:
        raise ConfigError(f"Invalid --loss: it gives a tensor of shape {tuple(loss.shape)}, not a mean")
    return selector


_TARGETS: dict[str, Target] = {}  # the last target built, by what it was built from


def target_of(config: dict[str, Any]) -> Target:
    """The model, data, loss and output of ``config``, built once per configuration and process (the
    validation builds it; the instruments reuse it). Every failure is a :class:`ConfigError` naming its
    option."""
    keys = (
        "model",
        "model_kwargs",
        "data",
        "data_kwargs",
        "checkpoint",
        "output",
        "loss",
        "dtype",
        "device",
        "train_mode",
    )
    checkpoint = Path(config["checkpoint"]) if config["checkpoint"] else None
    stamp = checkpoint.stat().st_mtime_ns if checkpoint is not None and checkpoint.is_file() else None
    key = json.dumps([os.getcwd(), stamp, *(config[k] for k in keys)])
    if key not in _TARGETS:
        _TARGETS.clear()
        _TARGETS[key] = _build_target(config)
    return _TARGETS[key]


def _build_target(config: dict[str, Any]) -> Target:
    dtype, device = DTYPES[config["dtype"]], _device(config["device"])
    model_factory = load_callable(config["model"], "--model")
    data_factory = load_callable(config["data"], "--data")
    model = _call(
        model_factory, config["model"], _json_object(config["model_kwargs"], "--model-kwargs"), "--model"
    )
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"Invalid --model: {config['model']!r} returned a {type(model).__name__}, not an nn.Module"
        )
    if config["checkpoint"]:
        _load_checkpoint(model, config["checkpoint"])
    model = model.to(device, dtype)
    raw_data = _call(
        data_factory, config["data"], _json_object(config["data_kwargs"], "--data-kwargs"), "--data"
    )
    batches = _prepare_data(raw_data, dtype, device)
    loss_fn = LOSSES[config["loss"]]()
    output = _check_output_and_loss(model, loss_fn, batches[0], config["output"], config["train_mode"])
    try:
        d = sum(p.numel() for p in trainable_parameters(model).values())
    except ValueError as error:
        raise ConfigError(f"Invalid --model: {error}") from None
    n = sum(len(x) for x, _ in batches)
    return Target(model, loss_fn, batches, output, config["train_mode"], d, n)


def _check_memory(config: dict[str, Any], target: Target) -> None:
    """Refuse, before any instrument runs, sizes whose largest allocation exceeds the memory limit: the
    dense Hessian (about 5·d² numbers: the identity, the product, its transpose, the symmetrized matrix and
    the eigensolver's copy) and the N × d per-sample gradients of D(x) (twice, with the Gram matrix)."""
    d, itemsize, skipped = target.num_parameters, DTYPES[config["dtype"]].itemsize, _skipped(config)
    if "spectrum" not in skipped and d <= config["exact_max"]:
        check_memory("--exact-max", config["exact_max"], 5 * d * d * itemsize, f"the exact Hessian (d = {d})")
    if "noise" not in skipped:
        samples = min(config["noise_samples"], target.num_samples)
        need = (2 * samples * d + min(samples, d) ** 2) * itemsize
        what = f"D(x) from {samples} per-sample gradients"
        check_memory("--noise-samples", config["noise_samples"], need, what)


# ------------------------------------------------------------------------------------------ the run


def _unit_keys(config: dict[str, Any]) -> list[str]:
    return ["loss", *(name for name in INSTRUMENTS if name not in _skipped(config))]


def units(config: dict[str, Any]) -> list[Unit]:
    """One unit per instrument (after the loss at the weights), once every input is validated: the values,
    the model, checkpoint, data, output and loss (:func:`target_of`), BatchNorm in train mode, memory."""
    _check_values(config)
    target = target_of(config)
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in target.model.modules())
    if config["train_mode"] and has_batchnorm and not {"fisher", "noise"} <= set(_skipped(config)):
        raise ConfigError(
            "Invalid --train-mode: the model has BatchNorm, and the per-sample gradients of the Fisher "
            "diagonal and of D(x) need eval mode (a batch of one has no batch statistics); "
            "add --skip fisher noise or drop --train-mode"
        )
    _check_memory(config, target)
    return [Unit(key, {}) for key in _unit_keys(config)]


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    target = target_of(config)
    if unit.key == "loss":
        return instruments.loss_at_weights(target, config)
    return instruments.COMPUTE[unit.key](target, config)


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    """``results.json`` (the loss, d and N at the top, one entry per instrument, ``failed``: the error of
    each instrument that failed), ``landscape.npz`` (every instrument's arrays) and the figures."""
    summary: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    for key, result in zip(_unit_keys(config), results, strict=True):
        if set(result.values) == {"error"}:
            failed[key] = result.values["error"]
        elif key == "loss":
            summary.update(result.values)
        else:
            summary[key] = dict(result.values)
            arrays.update(result.arrays)
    line = summary.get("spectrum", {}).pop("eigen_line", None)
    if line is not None and "slices" in summary:  # the top eigenvector's slice is drawn with the others
        summary["slices"]["eigen_line_losses"] = line["losses"]
        summary["slices"]["eigen_line_distances"] = line["distances"]
    else:
        arrays.pop("eigen_line_losses", None)
    if failed:
        summary["failed"] = failed
    if arrays:
        save_npz(out / "landscape.npz", **arrays)
    draw = {
        "spectrum": instruments.spectrum_figure,
        "fisher": instruments.fisher_figure,
        "noise": instruments.noise_figure,
        "width": instruments.width_figure,
    }
    for key, figure in draw.items():
        if key in summary:
            figure(summary[key], arrays, out)
    if "slices" in summary:
        eigen = {"losses": summary["slices"]["eigen_line_losses"]} if line is not None else None
        instruments.slices_figure(summary["slices"], arrays, out, eigen)
    return summary


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    """The model's table, then one per instrument that finished."""
    checkpoint = config["checkpoint"] or "none (the factory's weights)"
    rows = [
        ("model", f"{config['model']} {config['model_kwargs']}"),
        ("data", f"{config['data']} {config['data_kwargs']}"),
        ("checkpoint", checkpoint),
        (
            "loss",
            f"{config['loss']} of the output {config['output']!r}" if config["output"] else config["loss"],
        ),
        (
            "mode, precision, device",
            f"{'train' if config['train_mode'] else 'eval'}, {config['dtype']}, {config['device']}",
        ),
    ]
    if "loss" in results:
        rows += [
            ("trainable parameters d", str(results["num_parameters"])),
            ("samples N", str(results["num_samples"])),
            ("loss at the weights", f"{results['loss']:.6g}"),
        ]
    found = [Table("model", "The model", ("item", "value"), tuple(rows))]
    return found + [
        table(results[key], config) for key, table in instruments.TABLES.items() if key in results
    ]


FIGURES = (
    Figure(
        "hessian_spectrum.png",
        "Hessian spectral density by SLQ, the exact eigenvalues (histogram, up to --exact-max parameters) "
        "and the Lanczos extremes (red)",
    ),
    Figure("fisher_diagonal.png", "Histogram of the Fisher diagonal entries (log10)"),
    Figure(
        "diffusion_spectrum.png",
        "Eigenvalues of the mini-batch diffusion matrix D(x) above its rank threshold",
    ),
    Figure("width.png", "Local Entropy excess f_γ(x) − f(x) against the scope γ, with the tolerance ε"),
    Figure("slice_1d.png", "1-D loss slices: a filter-normalized random direction and the top eigenvector"),
    Figure("slice_2d.png", "2-D filter-normalized loss slice"),
)

INSPECT = Experiment(
    name="inspect",
    description="the landscape of a model: Hessian spectrum, Fisher diagonal, mini-batch noise D(x), width, "
    "loss slices",
    reproduces="Choromanska et al. §5.1 (index); Thesis §3.3.1 (Fisher), Lemma 6.3 (D(x)), Def. 3.3 and "
    "Def. 4.20 (width); Li et al. 2018 (slices)",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    tables=tables,
    figures=FIGURES,
)


def command_of(config: dict[str, Any], out: Path) -> str:
    """The ``deeplandscape inspect`` command line that writes this run into ``out``."""
    scale = config["scale"]
    parts = ["deeplandscape", "inspect", *(["--quick"] if scale == "quick" else [])]
    for key, param in PARAMS.items():
        value = config[key]
        if value == param.at(scale):
            continue
        if param.kind == "bool":
            parts.append(flag(key))
        elif isinstance(value, list):
            parts += [flag(key), *map(show, value)]
        elif key == "skip":
            parts += [flag(key), *_skipped(config)]
        else:
            parts += [flag(key), show(value)]
    return shlex.join([*parts, "--seed", str(config["seed"]), "--out", str(out)])


# ------------------------------------------------------------------------------------------ command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``inspect`` options to ``parser``: one per parameter of :data:`PARAMS`, and the run's."""
    for key, param in PARAMS.items():
        defaults = f"default {show(param.default) or 'none'}"
        if param.quick is not None:
            defaults += f"; --quick: {show(param.quick)}"
        if param.choices is not None:
            defaults += f"; one of {', '.join(param.choices)}"
        text = f"{param.help} ({defaults})"
        if param.kind == "bool":
            parser.add_argument(flag(key), action="store_true", default=None, help=text)
        elif key in ("skip", "gammas"):
            many = {"nargs": "*", "metavar": "NAME"} if key == "skip" else {"nargs": "+", "metavar": "GAMMA"}
            parser.add_argument(flag(key), default=None, help=text, **many)
        else:
            parser.add_argument(flag(key), default=None, required=key in ("model", "data"), help=text)
    parser.add_argument("--out", default=None, help="run directory (default runs/inspect-<time>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random probe and direction")
    parser.add_argument("--quick", action="store_true", help="small sizes everywhere, for smoke tests")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted inspect in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--json", action="store_true", help="print the run directory and results as JSON")


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration of the parsed options, every input validated (nothing is written): each option
    given is checked under its own name, then :func:`resolve_config` checks the whole (:func:`units`)."""
    overrides = []
    for key, param in PARAMS.items():
        value = getattr(args, key, None)
        if value is None:
            continue
        text = ",".join(map(str, value)) if isinstance(value, list) else show(value)
        param.check(flag(key), param.parse(flag(key), text))
        overrides.append(f"{key}={text}")
    return resolve_config(INSPECT, "quick" if args.quick else "default", args.seed, overrides)


def run(args: argparse.Namespace) -> int:
    """Run ``deeplandscape inspect`` with parsed ``args`` (see :func:`add_arguments`).

    Returns 0, or 1 when an instrument failed (the others ran; the report says why). Every argument is
    validated before anything is written (:func:`resolve`); the run is the runner's
    (:func:`~deeplandscape.app.runner.run_into`), with ``keep_going``.
    """
    from deeplandscape.app.runner import run_into

    try:
        config = resolve(args)
        out, results = run_into(
            INSPECT,
            config,
            args.out,
            resume=args.resume,
            quiet=args.quiet,
            keep_going=True,
            command=lambda where: command_of(config, where),
        )
    finally:
        _TARGETS.clear()  # the model and data are not kept beyond the command
    failed = results.get("failed", {})
    if args.json:
        document = {
            "run_dir": str(out),
            "report": str(out / "report.html"),
            "failed": failed,
            "results": results,
        }
        print(json.dumps(document, indent=2))
    else:
        print(f"run directory: {out}  (report: {out / 'report.html'})")
    for name, error in failed.items():
        print(f"inspect: {name} failed: {error} (the other instruments ran)", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m deeplandscape.app.inspect --model ... --data ...``, the same
    command as ``deeplandscape inspect`` (same options, same errors and exit statuses)."""
    from deeplandscape.cli import main as cli_main

    return cli_main(["inspect", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
