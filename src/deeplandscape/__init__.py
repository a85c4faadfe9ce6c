"""deeplandscape: picture and shape the energy landscape of deep networks.

Parts (see the README for a tour):

- :mod:`deeplandscape.spinglass` -- the spherical p-spin model of a network's loss and its theory;
- :mod:`deeplandscape.optim` -- landscape-shaping optimizers as ``torch.optim`` optimizers;
- :mod:`deeplandscape.analysis` -- landscape instruments for any ``nn.Module``;
- :mod:`deeplandscape.cli` -- the ``deeplandscape`` command.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deeplandscape")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
