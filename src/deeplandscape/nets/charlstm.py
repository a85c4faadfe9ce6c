"""Character-level LSTMs: char-lstm (Thesis §3.3.1, 48 units) and char-LSTM 2×128 (Thesis §3.3.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._layers import check_positive_int
from .spec import NetSpec


class CharLSTM(nn.Module):
    """A character model: one-hot input over V symbols → LSTM (L layers of H units) → dense map to V logits.

    Input: a LongTensor of symbol indices of shape (batch, T); output: logits (batch, T, V).
    Each LSTM layer ``ℓ`` has ``4H(n_ℓ + H) + 8H`` parameters (input and hidden-to-hidden weights and the
    two bias vectors of the cuDNN/Torch formulation, ``n_1 = V``, ``n_ℓ = H`` above), the decoder ``H·V``
    (no bias by default).

    - Thesis §3.3.1 "char-lstm": H = 48, one layer, "96-bit one-hot encoded characters", "32,640
      parameters": ``4·48·144 + 8·48 + 48·96 = 32,640`` exactly with the bias-free decoder (a decoder bias
      would add 96).
    - Thesis §3.3.5 char-LSTM on War and Peace: "two layers of 128 hidden units", vocabulary 87:
      ``111,104 + 132,096 + 11,136 = 254,336`` (no count given).
    """

    def __init__(self, vocab: int = 96, hidden: int = 48, *, layers: int = 1, decoder_bias: bool = False):
        super().__init__()
        self.vocab = check_positive_int("vocab", vocab)
        check_positive_int("hidden", hidden)
        check_positive_int("layers", layers)
        self.lstm = nn.LSTM(vocab, hidden, num_layers=layers, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab, bias=decoder_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.long:
            raise ValueError(f"x must be a LongTensor of symbol indices, got dtype {x.dtype}")
        one_hot = F.one_hot(x, self.vocab).to(self.decoder.weight.dtype)
        out, _ = self.lstm(one_hot)
        return self.decoder(out)


#: The networks of this module in the zoo (:mod:`deeplandscape.nets.registry`).
NETS = (
    NetSpec("char-lstm", CharLSTM, "Thesis §3.3.1", (32,), 32_640, input_dtype=torch.long),
    NetSpec(
        "char-lstm-2x128", CharLSTM, "Thesis §3.3.5", (50,), input_dtype=torch.long,
        defaults={"vocab": 87, "hidden": 128, "layers": 2},
    ),
)  # fmt: skip
