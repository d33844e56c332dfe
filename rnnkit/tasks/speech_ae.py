r"""A sequence-to-sequence autoencoder of speech features (Chung et al. 2016, "Audio Word2Vec"): an RNN reads a
spoken word's feature frames into one fixed-size code, and a second RNN writes the frames back from the code alone.

.. math::
    h_{1..T} = \text{Encoder}(x_{1..T}), \qquad z = \tanh(W_z\, \text{last}(h) + b_z), \\
    s_0 = \tanh(W_s z + b_s), \qquad s_t = \text{Decoder}(z, s_{t-1}), \qquad \hat x_t = W_o s_t + b_o,
    \qquad \mathcal{L} = \sum_t \lVert \hat x_t - x'_t \rVert^2

where :math:`x'` is the input itself or, with ``reverse`` (the default), the input backwards (Srivastava et al.
2015: the decoder writes first the frames the encoder read last, so early outputs have a short path to the code).
The decoder reads the code at every step and nothing else: no previous frame (teacher forcing would let it
rebuild the frames from their neighbours and leave the code uninformative), so all it can write comes from
:math:`z`. ``last(h)`` is each utterance's own last step (both directions' final states when bidirectional):
padding never changes a code. The code is what retrieval compares, by cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit import state as S
from rnnkit.cells import CELLS
from rnnkit.compat import make_layer
from rnnkit.config import MAX_WIDTH, check_fields, option
from rnnkit.init import SCHEMES
from rnnkit.layers import flip_padded
from rnnkit.tasks.base import LossOutput, Task
from rnnkit.tasks.ctc import SpeechBatch
from rnnkit.tasks.pooling import last_pool, valid_mask


@dataclass
class SpeechAEConfig:
    cell: str = option("gru", "recurrent cell of the encoder and the decoder", choices=tuple(CELLS))
    hidden: int = option(256, "units per recurrent layer (and direction)", ge=1, le=MAX_WIDTH)
    layers: int = option(2, "stacked recurrent layers of the encoder and of the decoder", ge=1, le=100)
    bidirectional: bool = option(True, "the encoder reads each utterance in both directions")
    code: int = option(128, "size of the code (the fixed-size vector an utterance becomes)", ge=1, le=MAX_WIDTH)
    reverse: bool = option(True, "write the frames back last first (Srivastava et al. 2015)")
    dropout: float = option(0.1, "dropout between layers and on the code", ge=0, lt=1)
    init: str | None = option(
        None, "initialisation of the recurrent layers (default: the cell's own)", choices=(None, *SCHEMES)
    )

    def __post_init__(self) -> None:
        check_fields(self)


class CodeToState(nn.Module):
    """A recurrent layer's initial state from a code: tanh of a linear map per layer and state field (an LSTM's
    h and c each get one); a field that is not a float (Clockwork's step counter) starts at the cell's own value."""

    def __init__(self, code: int, cells: list) -> None:
        super().__init__()
        self.types = [type(c.initial_state(1)) for c in cells]
        maps = {}
        for layer, cell in enumerate(cells):
            start = cell.initial_state(1)
            for name, value in zip(start._fields, start, strict=True):
                if value.is_floating_point():
                    maps[f"l{layer}_{name}"] = nn.Linear(code, value.shape[-1])
        self.maps = nn.ModuleDict(maps)

    def forward(self, code: Tensor, initial: list) -> list:
        """``code`` (B, code); ``initial``: the cells' own initial states (B rows) -> one state per cell."""
        out = []
        for layer, (make, start) in enumerate(zip(self.types, initial, strict=True)):
            keys = [f"l{layer}_{name}" for name in make._fields]
            values = zip(keys, start, strict=True)
            out.append(make(*(torch.tanh(self.maps[k](code)) if k in self.maps else v for k, v in values)))
        return out


class SpeechAutoencoder(Task):
    """(B, T, ``n_features``) feature frames -> (B, ``code``) codes -> the frames again.

    >>> model = SpeechAutoencoder(13, SpeechAEConfig(hidden=8, layers=1, code=4))
    >>> features, lengths = torch.randn(2, 9, 13), torch.tensor([9, 5])
    >>> model.encode(features, lengths).shape, model(features, lengths).shape
    (torch.Size([2, 4]), torch.Size([2, 9, 13]))
    """

    def __init__(self, n_features: int, config: SpeechAEConfig) -> None:
        super().__init__()
        self.config, self.n_features = config, n_features
        kw: dict[str, Any] = {"init": config.init} if config.init is not None else {}
        kw |= {"dropout": config.dropout} if config.layers > 1 else {}
        self.encoder = make_layer(
            config.cell, n_features, config.hidden, num_layers=config.layers,
            bidirectional=config.bidirectional, batch_first=True, **kw,
        )  # fmt: skip
        self.to_code = nn.Linear(self.encoder.output_size, config.code)
        self.drop = nn.Dropout(config.dropout)
        self.decoder = make_layer(
            config.cell, config.code, config.hidden, num_layers=config.layers, batch_first=True, **kw
        )
        self.bridge = CodeToState(config.code, self.decoder.bound_cells())  # the decoder's first state
        self.output = nn.Linear(self.decoder.output_size, n_features)

    def encode(self, features: Tensor, lengths: Tensor) -> Tensor:
        """(B, T, F), (B,) -> the codes (B, code), in [-1, 1]."""
        h, _ = self.encoder(features, lengths=lengths)
        return torch.tanh(self.to_code(last_pool(h, lengths, bidirectional=self.config.bidirectional)))

    def decode(self, code: Tensor, steps: int, lengths: Tensor) -> Tensor:
        """The frames (B, ``steps``, F) written back from codes (B, code); reversed when the config says so."""
        code = self.drop(code)
        kw = {"device": code.device, "dtype": code.dtype}
        start = self.bridge(code, [cell.initial_state(code.shape[0], **kw) for cell in self.decoder.cells])
        s, _ = self.decoder(code.unsqueeze(1).expand(-1, steps, -1), S.stack(start), lengths=lengths)
        return self.output(s)

    def forward(self, features: Tensor, lengths: Tensor) -> Tensor:
        """The reconstruction (B, T, F) of the frames, in their original order."""
        out = self.decode(self.encode(features, lengths), features.shape[1], lengths)
        return flip_padded(out.transpose(0, 1), lengths).transpose(0, 1) if self.config.reverse else out

    def loss(self, batch: SpeechBatch, state: Any = None) -> LossOutput:
        """Squared error summed over the frames' features; ``count`` is the frames (loss per frame)."""
        x, lengths = batch.features, batch.lengths
        mask = valid_mask(lengths, x.shape[1]).unsqueeze(-1)
        error = (self(x, lengths) - x).square().masked_fill(~mask, 0.0).sum()
        return LossOutput(error, lengths.sum(), None)
