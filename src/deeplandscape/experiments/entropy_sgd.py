"""``entropy-sgd``: Entropy-SGD against SGD and Adam (and SAM) on the MNIST networks; on the character model,
Entropy-Adam against Adam scored by perplexity (Thesis §3.3.2, §3.3.5, Table 3.1, Fig. 3.5, Fig. 3.7b).

**The methods, as the authors ran them** (the optimizers' defaults are the authors' own settings; see
:class:`~deeplandscape.optim.EntropySGD` for the source of each):

- **Entropy-SGD**: L = 20 Langevin steps of size η = 0.1, thermal noise β⁻¹ = 1e-8, scope γ0 = 1e4
  shrinking by (1 − 10⁻³) per outer update, average z ← 0.75 z + 0.25 y, Nesterov momentum 0.9 in the inner
  loop (restarted each cycle), none on the outer step η′ = 1, which drops ÷10 after the second of its five
  epochs (§3.3.2; the authors' ``train.lua``: η′ = 1 for epochs 1–2, then 0.1) — here ÷10 at 40% of the run;
- **Adam** (the Thesis's baseline, §3.3.2): lr 1e-3 dropping ÷5 every 30 of its 100 epochs — here ÷5 at 30%,
  60% and 90% of the run;
- **SGD** with Nesterov momentum 0.9, lr 0.1 (the authors' ``train.lua`` baseline, ``L = 0``: 0.1 for
  epochs 1–60 of 100, then 0.02) — here ÷5 at 60% of the run; **SAM** (ρ = 0.05, not in the Thesis) around
  the same SGD;
- **char-LSTM** (§3.3.5): Adam (lr 0.002) and Entropy-Adam (η′ = 0.01, L = 5, fixed γ = 100, β1 = 0.5), both
  halved every 5 effective epochs in the Thesis (Adam every 5 of its epochs; Entropy-Adam at each of its
  epochs of L = 5), every ``seq_halve_every`` effective epochs here. Here the char-lstm of §3.3.1 (48 units)
  learns the generated text of 256 lines of 32 characters (or a text file given by ``text_path``); the
  perplexity is ``exp(mean cross-entropy per character)`` (:mod:`._sequence`).

The networks are those of Thesis §4.6 (mnistfc with dropout 0.2, lenet with dropout 0.25) for every method;
§3.3.2 trained its baseline with dropout 0.5 and lowered it for Entropy-SGD, which would make the
comparison one of networks as well as of optimizers.

**Budgets** are in effective epochs (Thesis §3.3.2: one outer update of L inner steps costs L), the same for
every method, and sized so that every method completes at least the number of its own updates that
:data:`._compare.MINIMUM_UPDATES` declares (Entropy-SGD and Entropy-Adam: 100 outer updates); a claim on a
method that completed fewer is not decidable. The protocol (same initializations, batch orders; evaluation
at the reference weights x; the width of every seed's solution in the Thesis's measure, Local Entropy) is
:mod:`deeplandscape.experiments._compare`; the decisions are :mod:`._verdicts`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from deeplandscape import nets
from deeplandscape.experiments import _compare as C
from deeplandscape.experiments import _sequence as S
from deeplandscape.experiments import _verdicts as V
from deeplandscape.experiments._plot import save
from deeplandscape.experiments.claims import Claim, PaperNumber, RunData, Verdict, all_of, decide
from deeplandscape.experiments.relaxation import SIMILAR_MARGIN, SIMILAR_SOURCE
from deeplandscape.experiments.spec import Experiment, Figure, Param, Table, Unit, UnitResult

SGD_SETTINGS = {"lr": 0.1, "momentum": 0.9, "nesterov": True}
METHODS = {
    "adam": C.Method("Adam", "adam", {"lr": 1e-3}, drops=(0.3, 0.6, 0.9), drop_factor=0.2),
    "sgd": C.Method("SGD", "sgd", SGD_SETTINGS, drops=(0.6,), drop_factor=0.2),
    "entropy-sgd": C.Method("Entropy-SGD", "entropy-sgd", tune="inner_lr", drops=(0.4,), drop_factor=0.1),
    "sam": C.Method("SAM", "sam", {"rho": 0.05}, base="sgd", base_kwargs=SGD_SETTINGS, drops=(0.6,),
                    drop_factor=0.2),
}  # fmt: skip

#: Methods of the character models (Thesis §3.3.5): Adam (lr 0.002), Entropy-Adam (the optimizer's
#: defaults: η′ = 0.01, L = 5, fixed γ = 100, β1 = 0.5; the tuned knob is η′), SAM around Adam, SGD.
CHAR_METHODS = {
    "adam": C.Method("Adam", "adam", {"lr": 2e-3}),
    "entropy-adam": C.Method("Entropy-Adam", "entropy-adam"),
    "sam": C.Method("SAM", "sam", {"rho": 0.05}, base="adam", base_kwargs={"lr": 2e-3}),
    "sgd": C.Method("SGD", "sgd", SGD_SETTINGS),
}

#: Thesis Table 3.1 (5 runs on MNIST, 4 on War and Peace): Entropy-SGD / Entropy-Adam and the baseline (Adam),
#: error % or test perplexity (mean, std), at effective epochs.
PAPER_TABLE = {
    ("mnistfc", "Entropy-SGD"): PaperNumber((1.37, 0.03), "Thesis Table 3.1", "@ 120 effective epochs"),
    ("mnistfc", "Adam"): PaperNumber((1.39, 0.03), "Thesis Table 3.1", "@ 66 effective epochs"),
    ("lenet", "Entropy-SGD"): PaperNumber((0.50, 0.01), "Thesis Table 3.1", "@ 80 effective epochs"),
    ("lenet", "Adam"): PaperNumber((0.51, 0.01), "Thesis Table 3.1", "@ 100 effective epochs"),
    ("char-lstm", "Entropy-Adam"): PaperNumber((1.217, 0.005), "Thesis Table 3.1", "@ 25 effective epochs"),
    ("char-lstm", "Adam"): PaperNumber((1.226, 0.01), "Thesis Table 3.1", "@ 40 effective epochs"),
}
for _method in ("Entropy-Adam", "Adam"):
    PAPER_TABLE["char-lstm-2x128", _method] = PAPER_TABLE["char-lstm", _method]

PARAMS = C.data_params(
    **C.protocol_params(),
    models=Param("str", "lenet,char-lstm", "networks, comma-separated (char-lstm, char-lstm-2x128: "
                 "the character task)", quick="lenet,char-lstm", reference="mnistfc,lenet,char-lstm",
                 paper="mnistfc,lenet,char-lstm-2x128"),
    methods=Param("str", "adam,sgd,entropy-sgd", "methods of the image networks (" + ", ".join(METHODS) + ")",
                  quick=",".join(METHODS), paper=",".join(METHODS)),
    char_methods=Param("str", "adam,entropy-adam", "methods of the character networks ("
                       + ", ".join(CHAR_METHODS) + ")", quick="adam,entropy-adam,sam"),
    text_path=Param("str", "", "plain-text file for the character task (empty: 256 generated lines of 32 "
                    "characters, Thesis §3.3.1; War and Peace in §3.3.5)"),
    text_lines=Param("int", 256, "lines of generated text (without text_path)", low=3),
    seq_len=Param("int", 32, "characters per training window (unrolled time steps)", paper=50, low=1),
    seq_epochs=Param("float", 40.0, "budget of effective epochs of the character networks", quick=2.0,
                     paper=50.0, low=0.01),
    seq_batch_size=Param("int", 16, "windows per mini-batch of the character networks", low=1),
    seq_halve_every=Param("float", 10.0, "the step sizes of the character networks halve every this many "
                          "effective epochs (0: constant)", paper=5.0, low=0.0),
)  # fmt: skip


def units(config: dict[str, Any]) -> list[Unit]:
    """One unit per (model, method): ``methods`` for the image networks, ``char_methods`` for the others."""
    C.width_settings(config)
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
    return C.run_method(config, model, METHODS[key])


# ---------------------------------------------------------------------------------------------- results


def finalize(config: dict[str, Any], results: list[UnitResult], out: Path) -> dict[str, Any]:
    npz = C.save_comparison("entropy-sgd", results, out)
    images = [r for r in results if not S.is_char_model(r.values["model"])]
    chars = [r for r in results if S.is_char_model(r.values["model"])]
    if images:
        save(C.plot_curves(images, "val_error", "validation error %"), out / "val_error.png")
        save(C.plot_curves(images, "train_loss", "training loss"), out / "train_loss.png")
    if chars:
        save(C.plot_curves(chars, "val_error", "validation perplexity"), out / "val_perplexity.png")
        save(C.plot_curves(chars, "train_loss", "training loss (per character)"), out / "char_train_loss.png")
    save(C.plot_width(results, config["width_gammas"]), out / "width.png")
    return {"data": config["data"], "npz": npz, "runs": C.run_rows(results), "width": V.width_summary(config)}


def char_protocol_text(config: dict[str, Any]) -> str:
    text = config["text_path"] or f"generated text of {config['text_lines']} lines of 32 characters"
    schedule = (
        f"step sizes (Adam's lr, Entropy-Adam's η′) halved every {config['seq_halve_every']:g} "
        "effective epochs"
        if config["seq_halve_every"] > 0
        else "constant step sizes"
    )
    return (
        f"Character networks: {text}, windows of {config['seq_len']} characters split 80/10/10, mini-batches "
        f"of {config['seq_batch_size']} windows, a budget of {C.budget(config, 'seq_epochs'):g} effective "
        f"epochs, {schedule}; scores are perplexities exp(mean cross-entropy per character)."
    )


def tables(results: dict[str, Any], config: dict[str, Any]) -> list[Table]:
    paper = {key: f"{number} {number.note}" for key, number in PAPER_TABLE.items()}
    errors = V.runs_table(results, config, paper, "Thesis Table 3.1 (% or perplexity)",
                          metric="test error % (perplexity for char-lstm)")  # fmt: skip
    note = f"{errors.note} {char_protocol_text(config)}" if "char" in config["models"] else errors.note
    return [Table(errors.id, errors.title, errors.header, errors.rows, note), V.width_table(results)]


# ---------------------------------------------------------------------------------------------- claims

BASELINES = ("SGD", "Adam")


def _better_baseline(run: RunData, model: str) -> str:
    """The baseline (of SGD and Adam) with the lower mean validation error on ``model``: the one Entropy-SGD
    must reach (chosen on the validation split, not on the test set that decides)."""
    present = [r for r in run.results["runs"] if r["model"] == model and r["method"] in BASELINES]
    return min(present, key=lambda r: r["val_error_mean"])["method"]


def _image_models(run: RunData, *methods: str) -> list[str]:
    return [m for m in V.models(run, *methods) if not S.is_char_model(m)]


def _decide_comparable(run: RunData) -> Verdict:
    parts = []
    for model in _image_models(run, "Entropy-SGD"):
        if not any(model in V.models(run, b) for b in BASELINES):
            continue
        baseline = _better_baseline(run, model)
        verdict = V.case_verdict(lambda _, b=baseline, m=model: V.not_worse(run, m, "Entropy-SGD", b,
                                                                             SIMILAR_MARGIN))  # fmt: skip
        parts.append((f"{model} (vs {baseline})", verdict))
    return all_of(parts)


def _decide_char(run: RunData) -> Verdict:
    def one(model: str) -> Verdict:
        for method in ("Entropy-Adam", "Adam"):
            V.guard(run, model, method, classifier=False)
        return decide(V.log_perplexity_difference(run, model, "Entropy-Adam", "Adam"), below=0.0)

    found = [m for m in V.models(run, "Entropy-Adam", "Adam") if S.is_char_model(m)]
    return all_of([(m, V.case_verdict(lambda _, m=m: one(m))) for m in found])


def _against_baselines(run: RunData, compare) -> Verdict:
    parts = [
        (f"{model} vs {b}", V.case_verdict(lambda _, m=model, b=b: compare(run, m, "Entropy-SGD", b)))
        for model in _image_models(run, "Entropy-SGD")
        for b in BASELINES
        if (model, b) in {(r["model"], r["method"]) for r in run.results["runs"]}
    ]
    return all_of(parts)


CRITERION_GUARDS = (
    "Guards (not decidable): a method with fewer of its own updates than declared (Entropy-SGD 100 outer "
    "updates, the baselines 100 steps), a classifier not shown to exceed twice chance on every seed."
)
CLAIMS = (
    Claim(
        "entropy-sgd.comparable",
        "“The results in Figure 3.5a and Figure 3.5b show that Entropy-SGD obtains a comparable "
        f"generalization error: {PAPER_TABLE['mnistfc', 'Entropy-SGD']}% and "
        f"{PAPER_TABLE['lenet', 'Entropy-SGD']}%, for mnistfc and lenet respectively” (Adam: "
        f"{PAPER_TABLE['mnistfc', 'Adam']}% and {PAPER_TABLE['lenet', 'Adam']}%)",
        "Thesis §3.3.2, Table 3.1, Fig. 3.5",
        "On every image network, Entropy-SGD's test error minus that of the better of SGD and Adam (lower "
        "mean validation error) lies below a margin of m × the baseline's error (non-inferiority; the union "
        "of the t interval over seeds and the bootstrap interval over the test images). "
        f"m = {SIMILAR_MARGIN:.3f} is {SIMILAR_SOURCE}. " + CRITERION_GUARDS,
        _decide_comparable,
        shown_in="errors",
    ),
    Claim(
        "entropy-sgd.char",
        f"“We obtain a validation perplexity of 1.213 ± 0.007 and a test perplexity of "
        f"{PAPER_TABLE['char-lstm', 'Entropy-Adam']} over 4 independent runs which is better than the "
        f"baseline” (Adam: {PAPER_TABLE['char-lstm', 'Adam']})",
        "Thesis §3.3.5, Table 3.1, Fig. 3.7b",
        "Entropy-Adam's test log-perplexity (mean cross-entropy per character) minus Adam's is below 0 (the "
        "union of the t interval over seeds and the bootstrap interval over the test windows). Guards: "
        "Entropy-Adam ≥ 100 outer updates, Adam ≥ 100 steps. Our char-lstm (48 units) learns generated text, "
        "the Thesis's (2 × 128 units) War and Peace.",
        _decide_char,
        shown_in="errors",
    ),
    Claim(
        "entropy-sgd.wider",
        "“explicitly biasing the optimization towards wide regions results in faster algorithms with "
        "better generalization error”: Entropy-SGD minimizes Local Entropy (eq. (3.12)), which “concentrates "
        "on wide valleys in the energy landscape” (Fig. 3.2); its solutions are wider",
        "Thesis Ch. 3 (introduction, §3.1, Fig. 3.2, eq. (3.12)); the width: Def. 4.20",
        "In the Thesis's measure of width (Def. 4.20: −f_γ(x)), Entropy-SGD's solutions have a lower Local "
        "Entropy f_γ(x) than SGD's and Adam's at every scope γ of the grid, on every image network (paired t "
        "interval over seeds below 0). " + CRITERION_GUARDS,
        lambda run: _against_baselines(run, V.wider),
        shown_in="width",
    ),
    Claim(
        "entropy-sgd.sharpness",
        "Beyond the papers: Entropy-SGD's solutions have a lower scale-invariant sharpness than SGD's and "
        "Adam's",
        "ours (the Thesis measures width by Local Entropy and calls it “quite different from … the Hessian”, "
        "Remark 4.21)",
        "The adaptive sharpness λ_max(diag|x| H diag|x|) (invariant to the rescalings that leave a "
        "batch-normalized or ReLU network unchanged, Dinh et al. 2017) of Entropy-SGD's solutions below "
        "SGD's "
        "and Adam's on every image network (paired t interval of log10 over seeds below 0). "
        + CRITERION_GUARDS,
        lambda run: _against_baselines(run, V.lower_adaptive_sharpness),
        beyond_papers=True,
        shown_in="width",
    ),
)

_ALL = ("methods=adam,sgd,entropy-sgd", "char_methods=adam,entropy-adam")
DIAGNOSTICS = (
    V.longer_run("entropy-sgd", _ALL, ("entropy-sgd.comparable", "entropy-sgd.char", "entropy-sgd.wider")),
    V.search_run("entropy-sgd", _ALL, ("entropy-sgd.comparable", "entropy-sgd.char")),
    V.width_precision_run("entropy-sgd", _ALL, ("entropy-sgd.wider",)),
)

FIGURES = (
    Figure(
        "val_error.png",
        "validation error against effective epochs and against wall-clock seconds (mean ± std over seeds)",
        "Thesis Fig. 3.5, Table 3.1: validation error against effective epochs on MNIST: mnistfc Entropy-SGD "
        f"{PAPER_TABLE['mnistfc', 'Entropy-SGD']}% @ 120 vs Adam {PAPER_TABLE['mnistfc', 'Adam']}% @ "
        "66; lenet "
        f"{PAPER_TABLE['lenet', 'Entropy-SGD']}% @ 80 vs {PAPER_TABLE['lenet', 'Adam']}% @ 100.",
    ),
    Figure("train_loss.png", "training loss against effective epochs and wall-clock seconds",
           "Thesis Fig. 3.5: training loss against effective epochs, Entropy-SGD against Adam."),
    Figure(
        "val_perplexity.png", "char-lstm validation perplexity against effective epochs",
        "Thesis Fig. 3.7b, Table 3.1: char-LSTM on War and Peace, validation perplexity of Entropy-Adam "
        f"1.213 ± 0.007 (test {PAPER_TABLE['char-lstm', 'Entropy-Adam']} @ 25 effective epochs) against "
        f"Adam's test {PAPER_TABLE['char-lstm', 'Adam']} @ 40.",
    ),
    Figure("char_train_loss.png", "char-lstm training loss (per character) against effective epochs",
           "Thesis Fig. 3.7b: char-LSTM training loss against effective epochs."),
    Figure(
        "width.png",
        "Local Entropy's excess f_γ(x) − f(x) against γ at every seed's solution, and the adaptive sharpness",
        "Thesis Fig. 3.2 (a cartoon): Local Entropy concentrates on wide valleys; the Thesis reports no "
        "measured width for Table 3.1's networks.",
    ),
)  # fmt: skip


EXPERIMENT = Experiment(
    name="entropy-sgd",
    description="Entropy-SGD vs SGD / Adam / SAM (Entropy-Adam vs Adam on char-lstm), same effective epochs",
    reproduces="Thesis §3.3.2, §3.3.5, Table 3.1, Fig. 3.5, Fig. 3.7b",
    params=PARAMS,
    units=units,
    run_unit=run_unit,
    finalize=finalize,
    tables=tables,
    figures=FIGURES,
    claims=CLAIMS,
    diagnostics=DIAGNOSTICS,
    order=410,
)
