"""``python -m deeplandscape``: the ``deeplandscape`` command (:mod:`deeplandscape.cli`)."""

import sys

from deeplandscape.cli import main

if __name__ == "__main__":
    sys.exit(main())
