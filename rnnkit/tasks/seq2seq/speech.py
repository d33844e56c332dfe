r"""Speech straight to text in another language: the attentional encoder-decoder of
:class:`rnnkit.tasks.seq2seq.model.Seq2Seq` with feature frames for a source (Weiss et al. 2017, "Sequence-to-
Sequence Models Can Directly Translate Foreign Speech"; Bérard et al. 2016).

.. math::
    z_{1..S} = W_p\, \text{Subsample}(x_{1..T}), \qquad \text{then as Seq2Seq: } h = \text{Encoder}(z), \
    s_0 = \text{bridge}(h), \ p(y_t \mid y_{<t}, x) = \text{softmax}(W \tilde h_t)

Only the source side differs: no embedding table, but the CTC model's convolutional subsampling
(:class:`rnnkit.tasks.ctc.ConvSubsampler`: 100 frames a second become 25 with ``subsample=4``, so attention
reads four times fewer positions) and a linear map to the encoder's input size. Everything else (bridge,
attention with input feeding, label smoothing, greedy and beam search) is Seq2Seq's own, so a flag that
changes a translator changes a speech translator the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.config import MAX_WIDTH, option
from rnnkit.tasks.ctc import ConvSubsampler
from rnnkit.tasks.seq2seq.model import Seq2Seq, Seq2SeqConfig

__all__ = ["SpeechSeq2Seq", "SpeechSeq2SeqConfig"]


@dataclass
class SpeechSeq2SeqConfig(Seq2SeqConfig):
    subsample: int = option(4, "convolutional subsampling of the frames: 1 (none), 2 or 4x fewer", choices=(1, 2, 4))
    channels: int = option(256, "channels of the subsampling convolutions", ge=1, le=MAX_WIDTH)


class SpeechSeq2Seq(Seq2Seq):
    """Translate (B, T, ``n_features``) feature frames into id sequences of a ``tgt_vocab``-word vocabulary.

    >>> from rnnkit.tasks.seq2seq.model import Seq2SeqBatch, make_batch
    >>> model = SpeechSeq2Seq(20, 30, SpeechSeq2SeqConfig(hidden=8, channels=8), pad_id=0, bos=2, eos=3)
    >>> text = make_batch([[0], [0]], [[9], [10, 11]], pad_id=0, bos=2, eos=3)
    >>> batch = Seq2SeqBatch(torch.randn(2, 16, 20), torch.tensor([16, 9]), text.tgt_in, text.tgt_out)
    >>> model.logits(batch).shape, [len(h) for h in model.translate(batch.src, batch.src_lengths, beam_size=2)]
    (torch.Size([2, 3, 30]), [1, 1])
    """

    def __init__(
        self, n_features: int, tgt_vocab: int, config: SpeechSeq2SeqConfig, *, pad_id: int, bos: int, eos: int,
        unk: int = 1,
    ) -> None:  # fmt: skip
        super().__init__(max(pad_id + 1, 1), tgt_vocab, config, pad_id=pad_id, bos=bos, eos=eos, unk=unk)
        del self.src_embedding  # no source tokens: the frames come in through the subsampler
        self.subsampler = ConvSubsampler(n_features, config.channels, config.subsample)
        self.project = nn.Linear(self.subsampler.output_size, config.embed_size)

    def embed_source(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, F) frames -> the encoder's input (B, S, E) and the subsampled lengths."""
        x, lengths = self.subsampler(src, lengths)
        return self.drop(self.project(x)), lengths.clamp(max=x.shape[1])

    @torch.no_grad()
    def translate(self, src: Tensor, lengths: Tensor, **search) -> list:
        """As :meth:`Seq2Seq.translate`, with ``max_len`` by default 10 tokens a second of audio (100 frames) + 10:
        a source of frames is far longer than its text."""
        search.setdefault("max_len", lengths // 10 + 10)
        return super().translate(src, lengths, **search)
