"""A character corpus for char-LSTM: text generated from a seed, or a plain-text file the user points at.

Thesis §3.3.1 trains char-lstm "to re-generate a small piece of text consisting of 256 lines of length 32
each and 96-bit one-hot encoded characters"; §3.3.5 uses War and Peace (about 3 million characters, split
80/10/10, vocabulary 87). Nothing is downloaded: the default text is generated here, and a public-domain
book can be used by passing its path.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .splits import DataNotFoundError, DataSplits, make_splits

#: The 96-symbol alphabet of Thesis §3.3.1: the 95 printable ASCII characters and the newline.
ASCII96 = "\n" + "".join(chr(c) for c in range(32, 127))

_SYLLABLES = (
    "an", "be", "ca", "de", "el", "fo", "ga", "he", "in", "jo", "ka", "le", "mi", "no", "or", "pa", "qu",
    "re", "si", "to", "un", "ve", "wa", "xe", "yo", "ze", "th", "st", "ch", "sh",
)  # fmt: skip
_PUNCTUATION = (".", ",", ";", "!", "?", ":")


def generate_text(*, lines: int = 256, line_length: int = 32, seed: int = 0) -> str:
    """Seeded pseudo-prose: ``lines`` lines of exactly ``line_length`` characters over :data:`ASCII96`.

    Words of 1–4 syllables are drawn from a fixed syllable list, about one in six is capitalised or
    followed by punctuation, and a line is filled word by word and padded with spaces.
    """
    if lines < 1 or line_length < 4:
        raise ValueError(
            f"lines must be >= 1 and line_length >= 4, got lines={lines}, line_length={line_length}"
        )
    g = torch.Generator().manual_seed(seed)

    def draw(k: int) -> int:
        return int(torch.randint(k, (1,), generator=g))

    out = []
    for _ in range(lines):
        line = ""
        while True:
            word = "".join(_SYLLABLES[draw(len(_SYLLABLES))] for _ in range(1 + draw(4)))
            if draw(6) == 0:
                word = word.capitalize()
            if draw(6) == 0:
                word += _PUNCTUATION[draw(len(_PUNCTUATION))]
            if draw(10) == 0:
                word = str(draw(1000))
            candidate = f"{line} {word}" if line else word
            if len(candidate) > line_length:
                break
            line = candidate
        out.append(line[:line_length].ljust(line_length))
    return "\n".join(out) + "\n"


def load_chars(
    path: str | os.PathLike | None = None,
    *,
    text: str | None = None,
    seq_len: int = 32,
    lines: int = 256,
    line_length: int = 32,
    vocab: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> DataSplits:
    """Next-character prediction windows: ``x = s[i : i+T]``, ``y = s[i+1 : i+T+1]`` for non-overlapping
    windows (i = 0, T, 2T, …) of the encoded text s, the windows split with ``seed`` (80/10/10 by default,
    as Thesis §3.3.5).

    The text is ``text``, else the file at ``path`` (UTF-8), else :func:`generate_text` (``lines`` ×
    ``line_length``, seeded). The vocabulary is ``vocab``, else :data:`ASCII96` for generated text, else
    the sorted set of characters in the file. ``num_classes`` is the vocabulary size, ``info['vocab']``
    the alphabet; x and y are int64 (n, T).
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    if text is None and path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataNotFoundError(
                f"text file {p} does not exist; pass path= to a plain-text (UTF-8) file such as a "
                "public-domain book, or text=..., or neither to use generated text"
            )
        text = p.read_text(encoding="utf-8")
        source = str(p)
    elif text is None:
        text = generate_text(lines=lines, line_length=line_length, seed=seed)
        vocab = ASCII96 if vocab is None else vocab
        source = f"generated (seed={seed})"
    else:
        source = "text argument"
    alphabet = vocab if vocab is not None else "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(alphabet)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise ValueError(f"text contains characters outside the vocabulary: {unknown[:10]!r}")
    codes = torch.tensor([index[c] for c in text], dtype=torch.long)
    n = (codes.numel() - 1) // seq_len
    if n < 3:
        raise ValueError(
            f"text of {codes.numel()} characters is too short for 3 windows of seq_len={seq_len}"
        )
    x = codes[: n * seq_len].reshape(n, seq_len)
    y = codes[1 : n * seq_len + 1].reshape(n, seq_len)
    return make_splits(
        "chars", x, y, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
        num_classes=len(alphabet), source=source, info={"vocab": alphabet},
    )  # fmt: skip
