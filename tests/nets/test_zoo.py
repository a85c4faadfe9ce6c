"""The model zoo: forward passes, parameter counts against the architecture formula and the papers."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from deeplandscape import nets
from deeplandscape.nets import cli


def dense(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def conv(c_in: int, c_out: int, k: int) -> int:
    return c_out * (c_in * k * k + 1)


def bn(c: int) -> int:
    return 2 * c


def lstm_layer(n_in: int, h: int) -> int:
    return 4 * h * (n_in + h) + 8 * h


def allcnn(c1: int, c2: int) -> int:
    block1 = conv(3, c1, 3) + 2 * conv(c1, c1, 3) + 3 * bn(c1)
    block2 = conv(c1, c2, 3) + 2 * conv(c2, c2, 3) + 3 * bn(c2)
    return block1 + block2 + 2 * (conv(c2, c2, 3) + bn(c2)) + conv(c2, 10, 1) + bn(10)


def lenet(c1: int, c2: int, h: int, pools: tuple[int, int], conv_bn: bool, fc_bn: bool, k: int = 5) -> int:
    s1 = (28 - k + 1) // pools[0]
    s2 = (s1 - k + 1) // pools[1]
    total = conv(1, c1, k) + conv(c1, c2, k) + dense(c2 * s2 * s2, h) + dense(h, 10)
    return total + (bn(c1) + bn(c2) if conv_bn else 0) + (bn(h) if fc_bn else 0)


# The architecture formula of each network, written from the papers' layer descriptions.
FORMULA = {
    **{f"choromanska-{n}": dense(100, n) + dense(n, 10) for n in (10, 25, 50, 100, 250, 500)},
    "mnistfc": dense(784, 1024) + bn(1024) + dense(1024, 1024) + bn(1024) + dense(1024, 10),
    "mnistfc-deep": dense(784, 128) + 15 * dense(128, 128) + dense(128, 10),
    "lenet": lenet(20, 50, 500, (3, 2), conv_bn=True, fc_bn=False),
    "lenet-parle": lenet(20, 50, 500, (2, 2), conv_bn=True, fc_bn=False),
    "lenet-anneal": lenet(32, 64, 512, (3, 3), conv_bn=True, fc_bn=False),
    "small-lenet": lenet(10, 20, 128, (2, 2), conv_bn=False, fc_bn=False),
    "small-lenet-bn": lenet(8, 16, 128, (3, 2), conv_bn=True, fc_bn=True),
    "smallfc": dense(784, 64) + dense(64, 10),
    "small-fc": dense(49, 64) + bn(64) + dense(64, 10),
    "tiny-fc": dense(49, 16) + bn(16) + dense(16, 5),
    "allcnn": allcnn(96, 192),
    "small-allcnn": allcnn(12, 24),
    "sagun-teacher": dense(784, 500) + dense(500, 300) + dense(300, 10),
    **{
        f"sagun-student-{a}-{b}": dense(784, a) + dense(a, b) + dense(b, 10)
        for a, b in ((50, 50), (250, 150), (500, 300), (1200, 1200))
    },
    "char-lstm": lstm_layer(96, 48) + dense(48, 96, bias=False),
    "char-lstm-2x128": lstm_layer(87, 128) + lstm_layer(128, 128) + dense(128, 87, bias=False),
}

# The counts stated in the papers, with the precision of the statement (relative).
PAPER = {
    "lenet": (131_220, 0.0),  # Thesis §4.6
    "small-lenet": (47_658, 0.0),  # Thesis §3.3.1
    "small-lenet-bn": (13_338, 0.0),  # Thesis §6.3.1
    "smallfc": (50_890, 0.0),  # Thesis §3.3.1
    "small-allcnn": (26_982, 0.0),  # Thesis §6.3.1
    "char-lstm": (32_640, 0.0),  # Thesis §3.3.1
    "mnistfc": (1_860_000, 0.005),  # Thesis §4.6: "1.86 million"
    "allcnn": (1_670_000, 0.005),  # Thesis §4.6: "1.67 million"
}


def test_every_network_has_a_formula():
    assert set(nets.available()) == set(FORMULA)


def test_the_zoo_is_derived_from_the_modules():
    """Every network class the package exports is built by an entry of the zoo (its module's NETS): a
    network module that forgets to declare its networks fails here, and no list of names is kept by hand."""
    exported = {
        getattr(nets, name)
        for name in nets.__all__
        if isinstance(getattr(nets, name), type) and issubclass(getattr(nets, name), torch.nn.Module)
    } - {nets.Ensemble}
    built = {type(nets.get(name)) for name in nets.available()}
    assert exported <= built
    for name, entry in nets.specs().items():
        assert entry.name == name and nets.spec(name) is entry


@pytest.mark.parametrize("name", nets.available())
def test_parameter_count_matches_architecture_formula(name):
    assert nets.parameter_count(nets.get(name)) == FORMULA[name]


@pytest.mark.parametrize("name", sorted(PAPER))
def test_parameter_count_matches_paper(name):
    count, rtol = PAPER[name]
    ours = nets.parameter_count(nets.get(name))
    assert abs(ours - count) <= rtol * count, (name, ours, count)
    assert nets.spec(name).paper_parameters == count


@pytest.mark.parametrize("name", nets.available())
def test_forward_pass_on_input_shape(name):
    model = nets.get(name)
    s = nets.spec(name)
    x = nets.example_input(name, batch=3)
    assert tuple(x.shape[1:]) == s.input_shape
    model.train()
    out = model(x)
    classes = {"tiny-fc": 5, "char-lstm": 96, "char-lstm-2x128": 87}.get(name, 10)
    expected = (3, *s.input_shape, classes) if s.input_dtype == torch.long else (3, classes)
    assert tuple(out.shape) == expected
    assert torch.isfinite(out).all()
    out.float().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_seed_reproducible_and_global_rng_untouched():
    state = torch.get_rng_state()
    a, b, c = nets.get("small-fc", seed=3), nets.get("small-fc", seed=3), nets.get("small-fc", seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    for (ka, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), ka
    assert not torch.equal(a.net[1].weight, c.net[1].weight)


def test_choromanska_unit_cube_init():
    model = nets.get("choromanska-25", seed=0)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert flat.min() >= 0 and flat.max() <= 1
    # U[0,1] has mean 1/2 and variance 1/12: a 5-sigma band for the 2,785 draws.
    assert abs(flat.mean().item() - 0.5) < 5 * (1 / 12) ** 0.5 / flat.numel() ** 0.5
    torch_init = nets.get("choromanska-25", seed=0, init="torch")
    assert torch.cat([p.detach().flatten() for p in torch_init.parameters()]).min() < 0


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown network"):
        nets.get("resnet")
    with pytest.raises(ValueError, match="dropout"):
        nets.get("mnistfc", dropout=1.5)
    with pytest.raises(ValueError, match="hidden"):
        nets.get("smallfc", hidden=0)
    with pytest.raises(ValueError, match="init"):
        nets.get("choromanska-10", init="gaussian")
    with pytest.raises(ValueError, match="LongTensor"):
        nets.get("char-lstm")(torch.zeros(1, 4))


def test_table_and_cli(capsys):
    rows = nets.table(["lenet", "tiny-fc"])
    assert [r.name for r in rows] == ["lenet", "tiny-fc"]
    assert rows[0].parameters == FORMULA["lenet"] and rows[0].paper_parameters == 131_220
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run(parser.parse_args(["lenet", "small-allcnn"])) == 0
    text = capsys.readouterr().out
    assert "131,220" in text and "26,982" in text and "Thesis §6.3.1" in text
    assert cli.run(parser.parse_args(["--json", "smallfc"])) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload[0]["parameters"] == 50_890 and payload[0]["input_shape"] == [1, 28, 28]
    assert cli.run(parser.parse_args(["nonexistent"])) == 2
    assert "unknown network" in capsys.readouterr().out
