"""The model zoo: the networks of the papers, by the names the papers use.

``get(name, seed=0, **kw)`` builds one, ``available()`` lists the names, ``parameter_count(model)`` counts
trainable scalars and ``table()`` gives the rows printed by ``deeplandscape nets``.
"""

from .allcnn import AllCNN
from .charlstm import CharLSTM
from .choromanska import CHOROMANSKA_WIDTHS, ChoromanskaNet, unit_cube_init_
from .lenet import LeNet
from .mnistfc import DeepThinMnistFC, MnistFC
from .registry import (
    SPECS,
    NetRow,
    NetSpec,
    available,
    example_input,
    format_table,
    get,
    parameter_count,
    spec,
    table,
)
from .smallfc import SmallFC, SmallFCBN
from .teacher import SAGUN_STUDENT_SIZES, SagunMLP

__all__ = [
    "CHOROMANSKA_WIDTHS",
    "SAGUN_STUDENT_SIZES",
    "SPECS",
    "AllCNN",
    "CharLSTM",
    "ChoromanskaNet",
    "DeepThinMnistFC",
    "LeNet",
    "MnistFC",
    "NetRow",
    "NetSpec",
    "SagunMLP",
    "SmallFC",
    "SmallFCBN",
    "available",
    "example_input",
    "format_table",
    "get",
    "parameter_count",
    "spec",
    "table",
    "unit_cube_init_",
]
