"""``entropy-sgd``: Entropy-SGD against SGD / Adam (and SAM) at the same budget of effective epochs; on the
character model, Entropy-Adam against Adam scored by perplexity.

Thesis §3.3.2, Table 3.1, Fig. 3.5: on MNIST, Entropy-SGD (L = 20 Langevin steps of size η = 0.1, outer
step η′ = 1, Nesterov momentum 0.9, scoping of γ; Thesis Alg. 2) reaches the error of Adam (lr 1e-3) —
1.37 ± 0.03% vs 1.39 ± 0.03% on mnistfc, 0.50 ± 0.01% vs 0.51 ± 0.01% on lenet — with error plotted
against *effective* epochs (one Langevin step costs one mini-batch gradient, so an outer step costs L).

Thesis §3.3.5, Table 3.1, Fig. 3.7b: a char-LSTM trained with Adam (lr 0.002, halved every 5 epochs) and
with Entropy-Adam (Adam on the Local Entropy direction x − z: η′ = 0.01 halved every epoch of L = 5 steps,
i.e. every 5 effective epochs, fixed γ = 100, β1 = 0.5), test perplexity 1.226 ± 0.01 @ 40 vs
1.217 ± 0.005 @ 25 effective epochs on War and Peace. Here the char-lstm of §3.3.1 (48 units) learns the
generated text of 256 lines of 32 characters (or a text file given by ``text_path``); the perplexity is
``exp(mean cross-entropy per character)`` of the split (:mod:`._sequence`).

The protocol (same initializations, batch orders, search budget; evaluation at the reference weights x;
Hessian top eigenvalue and trace at the solution) is :mod:`deeplandscape.experiments._compare`.
Below the paper scale Entropy-SGD runs without momentum (``entropy_momentum``; with the Thesis's 0.9 and
η′ = 1 its reference weights oscillate at these budgets: :data:`._compare.ENTROPY_MOMENTUM`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from deeplandscape import nets
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import _sequence as S
from deeplandscape.experiments._common import table
from deeplandscape.experiments._plot import save
from deeplandscape.experiments.spec import Experiment, Param, Unit, UnitResult
from deeplandscape.rundir import save_npz

METHODS = {
    "adam": C.Method("Adam", "adam", {"lr": 1e-3}),
    "sgd": C.Method("SGD", "sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    "entropy-sgd": C.Method("Entropy-SGD", "entropy-sgd", {"lr": 1.0, "inner_lr": 0.1, "L": 20, "alpha": 0.25,
                                                          "noise": 1e-6}, tune="inner_lr"),
    "sam": C.Method("SAM", "sam", {"rho": 0.05}, base="sgd",
                    base_kwargs={"lr": 0.1, "momentum": 0.9, "nesterov": True}),
}  # fmt: skip

#: Methods of the character models (Thesis §3.3.5): Adam (lr 0.002), Entropy-Adam (η′ = 0.01, L = 5, fixed
#: γ = 100, Adam's β1 = 0.5; inner Langevin step η = 0.1 and β^{-1} = 1e-8 as in §3.3.2–3.3.4, the tuned
#: knob is η′), SAM around Adam (lr 0.002).
CHAR_METHODS = {
    "adam": C.Method("Adam", "adam", {"lr": 2e-3}),
    "entropy-adam": C.Method("Entropy-Adam", "entropy-adam",
                             {"lr": 0.01, "inner_lr": 0.1, "L": 5, "gamma": 100.0, "scoping": 0.0,
                              "noise": 1e-8, "betas": (0.5, 0.999), "alpha": 0.25}),
    "sam": C.Method("SAM", "sam", {"rho": 0.05}, base="adam", base_kwargs={"lr": 2e-3}),
    "sgd": C.Method("SGD", "sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
}  # fmt: skip

#: Thesis Table 3.1: (Entropy-SGD / Entropy-Adam, its effective epochs, SGD / Adam, its effective epochs).
PAPER_TABLE = {
    "mnistfc": ("1.37 ± 0.03", 120, "1.39 ± 0.03", 66),
    "lenet": ("0.50 ± 0.01", 80, "0.51 ± 0.01", 100),
    "char-lstm": ("1.217 ± 0.005", 25, "1.226 ± 0.01", 40),
}
PAPER_TABLE["char-lstm-2x128"] = PAPER_TABLE["char-lstm"]

PAPER = (
    "Paper (Thesis Table 3.1, 5 runs on MNIST, 4 on War and Peace; error % or test perplexity @ effective "
    "epochs): mnistfc Entropy-SGD 1.37 ± 0.03 @ 120, Adam 1.39 ± 0.03 @ 66; lenet Entropy-SGD 0.50 ± 0.01 "
    "@ 80, Adam 0.51 ± 0.01 @ 100; char-LSTM (2×128 units, War and Peace) Entropy-Adam 1.217 ± 0.005 @ 25, "
    "Adam 1.226 ± 0.01 @ 40. The claim: Entropy-SGD reaches the baseline's error (no worse) — compare the "
    "test columns, and the Hessian columns for the width of the solutions each method finds."
)

PARAMS = C.data_params(
    entropy_momentum=C.ENTROPY_MOMENTUM,
    epochs=C.IMAGE_EPOCHS,
    seeds=C.TWO_SEEDS,
    models=Param("str", "mnistfc,lenet,char-lstm", "networks, comma-separated (char-lstm, char-lstm-2x128: "
                 "the character task)", quick="lenet,char-lstm", paper="mnistfc,lenet,char-lstm-2x128"),
    methods=Param("str", ",".join(METHODS), "methods of the image networks (" + ", ".join(METHODS) + ")"),
    char_methods=Param("str", "adam,entropy-adam,sam", "methods of the character networks ("
                       + ", ".join(CHAR_METHODS) + ")"),
    text_path=Param("str", "", "plain-text file for the character task (empty: 256 generated lines of 32 "
                    "characters, Thesis §3.3.1; War and Peace in §3.3.5)"),
    text_lines=Param("int", 256, "lines of generated text (without text_path)", low=3),
    seq_len=Param("int", 32, "characters per training window (unrolled time steps)", paper=50, low=1),
    seq_epochs=Param("float", 30.0, "budget of effective epochs of the character networks", quick=2.0,
                     low=0.01),
    seq_batch_size=Param("int", 16, "windows per mini-batch of the character networks", low=1),
    seq_halve_every=Param("float", 10.0, "the step sizes of the character networks halve every this many "
                          "effective epochs (0: constant)", paper=5.0, low=0.0),
)  # fmt: skip


def units(config: dict[str, Any]) -> list[Unit]:
    """One unit per (model, method): ``methods`` for the image networks, ``char_methods`` for the others."""
    out = []
    for model in C.names(config, "models", nets.available()):
        key, known = ("char_methods", CHAR_METHODS) if S.is_char_model(model) else ("methods", METHODS)
        chosen = C.names(config, key, list(known))
        out += [Unit(f"{model}-{m}", {"model": model, "method": m}) for m in chosen]
    return out


def run_char_method(config: dict[str, Any], model: str, method: C.Method) -> UnitResult:
    """A character model on the text of ``config`` with ``method``, step sizes halved every
    ``seq_halve_every`` effective epochs (:func:`._sequence.halving`)."""
    d, vocab = S.load_text(config)
    steps_per_epoch = math.ceil(len(d.y) / config["seq_batch_size"])
    every = config["seq_halve_every"]

    def schedule(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        k = getattr(optimizer, "gradient_evaluations_per_step", 1)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, S.halving(every, steps_per_epoch, k))

    return C.run_method(
        config, model, method, d=d, task=S.CHARS, net_kwargs={"vocab": vocab},
        schedule=schedule if every > 0 else None, epochs=config["seq_epochs"],
        batch_size=config["seq_batch_size"],
    )  # fmt: skip


def run_unit(config: dict[str, Any], unit: Unit, seed: int) -> UnitResult:
    model, key = unit.params["model"], unit.params["method"]
    if S.is_char_model(model):
        return run_char_method(config, model, CHAR_METHODS[key])
    return C.run_method(config, model, C.with_entropy_momentum(METHODS[key], config))


def char_protocol_text(config: dict[str, Any]) -> str:
    text = config["text_path"] or f"generated text of {config['text_lines']} lines of 32 characters"
    schedule = (
        f"step sizes (Adam's lr, Entropy-Adam's η′) halved every {config['seq_halve_every']:g} effective "
        "epochs"
        if config["seq_halve_every"] > 0
        else "constant step sizes"
    )
    return (
        f"Character networks: {text}, windows of {config['seq_len']} characters split 80/10/10, "
        f"mini-batches of {config['seq_batch_size']} windows, a budget of {config['seq_epochs']:g} effective "
        f"epochs, {schedule}. Scores are perplexities exp(mean cross-entropy per character); the training "
        "loss is the mean cross-entropy per character."
    )


def char_table(rows: list[dict[str, Any]]) -> str:
    return table(
        ["model", "method", "seeds", "test perplexity", "± std", "val perplexity", "train perplexity",
         "train loss", "effective epochs", "wall s", "Hessian top", "Hessian trace", "tuned knob × default"],
        [[r["model"], r["method"], r["seeds"], r["error_mean"], r["error_std"], r["val_error_mean"],
          r["train_error_mean"], r["train_loss_mean"], r["effective_epochs"], r["wall_seconds"],
          r["hessian_top"], r["hessian_trace"], f"{r['tuned']} × {r['factor']:g}"] for r in rows],
    )  # fmt: skip


def paper_table(rows: list[dict[str, Any]]) -> str:
    """Thesis Table 3.1 beside our test numbers (Entropy-SGD / Entropy-Adam and SGD / Adam)."""
    ours = {(r["model"], r["method"]): r for r in rows}

    def cell(model: str, method: str) -> str:
        r = ours.get((model, method))
        if r is None:
            return "—"
        return f"{r['error_mean']:.4g} ± {r['error_std']:.2g} @ {r['effective_epochs']:.3g}"

    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        if model not in PAPER_TABLE:
            continue
        pe, pe_ep, pb, pb_ep = PAPER_TABLE[model]
        entropy = "Entropy-Adam" if S.is_char_model(model) else "Entropy-SGD"
        out.append([model, S.metric_of(model), f"{pe} @ {pe_ep}", cell(model, entropy), f"{pb} @ {pb_ep}",
                    cell(model, "Adam"), cell(model, "SGD"), cell(model, "SAM")])  # fmt: skip
    return table(
        [
            "model",
            "metric",
            "paper Entropy-SGD/-Adam",
            "ours Entropy-SGD/-Adam",
            "paper SGD/Adam",
            "ours Adam",
            "ours SGD",
            "ours SAM",
        ],
        out,
    )


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> tuple[dict, str]:
    rows = C.run_rows(results)
    save_npz(
        out / "entropy_sgd.npz",
        **{f"{r.values['model']}_{r.values['method']}_{k}": a for r in results for k, a in r.arrays.items()},
    )
    images = [r for r in results if not S.is_char_model(r.values["model"])]
    chars = [r for r in results if S.is_char_model(r.values["model"])]
    body = []
    if images:
        save(C.plot_curves(images, "val_error", "validation error %"), out / "val_error.png")
        save(C.plot_curves(images, "train_loss", "training loss"), out / "train_loss.png")
        body += [
            C.protocol_text(config),
            C.runs_table([r for r in rows if r["metric"] == "error %"]),
        ]
    if chars:
        save(C.plot_curves(chars, "val_error", "validation perplexity"), out / "val_perplexity.png")
        save(C.plot_curves(chars, "train_loss", "training loss (per character)"), out / "char_train_loss.png")
        body += [char_protocol_text(config), char_table([r for r in rows if r["metric"] == "perplexity"])]
    body += [PAPER, paper_table(rows)]
    if images:
        body += ["![validation error](val_error.png)", "![training loss](train_loss.png)"]
    if chars:
        body += ["![validation perplexity](val_perplexity.png)", "![training loss](char_train_loss.png)"]
    return {"data": config["data"], "runs": rows}, "\n\n".join(body)


EXPERIMENT = Experiment(
    name="entropy-sgd",
    description="Entropy-SGD vs SGD / Adam / SAM (Entropy-Adam vs Adam on char-lstm), same effective epochs",
    reproduces="Thesis §3.3.2, §3.3.5, Table 3.1, Fig. 3.5, Fig. 3.7b",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    order=410,
)
