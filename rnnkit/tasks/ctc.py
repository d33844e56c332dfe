r"""A CTC acoustic model (Graves et al. 2006): audio features in, a distribution over characters and a blank out,
one per (subsampled) frame; the output may be much shorter than the input.

.. math::
    z_{1..T'} = \text{Subsample}(x_{1..T}), \quad h_{1..T'} = \text{RNN}(z_{1..T'}), \quad
    p(c \mid t) = \text{softmax}(W h_t + b)_c, \quad c \in \{\text{blank}\} \cup \text{alphabet}

The loss is torch's CTC loss: the negative log of the summed probability of every frame path that collapses
(repeats merged, then blanks dropped) to the transcript. The blank is what lets a label repeat: the two f's of
"coffee", or in word units (``--units word``) the two words of "one one", need a blank between them. Without it
(``blank=False``: the blank's probability held at 0 and the targets' repeats merged, since no path could write
them) a run of frames of one label is one label, so "one one" can only come out as "one": the tutorials' reason
for the blank.

Subsampling is a stack of 1-D convolutions of stride 2 (each halves the frame rate: 100 frames/s becomes 50,
then 25), which shortens the recurrence and speeds it up; the RNN is
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
    blank: bool = option(
        True, "--no-blank: the model without CTC's blank that the tutorials warn of (repeats merge: 'one one' -> 'one')"
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


class ConvSubsampler(nn.Sequential):
    """Frames (B, T, F) -> (B, T', ``channels``): ``factor`` 2 or 4 is one or two convolutions over time of kernel
    3 and stride 2, each followed by a ReLU (each maps T to ceil(T / 2)); ``factor`` 1 passes the frames as they
    are (``output_size`` is then F).

    >>> sub = ConvSubsampler(20, 8, 4)
    >>> x, lengths = sub(torch.randn(2, 9, 20), torch.tensor([9, 1]))
    >>> x.shape, lengths.tolist(), sub.output_size
    (torch.Size([2, 3, 8]), [3, 1], 8)
    """

    def __init__(self, n_features: int, channels: int, factor: int) -> None:
        convs, size = [], n_features
        for _ in range({1: 0, 2: 1, 4: 2}[factor]):
            convs += [nn.Conv1d(size, channels, kernel_size=3, stride=2, padding=1), nn.ReLU()]
            size = channels
        super().__init__(*convs)
        self.output_size = size

    def out_lengths(self, lengths: Tensor) -> Tensor:
        """Frames after subsampling: each stride-2 convolution (kernel 3, padding 1) maps T to ceil(T / 2)."""
        for _ in range(len(self) // 2):
            lengths = (lengths + 1) // 2
        return lengths

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """(B, T, F), (B,) -> (B, T', output_size) and the lengths after subsampling (each at least 1).

        Each layer's outputs past a sequence's own length are zeroed: a second convolution must read zeros there,
        as it would for the sequence alone, not ReLU(bias) computed from the batch's padding."""
        x = features
        modules = list(self)  # (slicing a Sequential would build a new one)
        for conv, activation in zip(modules[::2], modules[1::2], strict=True):
            x = activation(conv(x.transpose(1, 2)).transpose(1, 2))
            lengths = (lengths + 1) // 2
            x = x * (torch.arange(x.shape[1], device=x.device) < lengths.unsqueeze(1)).unsqueeze(-1).to(x.dtype)
        return x, lengths.clamp(min=1)


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
        self.subsample = ConvSubsampler(n_features, config.channels, config.subsample)
        size = self.subsample.output_size
        kw: dict[str, Any] = {"init": config.init} if config.init is not None else {}
        kw |= {"dropout": config.dropout} if config.layers > 1 else {}
        self.rnn = make_layer(
            config.cell, size, config.hidden, num_layers=config.layers, bidirectional=config.bidirectional,
            batch_first=True, **kw,
        )  # fmt: skip
        self.drop = nn.Dropout(config.dropout)
        self.output = nn.Linear(self.rnn.output_size, n_labels)

    def out_lengths(self, lengths: Tensor) -> Tensor:
        return self.subsample.out_lengths(lengths)

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, F), (B,) -> log-probabilities (B, T', C) and the output lengths (B,) (each at least 1)."""
        x, out_lengths = self.subsample(features, lengths)
        h, _ = self.rnn(x, lengths=out_lengths.clamp(max=x.shape[1]))
        logits = self.output(self.drop(h))
        if not self.config.blank:  # the blank never fires: a path is labels only, and a run of one label is one
            # (a finite floor, not -inf: torch's CTC gradient is NaN at -inf log-probabilities; exp(-1e4) is 0)
            logits = logits.masked_fill(torch.arange(self.n_labels, device=logits.device) == 0, -1e4)
        return F.log_softmax(logits, dim=-1), out_lengths

    def loss(self, batch: SpeechBatch, state: Any = None) -> LossOutput:
        """CTC loss summed over the utterances; ``count`` is the transcripts' characters (loss per character)."""
        log_probs, lengths = self(batch.features, batch.lengths)
        loss = F.ctc_loss(
            log_probs.transpose(0, 1), batch.targets, lengths, batch.target_lengths,
            blank=0, reduction="sum", zero_infinity=True,
        )  # fmt: skip
        return LossOutput(loss, batch.target_lengths.sum(), None)
