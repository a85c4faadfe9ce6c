"""Run an experiment at the quick scale and check what every run directory must hold."""

import json
import re

from deeplandscape.app.runner import run_experiment
from deeplandscape.experiments.spec import resolve_config


def check_tables(markdown):
    """Every row of a pipe table has as many cells as its header (literal pipes must be escaped)."""
    width = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        cells = len(re.split(r"(?<!\\)\|", line.strip())) - 2
        width = cells if width is None else width
        assert cells == width, line


def run_quick(experiment, tmp_path, overrides=()):
    """``(results, out)`` of a quick run, after checking results.json, config, reports, figures, tables."""
    out = tmp_path / experiment.name
    config = resolve_config(experiment, "quick", 0, list(overrides))
    results = run_experiment(experiment, config, out, quiet=True)
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    for f in ("config.json", "report.md", "report.html"):
        assert (out / f).stat().st_size > 0
    pngs = list(out.glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    assert "<img" in (out / "report.html").read_text()
    check_tables((out / "report.md").read_text())
    return results, out
