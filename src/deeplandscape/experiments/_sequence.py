"""The character task of the comparisons (:class:`~._compare.Task`): character models scored by perplexity
(Thesis §3.3.1, §3.3.5, Table 3.1), and the halving step-size schedule of the char-LSTM runs (§3.3.5).

The task: next-character prediction on windows of T characters, trained on the mean cross-entropy per
character; the score is the perplexity ``exp(mean cross-entropy per character)`` of the split, the figure of
Thesis Table 3.1 for char-LSTM. A window counts as one sample in the effective epochs. Runs use the protocol
of :func:`deeplandscape.experiments._compare.run_method` with ``task=CHARS``; the halving schedule is passed
as its ``schedule`` (an LR scheduler stepped once after every optimizer step, acting on every group's
``lr``: the outer step size η′ of Entropy-Adam, the step size of Adam).

For the character task the fields of :class:`~._compare.Curves` named ``*_error`` hold perplexities, so the
``error_mean`` of :func:`~._compare.run_rows` is the test perplexity; :func:`metric_of` says which.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from deeplandscape import data as dl_data
from deeplandscape.experiments import _compare as C

CHAR_MODELS = ("char-lstm", "char-lstm-2x128")


def is_char_model(name: str) -> bool:
    """Whether ``name`` is a character model (input: symbol indices; scored by perplexity)."""
    return name in CHAR_MODELS


def metric_of(model_name: str) -> str:
    """``"perplexity"`` for the character models, ``"error %"`` for the classifiers."""
    return "perplexity" if is_char_model(model_name) else "error %"


# ---------------------------------------------------------------------------------------------- task


def sequence_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy per character of logits (batch, T, V) against symbol indices (batch, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


@torch.no_grad()
def evaluate_sequence(model: nn.Module, d: C.Tensors) -> dict[str, float]:
    """Training loss (mean cross-entropy per character) and the perplexities ``exp(mean cross-entropy per
    character)`` of the training, validation and test windows, in evaluation mode.

    The keys are those of :func:`~._compare.evaluate` (``*_error`` hold perplexities, ``test_per_sample``
    each test window's cross-entropy per character). Windows have equal length, so the mean over windows
    is the mean per character.
    """
    was_training = model.training
    model.eval()
    try:

        def per_window(x: Tensor, y: Tensor) -> np.ndarray:
            """Each window's cross-entropy per character."""
            losses = []
            for xb, yb in zip(x.split(C.EVAL_BATCH), y.split(C.EVAL_BATCH), strict=True):
                out = model(xb)
                ce = F.cross_entropy(out.reshape(-1, out.shape[-1]), yb.reshape(-1), reduction="none")
                losses.append(ce.reshape(yb.shape).double().mean(1).numpy())
            return np.concatenate(losses)

        train_loss = float(per_window(d.x, d.y).mean())
        test = per_window(d.x_test, d.y_test)
        return {
            "train_loss": train_loss,
            "train_error": math.exp(train_loss),
            "val_error": math.exp(float(per_window(d.x_val, d.y_val).mean())),
            "test_error": math.exp(float(test.mean())),
            "test_per_sample": test,
        }
    finally:
        model.train(was_training)


CHARS = C.Task("perplexity", sequence_cross_entropy, evaluate_sequence, "reverse")


def load_text(config: dict[str, Any]) -> tuple[C.Tensors, int]:
    """Windows of ``config['seq_len']`` characters of the text at ``config['text_path']`` (else the
    generated text of ``config['text_lines']`` lines of 32 characters, Thesis §3.3.1), split 80/10/10 with
    seed 0; returns the tensors and the vocabulary size."""
    splits = dl_data.load(
        "chars", config["text_path"] or None, seq_len=config["seq_len"], lines=config["text_lines"], seed=0
    )
    tensors = C.Tensors(
        splits.train.x, splits.train.y, splits.val.x, splits.val.y, splits.test.x, splits.test.y
    )
    return tensors, splits.num_classes


# ---------------------------------------------------------------------------------------------- training


def halving(every: float, steps_per_epoch: int, evaluations_per_step: int = 1) -> Callable[[int], float]:
    """The factor ``0.5 ** ⌊e / every⌋`` of a step size that halves every ``every`` effective epochs, with
    ``e = k·t / steps_per_epoch`` the effective epochs after t steps of k gradient evaluations each (exact
    at the end of every pass over the data, which :func:`~._compare.batch_order` cuts into
    ``steps_per_epoch = ⌈N / B⌉`` batches)."""
    if not every > 0:
        raise ValueError(f"Invalid every: {every} (must be > 0 effective epochs)")

    def factor(t: int) -> float:
        return 0.5 ** math.floor(evaluations_per_step * t / steps_per_epoch / every + 1e-9)

    return factor
