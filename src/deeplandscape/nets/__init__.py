"""The model zoo: the networks of the papers, by the names the papers use.

``get(name, seed=0, **kw)`` builds one, ``available()`` lists the names, ``parameter_count(model)`` counts
trainable scalars and ``table()`` gives the rows printed by ``deeplandscape nets``. ``Ensemble`` holds many
networks of one architecture as one batched model (trained by :mod:`deeplandscape.optim`'s ``EnsembleSGD``
and ``train_ensemble``).
"""

from .allcnn import AllCNN
from .charlstm import CharLSTM
from .choromanska import CHOROMANSKA_WIDTHS, ChoromanskaNet, unit_cube_init_
from .ensemble import Ensemble, evaluate_ensemble
from .lenet import LeNet
from .mnistfc import DeepThinMnistFC, MnistFC
from .registry import (
    NetRow,
    available,
    example_input,
    format_table,
    get,
    parameter_count,
    spec,
    specs,
    table,
)
from .smallfc import SmallFC, SmallFCBN
from .spec import NetSpec
from .teacher import SAGUN_STUDENT_SIZES, SagunMLP

__all__ = [
    "CHOROMANSKA_WIDTHS",
    "SAGUN_STUDENT_SIZES",
    "AllCNN",
    "CharLSTM",
    "ChoromanskaNet",
    "DeepThinMnistFC",
    "Ensemble",
    "LeNet",
    "MnistFC",
    "NetRow",
    "NetSpec",
    "SagunMLP",
    "SmallFC",
    "SmallFCBN",
    "available",
    "evaluate_ensemble",
    "example_input",
    "format_table",
    "get",
    "parameter_count",
    "spec",
    "specs",
    "table",
    "unit_cube_init_",
]
