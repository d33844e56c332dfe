r"""A CTC acoustic model (Graves et al. 2006): audio features in, a distribution over characters and a blank out,
one per (subsampled) frame; the output may be much shorter than the input.

.. math::
    z_{1..T'} = \text{Subsample}(x_{1..T}), \quad h_{1..T'} = \text{RNN}(z_{1..T'}), \quad
    p(c \mid t) = \text{softmax}(W h_t + b)_c, \quad c \in \{\text{blank}\} \cup \text{alphabet}

The loss is torch's CTC loss: the negative log of the summed probability of every frame path that collapses
(repeats merged, then blanks dropped) to the transcript. The blank is what lets "one one" differ from "one":
two o's in a row need a blank between them. Subsampling is a stack of 1-D convolutions of stride 2 (each halves
the frame rate: 100 frames/s becomes 50, then 25), which shortens the recurrence and speeds it up; the RNN is
one :func:`rnnkit.compat.make_layer` stack (any cell, stacked, bidirectional), run with each utterance's length,
so padding never changes an output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import CELLS
from rnnkit.compat import make_layer
from rnnkit.config import MAX_WIDTH, check_fields, option
from rnnkit.init import SCHEMES
from rnnkit.tasks.base import LossOutput, Task


@dataclass
class CTCConfig:
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    hidden: int = option(256, "units per recurrent layer (and direction)", ge=1, le=MAX_WIDTH)
    layers: int = option(3, "stacked recurrent layers", ge=1, le=100)
    bidirectional: bool = option(True, "read each utterance in both directions")
    subsample: int = option(2, "convolutional subsampling: 1 (none), 2 or 4 times fewer frames", choices=(1, 2, 4))
    channels: int = option(256, "channels of the subsampling convolutions", ge=1, le=MAX_WIDTH)
    dropout: float = option(0.2, "dropout between layers and before the output layer", ge=0, lt=1)
    init: str | None = option(
        None, "initialisation of the recurrent layers (default: the cell's own)", choices=(None, *SCHEMES)
    )

    def __post_init__(self) -> None:
        check_fields(self)


class SpeechBatch(NamedTuple):
    features: Tensor  # (B, T, F) padded
    lengths: Tensor  # (B,) frames
    targets: Tensor | None = None  # (sum of target lengths,) label ids (1..C-1), concatenated
    target_lengths: Tensor | None = None  # (B,)


def make_speech_batch(features: list[Tensor], targets: list[list[int]] | None = None) -> SpeechBatch:
    """Pad feature matrices (T_i, F) into a batch; targets are label-id lists (blank excluded).

    >>> b = make_speech_batch([torch.ones(3, 2), torch.ones(1, 2)], [[1, 2], [3]])
    >>> b.features.shape, b.lengths.tolist(), b.targets.tolist(), b.target_lengths.tolist()
    (torch.Size([2, 3, 2]), [3, 1], [1, 2, 3], [2, 1])
    """
    lengths = torch.tensor([f.shape[0] for f in features], dtype=torch.long)
    padded = nn.utils.rnn.pad_sequence(features, batch_first=True) if features else torch.zeros(0, 0, 0)
    if targets is None:
        return SpeechBatch(padded, lengths)
    flat = torch.tensor([t for target in targets for t in target], dtype=torch.long)
    return SpeechBatch(padded, lengths, flat, torch.tensor([len(t) for t in targets], dtype=torch.long))


class CTCModel(Task):
    """Map (B, T, ``n_features``) feature frames to log-probabilities over ``n_labels`` (blank = 0) per frame.

    >>> model = CTCModel(20, 5, CTCConfig(hidden=8, layers=1, channels=8))
    >>> batch = make_speech_batch([torch.randn(12, 20), torch.randn(7, 20)], [[1, 2, 2], [3]])
    >>> log_probs, lengths = model(batch.features, batch.lengths)
    >>> log_probs.shape, lengths.tolist(), int(model.loss(batch).count)
    (torch.Size([2, 6, 5]), [6, 4], 4)
    """

    def __init__(self, n_features: int, n_labels: int, config: CTCConfig) -> None:
        super().__init__()
        self.config, self.n_labels = config, n_labels
        convs, size = [], n_features
        for _ in range({1: 0, 2: 1, 4: 2}[config.subsample]):
            convs += [nn.Conv1d(size, config.channels, kernel_size=3, stride=2, padding=1), nn.ReLU()]
            size = config.channels
        self.subsample = nn.Sequential(*convs)
        kw: dict[str, Any] = {"init": config.init} if config.init is not None else {}
        kw |= {"dropout": config.dropout} if config.layers > 1 else {}
        self.rnn = make_layer(
            config.cell, size, config.hidden, num_layers=config.layers, bidirectional=config.bidirectional,
            batch_first=True, **kw,
        )  # fmt: skip
        self.drop = nn.Dropout(config.dropout)
        self.output = nn.Linear(self.rnn.output_size, n_labels)

    def out_lengths(self, lengths: Tensor) -> Tensor:
        """Frames after subsampling: each stride-2 convolution (kernel 3, padding 1) maps T to ceil(T / 2)."""
        for _ in range(len(self.subsample) // 2):
            lengths = (lengths + 1) // 2
        return lengths

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, F), (B,) -> log-probabilities (B, T', C) and the output lengths (B,) (each at least 1)."""
        x = features
        if len(self.subsample):
            x = self.subsample(x.transpose(1, 2)).transpose(1, 2)  # convolve over time
        out_lengths = self.out_lengths(lengths).clamp(min=1)
        h, _ = self.rnn(x, lengths=out_lengths.clamp(max=x.shape[1]))
        return F.log_softmax(self.output(self.drop(h)), dim=-1), out_lengths

    def loss(self, batch: SpeechBatch, state: Any = None) -> LossOutput:
        """CTC loss summed over the utterances; ``count`` is the transcripts' characters (loss per character)."""
        log_probs, lengths = self(batch.features, batch.lengths)
        loss = F.ctc_loss(
            log_probs.transpose(0, 1), batch.targets, lengths, batch.target_lengths,
            blank=0, reduction="sum", zero_infinity=True,
        )  # fmt: skip
        return LossOutput(loss, batch.target_lengths.sum(), None)
