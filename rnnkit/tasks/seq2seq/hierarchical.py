r"""A hierarchical autoencoder for paragraphs (Li, Luong and Jurafsky 2015, "A Hierarchical Neural Autoencoder for
Paragraphs and Documents"): words make sentence vectors, sentence vectors make a paragraph code, and two decoders
write the paragraph back, one sentence vector at a time and, from each, one word at a time.

For a paragraph of sentences :math:`s_1..s_K`, sentence :math:`s_k = w_{k,1}..w_{k,n_k}`
(``<bos>`` = :math:`w_{k,0}`, ``<eos>`` = :math:`w_{k,n_k+1}`):

.. math::
    e_k &= \text{WordEncoder}(E[w_{k,1..n_k}])^{top}_{final}
        \quad \text{(the top layer's final hidden state, both directions concatenated)} \\
    c &= \text{SentenceEncoder}(e_{1..K})_{final}, \qquad z_0 = \text{bridge}(c) \\
    z_k &= \text{SentenceDecoder}(e_{k-1}, z_{k-1}) \quad (e_0 = 0;\ k = 1..K) \\
    q_k &= \sigma(w_q^\top o_k + b_q) \quad (o_k \text{ the sentence decoder's output: } p(s_k \text{ is the last})) \\
    u_{k,0} &= \text{launch}(o_k), \qquad u_{k,t} = \text{WordDecoder}(E[w_{k,t-1}], u_{k,t-1}) \\
    p(w_{k,t} \mid w_{k,<t}, s_{<k}, c) &= \text{softmax}(W_o u^{top}_{k,t} + b_o) \\
    \mathcal{L} &= -\sum_k \sum_{t=1}^{n_k+1} \log p(w_{k,t} \mid \dots)
        - \sum_k \big[ [k = K] \log q_k + [k < K] \log (1 - q_k) \big]

- **Encoders**: the word encoder reads every sentence of the batch at once (flattened, with lengths); the sentence
  encoder reads each paragraph's sentence vectors (with paragraph lengths). With ``bidirectional`` both read both
  ways with ``hidden / 2`` units a direction, so sentence vectors and paragraph codes have ``hidden`` features.
- **Bridge**: the sentence decoder starts from :class:`rnnkit.tasks.seq2seq.model.Bridge` of the sentence
  encoder's final state (a linear map per layer and state field); each word decoder starts from
  :class:`Launch` of its sentence step's output (a linear map per layer and field of one vector).
- **Teacher forcing**: in training sentence step k reads the word encoder's vector of the gold sentence k-1, and
  the word decoder reads the gold words; both decoders read whole sequences in one call (fused kernels for
  LSTM/GRU/RNN). :meth:`HierarchicalAutoencoder.reconstruct` instead steps sentence by sentence: each written
  sentence (greedy) is read again by the word encoder to feed the next step, until the stop head says
  :math:`q_k > 0.5` or ``max_sentences``.
- **Loss and count**: the sum above, with ``count`` = the target words (``<eos>`` included): the stop decisions
  are part of the paragraph's probability, so loss / count is the paragraph's negative log-likelihood per word
  and its exp a per-word perplexity (slightly above the words' alone, by the stop head's nats; comparable with
  :class:`rnnkit.tasks.seq2seq.model.Seq2Seq`'s sentence autoencoder on the same words). Label smoothing applies
  to the words while training only.
- The encoder and the word decoder share one word embedding: input and output are the same text.

>>> batch = make_paragraph_batch([[[5, 6], [7]], [[8, 9, 10]]], pad_id=0, bos=2, eos=3)
>>> model = HierarchicalAutoencoder(12, HierarchicalConfig(hidden=8), pad_id=0, bos=2, eos=3)
>>> model.code(batch).shape, model.sentence_codes(batch).shape, int(model.loss(batch).count)
(torch.Size([2, 8]), torch.Size([3, 8]), 9)
>>> [len(p) <= 20 for p in model.reconstruct(batch, max_len=4)]
[True, True]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import state as S
from rnnkit.compat import make_layer
from rnnkit.config import option
from rnnkit.data.batching import pad_batch
from rnnkit.errors import RnnkitError
from rnnkit.tasks.base import LossOutput, Task, perplexity
from rnnkit.tasks.seq2seq.model import Bridge, EncoderDecoderConfig, token_cross_entropy, word_dropout
from rnnkit.tasks.seq2seq.search import greedy_search


@dataclass
class HierarchicalConfig(EncoderDecoderConfig):
    """The shared encoder-decoder options (both encoders and both decoders use the cell, sizes and directions;
    label smoothing off by default) and the longest reconstruction."""

    label_smoothing: float = option(
        0.0, "training targets' share of probability spread over the vocabulary", ge=0, lt=1
    )
    max_sentences: int = option(20, "the most sentences a paragraph's reconstruction writes", ge=1, le=100_000)


class ParagraphBatch(NamedTuple):
    words: Tensor  # (N, W) every sentence of every paragraph, in order, padded
    word_lengths: Tensor  # (N,) each >= 1
    sentences: Tensor  # (P,) sentences per paragraph, each >= 1; they sum to N
    tgt_in: Tensor | None = None  # (N, W+1): <bos> w_1 .. w_n, padded
    tgt_out: Tensor | None = None  # (N, W+1): w_1 .. w_n <eos>, padded


def make_paragraph_batch(paragraphs: list[list[list[int]]], *, pad_id: int, bos: int, eos: int) -> ParagraphBatch:
    """Flatten and pad paragraphs (lists of sentences of word ids) into a :class:`ParagraphBatch`; the targets are
    the sentences themselves, with ``<bos>``/``<eos>`` added here.

    >>> b = make_paragraph_batch([[[5, 6], [7]], [[8, 9, 4]]], pad_id=0, bos=2, eos=3)
    >>> b.words.tolist(), b.word_lengths.tolist(), b.sentences.tolist()
    ([[5, 6, 0], [7, 0, 0], [8, 9, 4]], [2, 1, 3], [2, 1])
    >>> b.tgt_in[1].tolist(), b.tgt_out[1].tolist()
    ([2, 7, 0, 0], [7, 3, 0, 0])
    """
    if not paragraphs or any(not p for p in paragraphs) or any(not s for p in paragraphs for s in p):
        raise RnnkitError("a paragraph batch needs at least one paragraph, each of sentences of at least one word")
    flat = [sentence for paragraph in paragraphs for sentence in paragraph]
    words, lengths = pad_batch([torch.as_tensor(s, dtype=torch.long) for s in flat], pad_id, batch_first=True)
    tgt_in, _ = pad_batch([torch.as_tensor([bos, *s], dtype=torch.long) for s in flat], pad_id, batch_first=True)
    tgt_out, _ = pad_batch([torch.as_tensor([*s, eos], dtype=torch.long) for s in flat], pad_id, batch_first=True)
    sentences = torch.tensor([len(p) for p in paragraphs], dtype=torch.long)
    return ParagraphBatch(words, lengths, sentences, tgt_in, tgt_out)


class HierarchicalAutoencoder(Task):
    """Encode paragraphs of a ``vocab_size``-word vocabulary into fixed-size codes and write them back.

    >>> model = HierarchicalAutoencoder(12, HierarchicalConfig(hidden=8, cell="gru"), pad_id=0, bos=2, eos=3)
    >>> batch = make_paragraph_batch([[[5, 6], [7]], [[8]]], pad_id=0, bos=2, eos=3)
    >>> out = model.loss(batch)
    >>> out.loss.shape, int(out.count), sorted(model.metrics(1.0))
    (torch.Size([]), 7, ['loss', 'perplexity'])
    """

    def __init__(self, vocab_size: int, config: HierarchicalConfig, *, pad_id: int, bos: int, eos: int, unk: int = 1):
        super().__init__()
        self.config, self.pad_id, self.bos, self.eos, self.unk = config, pad_id, bos, eos, unk
        E, H, L, D = config.embed_size, config.hidden, config.layers, 1 + config.bidirectional
        if H % D:
            raise RnnkitError(f"bidirectional encoders split --hidden in two: give an even size, got {H}")
        kw: dict[str, Any] = {"init": config.init} if config.init is not None else {}
        kw |= {"dropout": config.dropout} if L > 1 else {}
        both = {"num_layers": L, "bidirectional": D == 2, "batch_first": True}
        self.embedding = nn.Embedding(vocab_size, E, padding_idx=pad_id)
        self.word_encoder = make_layer(config.cell, E, H // D, **both, **kw)
        V = D * self.word_encoder.cells[-1].initial_state(1)[0].shape[-1]  # a sentence vector's size
        self.sentence_encoder = make_layer(config.cell, V, H // D, **both, **kw)
        self.sentence_decoder = make_layer(config.cell, V, H, num_layers=L, batch_first=True, **kw)
        self.word_decoder = make_layer(config.cell, E, H, num_layers=L, batch_first=True, **kw)
        self.bridge = Bridge(self.sentence_encoder.bound_cells(), self.sentence_decoder.bound_cells(), D)
        O = self.sentence_decoder.output_size  # > H for SCRN (its context units)
        self.stop = nn.Linear(O, 1)
        self.launch = Launch(O, self.word_decoder.bound_cells())
        self.drop = nn.Dropout(config.dropout)
        self.generator = nn.Linear(self.word_decoder.output_size, vocab_size)

    @property
    def directions(self) -> int:
        return 1 + self.config.bidirectional

    # -- encoding ---------------------------------------------------------------------------------------------

    def _sentence_vectors(self, words: Tensor, lengths: Tensor) -> Tensor:
        """(N, V): each sentence's final top-layer hidden state, both directions concatenated."""
        _, final = self.word_encoder(self.drop(self.embedding(words)), lengths=lengths)
        return _top(final, self.directions)

    def _grid(self, vectors: Tensor, sentences: Tensor) -> tuple[Tensor, Tensor]:
        """The sentence vectors (N, V) laid out by paragraph (P, K, V), zeros past each paragraph's end, and the
        mask (P, K) of real sentences; rows of ``vectors`` follow the mask in row-major order."""
        K = int(sentences.max())
        mask = torch.arange(K, device=vectors.device) < sentences.to(vectors.device).unsqueeze(1)
        index = mask.flatten().nonzero().squeeze(1)
        grid = vectors.new_zeros(mask.numel(), vectors.shape[-1]).index_copy(0, index, vectors)
        return grid.view(*mask.shape, -1), mask

    def _start(self, grid: Tensor, sentences: Tensor) -> Any:
        """The sentence decoder's initial state (fields (L, P, ...)), bridged from the sentence encoder's final."""
        _, final = self.sentence_encoder(grid, lengths=sentences)
        P, kw = grid.shape[0], {"device": grid.device, "dtype": grid.dtype}
        return S.stack(self.bridge(final, [cell.initial_state(P, **kw) for cell in self.sentence_decoder.cells]))

    @torch.no_grad()
    def sentence_codes(self, batch: ParagraphBatch) -> Tensor:
        """Each sentence's vector (N, H) from the word encoder, in eval mode."""
        with _evaluating(self):
            return self._sentence_vectors(batch.words, batch.word_lengths)

    @torch.no_grad()
    def code(self, batch: ParagraphBatch) -> Tensor:
        """Each paragraph's code (P, H): the sentence encoder's top layer's final hidden state, both directions
        concatenated (its whole final state is what the bridge maps), in eval mode."""
        with _evaluating(self):
            grid, _ = self._grid(self._sentence_vectors(batch.words, batch.word_lengths), batch.sentences)
            _, final = self.sentence_encoder(grid, lengths=batch.sentences)
            return _top(final, self.directions)

    # -- teacher-forced decoding ------------------------------------------------------------------------------

    def forward(self, batch: ParagraphBatch) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher-forced scores: the words' logits (N, W+1, vocab), the stop logits (P, K) and the mask (P, K)
        of real sentences."""
        if batch.tgt_in is None:
            raise RnnkitError("this batch has no targets: build it with make_paragraph_batch")
        grid, mask = self._grid(self._sentence_vectors(batch.words, batch.word_lengths), batch.sentences)
        previous = F.pad(grid[:, :-1], (0, 0, 1, 0))  # sentence k reads the gold sentence k-1; the first, zeros
        out, _ = self.sentence_decoder(previous, self._start(grid, batch.sentences), lengths=batch.sentences)
        return self._write(out[mask], batch.tgt_in), self.stop(out).squeeze(-1), mask

    def _write(self, starts: Tensor, tgt_in: Tensor) -> Tensor:
        """Every sentence's word logits (N, W+1, vocab), all at once, each decoder started from its row of
        ``starts`` (N, O)."""
        N, kw = starts.shape[0], {"device": starts.device, "dtype": starts.dtype}
        state = S.stack(self.launch(starts, [cell.initial_state(N, **kw) for cell in self.word_decoder.cells]))
        lengths = (tgt_in != self.pad_id).sum(1)  # <bos> is always there
        x = self.drop(self.embedding(self._word_dropout(tgt_in)))
        y, _ = self.word_decoder(x, state, lengths=lengths)
        return self.generator(self.drop(y))

    def _word_dropout(self, tokens: Tensor) -> Tensor:
        return word_dropout(tokens, self.config.word_dropout if self.training else 0.0, self.pad_id, self.unk)

    # -- the task contract ------------------------------------------------------------------------------------

    def loss(self, batch: ParagraphBatch, state: Any = None) -> LossOutput:
        """Word cross-entropy over the target words plus the stop head's cross-entropy over the real sentences,
        summed; ``count`` is the target words (see the module docstring)."""
        words, stops, mask = self(batch)
        smoothing = self.config.label_smoothing if self.training else 0.0
        word_loss = token_cross_entropy(words, batch.tgt_out, self.pad_id, smoothing)
        last = torch.arange(mask.shape[1], device=mask.device) == (mask.sum(1, keepdim=True) - 1)
        stop_loss = F.binary_cross_entropy_with_logits(stops[mask], last[mask].to(stops.dtype), reduction="sum")
        return LossOutput(word_loss + stop_loss, (batch.tgt_out != self.pad_id).sum(), None)

    def metrics(self, mean_loss: float) -> dict[str, float]:
        return {"loss": mean_loss, "perplexity": perplexity(mean_loss)}

    # -- generation -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def reconstruct(
        self, batch: ParagraphBatch, *, max_len: int | None = None, max_sentences: int | None = None
    ) -> list[list[list[int]]]:
        """Each paragraph written back from its code alone, greedily, as lists of sentences of word ids (without
        <bos>/<eos>). ``max_len``: the most words per sentence (default twice the batch's longest sentence + 10);
        ``max_sentences``: the most sentences per paragraph (default the config's)."""
        limit = 2 * int(batch.word_lengths.max()) + 10 if max_len is None else max_len
        most = self.config.max_sentences if max_sentences is None else max_sentences
        if limit < 0 or most < 1:
            raise RnnkitError(f"max_len must be >= 0 and max_sentences >= 1, got {limit} and {most}")
        with _evaluating(self):
            return self._generate(batch, limit, most)

    def _generate(self, batch: ParagraphBatch, max_len: int, most: int) -> list[list[list[int]]]:
        """Step the sentence decoder over all paragraphs at once; those the stop head ended ride along unread."""
        grid, _ = self._grid(self._sentence_vectors(batch.words, batch.word_lengths), batch.sentences)
        state, P = self._start(grid, batch.sentences), grid.shape[0]
        x = grid.new_zeros(P, grid.shape[-1])  # the first sentence step reads zeros, as in training
        live = torch.ones(P, dtype=torch.bool, device=grid.device)
        out: list[list[list[int]]] = [[] for _ in range(P)]
        for _ in range(most):
            y, state = self.sentence_decoder(x.unsqueeze(1), state)
            y, rows = y[:, 0], live.nonzero().squeeze(1)
            written = self._write_greedy(y[rows], max_len)
            for row, tokens in zip(rows.tolist(), written, strict=True):
                out[row].append(tokens)
            x = x.index_copy(0, rows, self._reread(written, grid.device))
            live &= torch.sigmoid(self.stop(y).squeeze(-1)) <= 0.5
            if not bool(live.any()):
                break
        return out

    def _write_greedy(self, starts: Tensor, max_len: int) -> list[list[int]]:
        """One greedy sentence per row of ``starts`` (n, O), batched through :func:`greedy_search`."""
        n, kw = starts.shape[0], {"device": starts.device, "dtype": starts.dtype}
        cells = self.word_decoder.bound_cells()  # bound once: every step reads the same weights
        state = tuple(self.launch(starts, [cell.initial_state(n, **kw) for cell in self.word_decoder.cells]))

        def step(tokens: Tensor, layers: tuple) -> tuple[Tensor, tuple]:
            y, new = self.embedding(tokens), []
            for cell, s in zip(cells, layers, strict=True):
                y, s = cell(y, s)
                new.append(s)
            return F.log_softmax(self.generator(y), dim=-1), tuple(new)

        return [h.tokens for h in greedy_search(step, state, bos=self.bos, eos=self.eos, max_len=max_len)]

    def _reread(self, sentences: list[list[int]], device: torch.device) -> Tensor:
        """The word encoder's vectors (n, V) of written sentences; an empty one reads a single padding word (whose
        embedding is zero), as the encoder needs one step."""
        ids = [torch.as_tensor(s or [self.pad_id], dtype=torch.long) for s in sentences]
        words, lengths = pad_batch(ids, self.pad_id, batch_first=True)
        return self._sentence_vectors(words.to(device), lengths)


class Launch(nn.Module):
    """Each decoder layer's initial state from one vector: a linear map per layer and state field; a field that
    is not a float (Clockwork's step counter) starts at the decoder cell's own value."""

    def __init__(self, size: int, decoder_cells: list) -> None:
        super().__init__()
        self.types = [type(cell.initial_state(1)) for cell in decoder_cells]
        maps = {}
        for layer, cell in enumerate(decoder_cells):
            start = cell.initial_state(1)
            for name, field in zip(start._fields, start, strict=True):
                if field.is_floating_point():
                    maps[f"l{layer}_{name}"] = nn.Linear(size, field.shape[-1])
        self.maps = nn.ModuleDict(maps)

    def forward(self, vector: Tensor, initial: list) -> list:
        """``vector`` (B, size); ``initial``: the decoder cells' own initial states (B rows each)."""
        out = []
        for layer, (make, start) in enumerate(zip(self.types, initial, strict=True)):
            keys = [f"l{layer}_{name}" for name in make._fields]
            out.append(make(*(self.maps[k](vector) if k in self.maps else s for k, s in zip(keys, start, strict=True))))
        return out


def _top(final: Any, directions: int) -> Tensor:
    """The top layer's hidden state (B, D*h) from a layer's final state (fields (L*D, B, h); torch's GRU/RNN
    layers give the one tensor)."""
    h = final if isinstance(final, Tensor) else final[0]
    return torch.cat([h[h.shape[0] - directions + d] for d in range(directions)], dim=-1)


@contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode for the block (no dropout), then the mode the module had."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


__all__ = [
    "HierarchicalAutoencoder",
    "HierarchicalConfig",
    "Launch",
    "ParagraphBatch",
    "make_paragraph_batch",
]
