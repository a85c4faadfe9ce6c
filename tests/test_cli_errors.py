"""Every user mistake on the command line ends with exit status 2 and one message naming the problem: no
Python traceback, and no file created."""

import os
from pathlib import Path

import pytest
import torch

from deeplandscape.cli import main

MLP = "deeplandscape.analysis.examples:tiny_mlp"
INSPECT = ["inspect", "--model", MLP, "--data", "deeplandscape.analysis.examples:gaussian_blobs", "--quick"]
FLOOR = ["run", "floor", "--quick", "sizes=6", "runs=2"]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _checkpoints(tmp: Path) -> None:
    good = tmp / "good.pt"
    torch.save({"model": torch.nn.Linear(2, 2).state_dict()}, good)
    (tmp / "truncated.pt").write_bytes(good.read_bytes()[:100])
    (tmp / "garbage.pt").write_bytes(os.urandom(256))


# (arguments, text the message must contain); {tmp} is the test's directory, the current directory too.
CASES = {
    "out is a regular file": (["run", "floor", "--quick", "--out", "{tmp}/file"], "{tmp}/file is a file"),
    "out under a regular file": (["run", "floor", "--quick", "--out", "{tmp}/file/run"], "{tmp}/file/run"),
    "out not writable": (
        ["run", "floor", "--quick", "--out", "/sys/deeplandscape-run"],
        "/sys/deeplandscape-run",
    ),
    "resume without out": ([*FLOOR, "--resume"], "Invalid --resume"),
    "unknown experiment": (["run", "nosuch"], "Unknown experiment: 'nosuch'"),
    "override without =": ([*FLOOR, "sizes"], "Invalid override: 'sizes'"),
    "unknown key": ([*FLOOR, "colour=red"], "Unknown key: 'colour'"),
    "bad value": ([*FLOOR, "runs=many"], "Invalid runs: 'many'"),
    "missing data set": (
        [
            "run",
            "hessian-spectrum",
            "--quick",
            "--out",
            "{tmp}/hs",
            "models=small-lenet",
            "data=mnist",
            "fisher_model=none",
            "mnist_path={tmp}/no-mnist",
        ],
        "{tmp}/no-mnist",
    ),
    "inspect out is a file": ([*INSPECT, "--out", "{tmp}/file"], "{tmp}/file is a file"),
    "cuda on a cpu build": ([*INSPECT, "--device", "cuda"], "Invalid --device: 'cuda'"),
    "truncated checkpoint": (
        [*INSPECT, "--checkpoint", "{tmp}/truncated.pt"],
        "{tmp}/truncated.pt' cannot be read",
    ),
    "garbage checkpoint": (
        [*INSPECT, "--checkpoint", "{tmp}/garbage.pt"],
        "{tmp}/garbage.pt' cannot be read",
    ),
    "checkpoint of another model": (
        [*INSPECT, "--checkpoint", "{tmp}/good.pt"],
        "{tmp}/good.pt' does not match the model",
    ),
    "unknown model keyword": ([*INSPECT, "--model-kwargs", '{"widht": 3}'], "widht"),
    "model raises": ([*INSPECT, "--model-kwargs", '{"hidden": -3}'], "Invalid --model: " + MLP),
    "report of a file": (["report", "{tmp}/file"], "{tmp}/file"),
    "demo out is a file": (["demo", "--out", "{tmp}/file"], "{tmp}/file is a file"),
    "spinglass lr nan": (["spinglass", "descend", "--n", "10", "--lr", "nan"], "Invalid lr: nan"),
    "spinglass too large": (["spinglass", "descend", "--n", "100000"], "Invalid --n: 100000 needs about"),
    "spinglass too many runs": (
        ["spinglass", "descend", "--runs", "10000000000"],
        "Invalid --runs: 10000000000",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_mistakes_exit_2_with_a_message_and_no_files(tmp_path, capsys, monkeypatch, case):
    if case == "cuda on a cpu build" and torch.cuda.is_available():
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("a user's file\n")
    _checkpoints(tmp_path)
    before = _files(tmp_path)
    argv, expected = CASES[case]
    with pytest.raises(SystemExit) as info:
        main([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert "Traceback" not in err
    assert expected.replace("{tmp}", str(tmp_path)) in err
    assert _files(tmp_path) == before
    assert (tmp_path / "file").read_text() == "a user's file\n"
