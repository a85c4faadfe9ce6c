"""A restricted unpickler for the data files the readers accept (MNIST ``mnist.pkl.gz``, CIFAR-10 batches).

Only the numpy globals needed to rebuild arrays are allowed, so a file from elsewhere cannot run code.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("_codecs", "encode"),  # protocol-2 pickles store bytes through _codecs.encode (latin-1)
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a data file")


def load_arrays_pickle(data: bytes) -> Any:
    """Unpickle ``data`` allowing only numpy arrays, lists, dicts, tuples, strings and numbers."""
    return _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
