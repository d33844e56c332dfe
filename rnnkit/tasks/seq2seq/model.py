r"""An encoder-decoder (many-to-many, unaligned): read the whole source, then write the target token by token.

For a source :math:`x_1..x_S` and a target :math:`y_1..y_T` (``<bos>`` = :math:`y_0`, ``<eos>`` = :math:`y_{T+1}`):

.. math::
    \bar h_{1..S} &= \text{Encoder}(E_x[x_{1..S}]) \quad \text{(any cell, stacked, optionally bidirectional)} \\
    s_0 &= \text{bridge}(\text{the encoder's final states}) \\
    s_t &= \text{Decoder}([E_y[y_{t-1}]; \tilde h_{t-1}], s_{t-1}) \quad (\tilde h_{t-1} \text{ with input feeding}) \\
    c_t, a_t &= \text{attention}(s_t^{top}, \bar h_{1..S}), \qquad
    \tilde h_t = \tanh(W_c [c_t; s_t^{top}]) \\
    p(y_t \mid y_{<t}, x) &= \text{softmax}(W_o \tilde h_t + b_o)

Luong et al. 2015's decoder with any of :data:`rnnkit.tasks.seq2seq.attention.ATTENTIONS` as the score
(``additive`` is Bahdanau et al.'s score, as OpenNMT's "mlp"). With ``attention="none"``, :math:`\tilde h_t = s_t`:
the whole source reaches the decoder through :math:`s_0` alone (Sutskever et al. 2014; Cho et al. 2014).

- **Bridge**: each decoder layer's state starts from a linear map of the same encoder layer's final state
  (both directions concatenated), field by field (an LSTM's h and c each get their own); a field that is not a
  float (Clockwork's step counter) starts at the decoder's own initial value.
- **Teacher forcing**: training reads the gold previous token; ``teacher_forcing < 1`` reads, for each sentence
  and step with probability 1 - ratio, the model's own previous argmax instead (scheduled-sampling style).
- **Two ways through the decoder, one result**: with input feeding (or a teacher-forcing ratio below 1) each
  step needs the previous one's output, so training steps the decoder's cells one token at a time (the reference
  loop); without it the decoder layer reads the whole target at once (torch's fused kernels for LSTM/GRU/RNN)
  and attention runs over all steps in one batched product. Tests check the two give the same loss.
- **Loss**: cross-entropy summed over target tokens (``<eos>`` included, padding excluded), with label
  smoothing while training; the validation loss is the plain one (its exp is the perplexity).
- **Search**: :meth:`Seq2Seq.translate` runs :mod:`rnnkit.tasks.seq2seq.search` (greedy or batched beam) over
  :meth:`Seq2Seq.step`, which advances every hypothesis by one token.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import onednn
from rnnkit import state as S
from rnnkit.cells import CELLS
from rnnkit.compat import make_layer
from rnnkit.config import MAX_WIDTH, check_fields, option
from rnnkit.data.batching import pad_batch
from rnnkit.errors import RnnkitError
from rnnkit.init import SCHEMES
from rnnkit.tasks import stepping
from rnnkit.tasks.base import LossOutput, Task, perplexity
from rnnkit.tasks.seq2seq.attention import ATTENTIONS, make_attention


@dataclass
class EncoderDecoderConfig:
    """What every rnnkit encoder-decoder shares: the cell, sizes, directions, regularisation, initialisation."""

    cell: str = option("lstm", "recurrent cell of the encoder and the decoder", choices=tuple(CELLS))
    hidden: int = option(
        256, "units per decoder layer and per encoder layer (half each way if bidirectional)", ge=1, le=MAX_WIDTH
    )
    layers: int = option(1, "stacked layers in the encoder and in the decoder", ge=1, le=100)
    embed: int | None = option(None, "token embedding size (default: --hidden)", ge=1, le=MAX_WIDTH)
    bidirectional: bool = option(True, "the encoder reads the source in both directions")
    dropout: float = option(0.2, "dropout on embeddings, between layers and before the output layer", ge=0, lt=1)
    label_smoothing: float = option(
        0.1, "training targets' share of probability spread over the vocabulary", ge=0, lt=1
    )
    word_dropout: float = option(
        0.0,
        "while training, replace each decoder input word by <unk> with this chance (autoencoders: the code must "
        "carry the content)",
        ge=0,
        lt=1,
    )
    init: str | None = option(
        None, "initialisation of the recurrent layers (default: the cell's own)", choices=(None, *SCHEMES)
    )

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def embed_size(self) -> int:
        return self.embed or self.hidden


@dataclass
class Seq2SeqConfig(EncoderDecoderConfig):
    attention: str = option("general", "the attention score, or none", choices=ATTENTIONS)
    attention_size: int | None = option(None, "additive attention's hidden size (default: --hidden)", ge=1)
    attention_scale: bool = option(
        True, "divide dot and general scores by sqrt(size), as Vaswani et al. (unscaled, they saturate early)"
    )
    input_feed: bool = option(True, "feed each step's attentional vector to the next step's input (Luong)")
    tie_embeddings: bool = option(False, "the decoder's input embedding and its output layer share one matrix")
    teacher_forcing: float = option(
        1.0, "chance of reading the gold previous token while training (else the model's own guess)", ge=0, le=1
    )


class Seq2SeqBatch(NamedTuple):
    src: Tensor  # (B, S) source ids, padded
    src_lengths: Tensor  # (B,) each >= 1
    tgt_in: Tensor | None = None  # (B, T+1): <bos> y_1 .. y_T, padded
    tgt_out: Tensor | None = None  # (B, T+1): y_1 .. y_T <eos>, padded


def make_batch(
    sources: list[list[int]], targets: list[list[int]] | None = None, *, pad_id: int, bos: int, eos: int
) -> Seq2SeqBatch:
    """Pad id sequences into a :class:`Seq2SeqBatch` (targets without ``<bos>``/``<eos>``; they are added here).

    >>> b = make_batch([[5, 6, 7], [8]], [[9], [10, 11]], pad_id=0, bos=2, eos=3)
    >>> b.src.tolist(), b.tgt_in.tolist(), b.tgt_out.tolist()
    ([[5, 6, 7], [8, 0, 0]], [[2, 9, 0], [2, 10, 11]], [[9, 3, 0], [10, 11, 3]])
    """
    src, lengths = pad_batch([torch.as_tensor(s, dtype=torch.long) for s in sources], pad_id, batch_first=True)
    if targets is None:
        return Seq2SeqBatch(src, lengths)
    tgt_in, _ = pad_batch([torch.as_tensor([bos, *t], dtype=torch.long) for t in targets], pad_id, batch_first=True)
    tgt_out, _ = pad_batch([torch.as_tensor([*t, eos], dtype=torch.long) for t in targets], pad_id, batch_first=True)
    return Seq2SeqBatch(src, lengths, tgt_in, tgt_out)


def token_cross_entropy(logits: Tensor, targets: Tensor, pad_id: int, smoothing: float) -> Tensor:
    """Cross-entropy of (B, T, V) logits against (B, T) targets, summed over the non-padding targets, with label
    smoothing ``smoothing``."""
    return F.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), ignore_index=pad_id, label_smoothing=smoothing, reduction="sum"
    )


def word_dropout(tokens: Tensor, p: float, pad_id: int, unk: int) -> Tensor:
    """Each decoder input word after <bos> (column 0) becomes <unk> with chance ``p`` (Bowman et al. 2016);
    padding stays.

    >>> word_dropout(torch.tensor([[2, 7, 8, 0]]), 0.0, 0, 1).tolist()
    [[2, 7, 8, 0]]
    """
    if p == 0:
        return tokens
    hide = (torch.rand(tokens.shape, device=tokens.device) < p) & (tokens != pad_id)
    hide[:, 0] = False  # <bos>
    return tokens.masked_fill(hide, unk)


class DecoderState(NamedTuple):
    """What one decoding step reads and writes; every tensor has the hypotheses on dim 0 (beam search reorders)."""

    cells: tuple  # each decoder layer's cell state
    feed: Tensor | None  # (N, H) the previous attentional vector (input feeding), else None
    memory: Tensor  # (N, S, M) encoder outputs
    mask: Tensor  # (N, S) true at real source positions
    keys: Tensor | None  # (N, S, K) the memory's share of the attention score, else None
    # (N,) the row of memory, mask and keys each hypothesis reads, which then hold one row per live sentence
    # (beam search: its hypotheses share them, see Attention._shared); None: row r reads row r
    source: Tensor | None = None


class Seq2Seq(Task):
    """Translate id sequences of a ``src_vocab``-word vocabulary into ones of a ``tgt_vocab``-word vocabulary.

    >>> model = Seq2Seq(20, 30, Seq2SeqConfig(hidden=8, attention="additive"), pad_id=0, bos=2, eos=3)
    >>> batch = make_batch([[5, 6, 7], [8]], [[9], [10, 11]], pad_id=0, bos=2, eos=3)
    >>> model.logits(batch).shape, int(model.loss(batch).count)
    (torch.Size([2, 3, 30]), 5)
    >>> [len(h) for h in model.translate(batch.src, batch.src_lengths, beam_size=3, n_best=2)]
    [2, 2]
    """

    #: the best weights, early stopping and plateaus follow validation BLEU (of greedy output, on token ids)
    selection = ("bleu", "max")

    def __init__(
        self, src_vocab: int, tgt_vocab: int, config: Seq2SeqConfig, *, pad_id: int, bos: int, eos: int, unk: int = 1
    ):
        super().__init__()
        self.config, self.pad_id, self.bos, self.eos, self.unk = config, pad_id, bos, eos, unk
        E, H, L, D = config.embed_size, config.hidden, config.layers, 1 + config.bidirectional
        self.feeds = config.input_feed and config.attention != "none"
        kw: dict[str, Any] = {"init": config.init} if config.init is not None else {}
        kw |= {"dropout": config.dropout} if L > 1 else {}
        self.src_embedding = nn.Embedding(src_vocab, E, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab, E, padding_idx=pad_id)
        # OpenNMT's convention: the encoder's outputs have --hidden features, half per direction when it reads both
        # ways, so every attention (dot too) and the bridge see one size
        if H % D:
            raise RnnkitError(f"a bidirectional encoder splits --hidden in two: give an even size, got {H}")
        self.encoder = make_layer(config.cell, E, H // D, num_layers=L, bidirectional=D == 2, batch_first=True, **kw)
        self.decoder = make_layer(config.cell, E + H * self.feeds, H, num_layers=L, batch_first=True, **kw)
        M, O = self.encoder.output_size, self.decoder.output_size  # O > H for SCRN (its context units)
        self.bridge = Bridge(self.encoder.bound_cells(), self.decoder.bound_cells(), D)
        self.attention = make_attention(config.attention, O, M, config.attention_size, scaled=config.attention_scale)
        self.combine = nn.Linear(M + O, H, bias=False) if self.attention is not None else None  # W_c
        out = H if self.attention is not None else O  # the size of h~_t
        self.drop = nn.Dropout(config.dropout)
        self.tie = nn.Linear(out, E, bias=False) if config.tie_embeddings and out != E else None
        self.generator = nn.Linear(E if config.tie_embeddings else out, tgt_vocab)
        if config.tie_embeddings:
            self.generator.weight = self.tgt_embedding.weight

    # -- encoding -------------------------------------------------------------------------------------------

    def embed_source(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The encoder's input (B, S, E) and lengths: the source tokens' embeddings (a speech model subsamples
        feature frames here instead, :class:`rnnkit.tasks.seq2seq.speech.SpeechSeq2Seq`)."""
        return self.drop(self.src_embedding(src)), lengths

    def encode(self, src: Tensor, lengths: Tensor) -> DecoderState:
        """The state before the first target token: the bridged encoder state and the attention's memory."""
        x, lengths = self.embed_source(src, lengths)
        memory, final = self.encoder(x, lengths=lengths)
        mask = torch.arange(x.shape[1], device=x.device) < lengths.unsqueeze(1)  # (B, S)
        B, kw = x.shape[0], {"device": memory.device, "dtype": memory.dtype}
        cells = self.bridge(final, [cell.initial_state(B, **kw) for cell in self.decoder.cells])
        keys = self.attention.keys(memory) if self.attention is not None else None
        feed = memory.new_zeros(B, self.config.hidden) if self.feeds else None
        return DecoderState(tuple(cells), feed, memory, mask, keys)

    # -- decoding -------------------------------------------------------------------------------------------

    def step(
        self, tokens: Tensor, state: DecoderState, cells: list | None = None, generator: Tensor | None = None
    ) -> tuple[Tensor, DecoderState]:
        """Advance each hypothesis by one token: (N,) ids -> log-probabilities (N, V) of the next token. ``cells``
        and ``generator`` (the output layer's weight) as :meth:`decoding_weights` gives them, else the modules'."""
        out, state, _ = self._advance(self.tgt_embedding(tokens), state, cells or self.decoder.bound_cells())
        return F.log_softmax(self._logits(out, generator), dim=-1), state

    def decoding_weights(self, rows: int) -> tuple[list, Tensor]:
        """The decoder's bound cells and the output layer's weight, laid out for a search over about ``rows``
        hypotheses. A few rows (one sentence served, its beam): generation's layouts
        (:func:`rnnkit.tasks.stepping.fast_layout`), whose matrix-vector products run faster. More, on the CPU in
        float32: the matrices at least 4 times wider than tall (the output layer, LSTM gates) as
        :class:`rnnkit.onednn.OneDNNMatrix`; the output layer of the Multi30k translator, (rows x 256) . (256 x
        5921) on one thread, took 3.2 ms through F.linear and 1.9 through oneDNN at 64 rows, 19.2 and 6.8 at 320
        (the rows of beam 5), so the wider search gains most."""
        # the layouts are copies: made once per size and set of weights (a training step or load changes _version)
        key = (rows, tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters()))
        cached = self.__dict__.get("_decoding_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        made = self._decoding_weights(rows)
        self.__dict__["_decoding_cache"] = (key, made)  # not a submodule: state_dict and .to() ignore it
        return made

    def _decoding_weights(self, rows: int) -> tuple[list, Tensor]:
        cells, weight = self.decoder.bound_cells(), self.generator.weight
        if rows <= stepping.SMALL_BATCH:
            return stepping.fast_cells(cells), stepping.fast_layout(weight.detach())
        cpu = weight.device.type == "cpu" and weight.dtype == torch.float32
        if cpu and onednn.usable() and rows >= onednn.MIN_ROWS:
            cells = onednn.onednn_cells(cells, rows, backward=False)
            weight = onednn.OneDNNMatrix(weight, rows, backward=False)
        return cells, weight

    def _advance(self, x: Tensor, state: DecoderState, cells: list) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One decoder step on embedded tokens ``x`` (N, E): the attentional vector h~_t (N, H), the new state and
        the attention weights (N, S) (None without attention)."""
        x = self.drop(x)
        y = torch.cat([x, state.feed], dim=-1) if state.feed is not None else x
        new = []
        for layer, (cell, s) in enumerate(zip(cells, state.cells, strict=True)):
            y, s = cell(y, s)
            new.append(s)
            if layer < len(cells) - 1:
                y = F.dropout(y, self.config.dropout, self.training)
        out, weights = self._attend(y, state.memory, state.mask, state.keys, state.source)
        return out, state._replace(cells=tuple(new), feed=out if self.feeds else None), weights

    def _attend(
        self, y: Tensor, memory: Tensor, mask: Tensor, keys: Tensor | None, source: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """h~ = tanh(W_c [c; y]) from the decoder's top output ``y`` ((N, H) or (N, T, H)), and the attention
        weights; y and None without attention."""
        if self.attention is None:
            return y, None
        context, weights = self.attention(y, memory, mask, keys, source)
        return torch.tanh(self.combine(torch.cat([context, y], dim=-1))), weights

    def _logits(self, out: Tensor, generator: Tensor | None = None) -> Tensor:
        out = self.drop(out)
        out = self.tie(out) if self.tie is not None else out
        return self.generator(out) if generator is None else F.linear(out, generator, self.generator.bias)

    def logits(self, batch: Seq2SeqBatch) -> Tensor:
        """(B, T+1, V) scores of each target position given the gold (or, teacher forcing < 1, sampled) prefix."""
        state = self.encode(batch.src, batch.src_lengths)
        x = self.tgt_embedding(self._word_dropout(batch.tgt_in))  # (B, T+1, E)
        forcing = self.config.teacher_forcing if self.training else 1.0
        if not self.feeds and forcing == 1.0:  # the whole target at once: fused kernels, one attention product
            lengths = (batch.tgt_in != self.pad_id).sum(1).clamp(min=1)
            y, _ = self.decoder(self.drop(x), S.stack(list(state.cells)), lengths=lengths)
            return self._logits(self._attend(y, state.memory, state.mask, state.keys)[0])
        return self._logits(self._step_through(x, state, forcing)[0])

    def _word_dropout(self, tokens: Tensor) -> Tensor:
        return word_dropout(tokens, self.config.word_dropout if self.training else 0.0, self.pad_id, self.unk)

    @torch.no_grad()
    def code(self, src: Tensor, lengths: Tensor) -> Tensor:
        """Each source's fixed-size code (B, H): the encoder's top layer's final hidden state, both directions
        concatenated (what a model without attention decodes from; a sequence autoencoder's sentence vector).

        >>> model = Seq2Seq(20, 20, Seq2SeqConfig(hidden=8, attention="none"), pad_id=0, bos=2, eos=3)
        >>> model.code(torch.tensor([[5, 6, 7], [8, 0, 0]]), torch.tensor([3, 1])).shape
        torch.Size([2, 8])
        """
        was_training = self.training
        self.eval()
        try:
            x, lengths = self.embed_source(src, lengths)
            _, final = self.encoder(x, lengths=lengths)
        finally:
            self.train(was_training)
        h = final if isinstance(final, Tensor) else final[0]  # (L*D, B, H/D)
        D = 1 + self.config.bidirectional
        return torch.cat([h[h.shape[0] - D + d] for d in range(D)], dim=-1)

    def _step_through(self, x: Tensor, state: DecoderState, forcing: float) -> tuple[Tensor, list]:
        """The reference loop: the attentional vectors (B, T+1, H), one step at a time, and each step's attention
        weights (B, S) (None without attention)."""
        cells, outs, weights = self.decoder.bound_cells(), [], []
        for t, x_t in enumerate(x.unbind(1)):
            if forcing < 1.0 and t > 0:  # each sentence reads its own previous guess with probability 1 - forcing
                guess = self.tgt_embedding(self._logits(outs[-1]).argmax(-1))
                own = torch.rand(x_t.shape[0], 1, device=x_t.device) >= forcing
                x_t = torch.where(own, guess, x_t)
            out, state, w = self._advance(x_t, state, cells)
            outs.append(out)
            weights.append(w)
        return torch.stack(outs, dim=1), weights

    @torch.no_grad()
    def attention_map(self, src: Tensor, lengths: Tensor, outputs: list[list[int]]) -> Tensor:
        """The attention weights (B, T+1, S) of each source's decoder while it writes ``outputs`` (ids without
        <bos>/<eos>; the last row is the step that writes <eos>), in eval mode; zero beyond each output's length.

        >>> model = Seq2Seq(20, 30, Seq2SeqConfig(hidden=8), pad_id=0, bos=2, eos=3)
        >>> weights = model.attention_map(torch.tensor([[5, 6, 7]]), torch.tensor([3]), [[9, 10]])
        >>> weights.shape, [round(w, 4) for w in weights.sum(-1)[0].tolist()]
        (torch.Size([1, 3, 3]), [1.0, 1.0, 1.0])
        """
        if self.attention is None:
            raise RnnkitError("this model has no attention (--attention none): there is no map to show")
        was_training = self.training
        self.eval()
        try:
            batch = make_batch([[self.pad_id]] * len(outputs), outputs, pad_id=self.pad_id, bos=self.bos, eos=self.eos)
            _, weights = self._step_through(self.tgt_embedding(batch.tgt_in), self.encode(src, lengths), 1.0)
        finally:
            self.train(was_training)
        real = (batch.tgt_out != self.pad_id).unsqueeze(-1)
        return torch.stack(weights, dim=1) * real

    # -- the task contract -------------------------------------------------------------------------------------

    def loss(self, batch: Seq2SeqBatch, state: Any = None) -> LossOutput:
        smoothing = self.config.label_smoothing if self.training else 0.0
        loss = token_cross_entropy(self.logits(batch), batch.tgt_out, self.pad_id, smoothing)
        return LossOutput(loss, (batch.tgt_out != self.pad_id).sum(), None)

    def metrics(self, mean_loss: float) -> dict[str, float]:
        return {"loss": mean_loss, "perplexity": perplexity(mean_loss)}

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Seq2SeqBatch]) -> dict[str, float]:
        """The loss and perplexity, and ``bleu``: BLEU of greedy translations against the references, on token
        ids (sacrebleu, no tokenisation). It picks the best weights; it is not the detokenised BLEU a paper
        reports (``rnnkit translate eval`` gives that)."""
        from rnnkit.tasks.seq2seq.bleu import corpus_scores

        batches = list(batches)
        result = super().evaluate(batches)
        hypotheses, references = [], []
        for batch in batches:
            for (best,), gold in zip(self.translate(batch.src, batch.src_lengths), batch.tgt_out.tolist(), strict=True):
                hypotheses.append(" ".join(map(str, best.tokens)))
                references.append(" ".join(map(str, gold[: gold.index(self.eos)])))
        return result | {"bleu": corpus_scores(hypotheses, references, tokenize="none")["bleu"]}

    @torch.no_grad()
    def translate(
        self,
        src: Tensor,
        lengths: Tensor,
        *,
        beam_size: int = 1,
        max_len: Tensor | int | None = None,
        length_penalty: float = 1.0,
        n_best: int = 1,
        constraint: Any = None,
        early_stop: bool = False,
        shrink: bool = False,
    ) -> list[list[Any]]:
        """Each source's ``n_best`` translations (:class:`rnnkit.tasks.seq2seq.search.Hypothesis`, best first):
        greedy for ``beam_size=1``, else batched beam search; ``max_len`` defaults to 2 * source length + 10."""
        from rnnkit.tasks.seq2seq import search

        was_training = self.training
        self.eval()
        try:
            state = self.encode(src, lengths)
            cells, generator = self.decoding_weights(src.shape[0] * beam_size)  # once: every step reads them

            def step(tokens: Tensor, s: DecoderState) -> tuple[Tensor, DecoderState]:
                return self.step(tokens, s, cells, generator)

            limit = 2 * lengths + 10 if max_len is None else max_len
            kw = {"bos": self.bos, "eos": self.eos, "max_len": limit, "constraint": constraint}
            if beam_size == 1 and n_best == 1:
                return [[h] for h in search.greedy_search(step, state, length_penalty=length_penalty, **kw)]
            # a sentence's hypotheses share its memory, mask and keys: only the rest is reordered
            state = state._replace(source=torch.arange(src.shape[0], device=src.device))
            return search.beam_search(
                step, state, beam_size=beam_size, length_penalty=length_penalty, n_best=n_best,
                early_stop=early_stop, shrink=shrink, reorder=_reorder_hypotheses, **kw,
            )  # fmt: skip
        finally:
            self.train(was_training)


def _reorder_hypotheses(state: DecoderState, index: Tensor) -> DecoderState:
    """Beam search's ``reorder`` for a state with ``source``: rows ``index`` of all but the shared memory, mask
    and keys, which lose only the rows of sentences no hypothesis reads any more (``source`` renumbered)."""
    cells, feed, source = S.tree_map(lambda t: t.index_select(0, index), (state.cells, state.feed, state.source))
    used, source = torch.unique_consecutive(source, return_inverse=True)
    state = state._replace(cells=cells, feed=feed, source=source)
    if used.numel() == state.memory.shape[0]:
        return state
    keys = state.keys.index_select(0, used) if state.keys is not None else None
    return state._replace(memory=state.memory.index_select(0, used), mask=state.mask.index_select(0, used), keys=keys)


class Bridge(nn.Module):
    """Each decoder layer's initial state from the same encoder layer's final state (directions concatenated):
    a linear map per layer and state field; a field that is not a float starts at the decoder cell's own value."""

    def __init__(self, encoder_cells: list, decoder_cells: list, directions: int) -> None:
        super().__init__()
        self.directions = directions
        self.types = [type(c.initial_state(1)) for c in decoder_cells]
        maps = {}
        for layer, cell in enumerate(decoder_cells):
            enc, dec = encoder_cells[layer * directions].initial_state(1), cell.initial_state(1)
            for name, e, d in zip(dec._fields, enc, dec, strict=True):
                if e.is_floating_point() and d.is_floating_point():
                    maps[f"l{layer}_{name}"] = nn.Linear(directions * e.shape[-1], d.shape[-1])
        self.maps = nn.ModuleDict(maps)

    def forward(self, final: Any, initial: list) -> list:
        """``final``: the encoder's final state (fields (L*D, B, ...)); ``initial``: the decoder cells' zeros."""
        fields = (final,) if isinstance(final, Tensor) else tuple(final)  # torch's GRU/RNN state is one tensor
        D, out = self.directions, []
        for layer, (make, start) in enumerate(zip(self.types, initial, strict=True)):
            values = []
            for j, name in enumerate(make._fields):
                key = f"l{layer}_{name}"
                if key in self.maps:
                    both = torch.cat([fields[j][layer * D + d] for d in range(D)], dim=-1)  # (B, D*n)
                    values.append(self.maps[key](both))
                else:
                    values.append(start[j])
            out.append(make(*values))
        return out
