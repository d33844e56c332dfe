"""The graphs of the sequence tasks (classify, tag, translate, ctc): modules that take padded tensors and lengths
and return what a deployment needs, built from :mod:`rnnkit.export_layers` (no packing, a dynamic time axis).

Each ``*_graphs(run)`` returns a list of :class:`Graph`: the module, example inputs, the input and output names,
which dimensions of each input are dynamic, and the metadata a caller needs (vocabularies, labels, special ids).
One graph per file; a translation model has two, the encoder and the decoder step. Inputs and outputs are
batch-first, as the task models are: (B, T) ids, (B,) int64 lengths.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils import _pytree as pytree

from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import RnnkitError
from rnnkit.export_layers import char_features, lm_string_features, pool, run_layer, time_mask, viterbi
from rnnkit.tasks.classify import top_label_weights
from rnnkit.tasks.tag import context_window

BATCH, TIME, CHARS, SOURCE = "batch", "time", "chars", "source"


class Graph(NamedTuple):
    module: nn.Module
    example: tuple[Tensor, ...]
    inputs: list[str]
    outputs: list[str]
    dynamic: list[dict[int, str]]  # per input: dimension -> its name (batch, time, ...)
    meta: dict[str, Any]
    part: str | None = None  # "encoder" / "decoder" when a run exports as several graphs


def _example(batch: int = 3, steps: int = 6, high: int = 10, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random ids (B, T) in 4..high-1 (the specials first) and lengths with padding in all but the first row."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([steps, *torch.randint(1, steps, (batch - 1,), generator=g).tolist()])
    return torch.randint(min(4, high - 1), high, (batch, steps), generator=g), lengths


def _chars_example(ids: Tensor, num_chars: int, width: int = 5) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(1, num_chars, (*ids.shape, width), generator=g), torch.randint(
        1, width + 1, ids.shape, generator=g
    )


def _vocab(v: Any) -> dict[str, Any]:
    return {"tokens": list(v.tokens), "pad_id": v.pad_id, "unk_id": v.unk_id}


def _io(names: list[str], shapes: list[list[str | int]], dtypes: list[str]) -> list[dict[str, Any]]:
    return [{"name": n, "shape": s, "dtype": d} for n, s, d in zip(names, shapes, dtypes, strict=True)]


# -- classify and tag: one run, or several as one ensemble ------------------------------------------------------


class Member(nn.Module):
    """One run's model in a graph, and the maps from the graph's word and character ids to the model's own (None:
    the same ids). An ensemble's graph reads one vocabulary, the union of its runs' (:func:`_members`)."""

    def __init__(self, model: nn.Module, word_map: Tensor | None, char_map: Tensor | None) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("word_map", word_map, persistent=False)
        self.register_buffer("char_map", char_map, persistent=False)

    def inputs(self, ids: Tensor, chars: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The graph's ids (B, T) and characters as this model's."""
        ids = ids if self.word_map is None else self.word_map[ids]
        if chars and self.char_map is not None:
            chars = (self.char_map[chars[0]], *chars[1:])
        return ids, chars


def _members(run: Any, vocabularies: Any) -> tuple[list[Member], Vocabulary, Vocabulary | None]:
    """The members of a loaded run (an ensemble's runs, else the run alone), the graph's word and character
    vocabularies (the union of theirs: the first run's tokens, then each other run's new ones), and each
    member's maps into its own. ``vocabularies(run)`` gives a run's (words, characters or None)."""
    runs = list(getattr(run, "members", ())) or [run]
    cases = {r.data.lowercase for r in runs}
    if len(cases) > 1:
        raise RnnkitError(
            "--ensemble: the runs differ in --lowercase, so one graph cannot read their words; export runs that "
            "lowercase alike"
        )
    words, chars = zip(*(vocabularies(r) for r in runs), strict=True)
    all_words, all_chars = _union(words), _union([c for c in chars if c is not None])
    maps = [(_map(all_words, w), _map(all_chars, c)) for w, c in zip(words, chars, strict=True)]
    members = [Member(r.model, *m) for r, m in zip(runs, maps, strict=True)]
    return members, all_words, all_chars  # type: ignore[return-value]


def _union(vocabs: list[Any]) -> Vocabulary | None:
    if not vocabs:
        return None
    return vocabs[0] if len(vocabs) == 1 else Vocabulary(list(dict.fromkeys(t for v in vocabs for t in v.tokens)))


def _map(union: Any, vocab: Any) -> Tensor | None:
    """The ids of ``union``'s tokens in ``vocab`` (its ``<unk>`` for those it lacks), or None when the same."""
    if vocab is None or list(vocab.tokens) == list(union.tokens):
        return None
    return torch.tensor(vocab.encode(union.tokens), dtype=torch.long)


def _mean(values: list[Tensor]) -> Tensor:
    return values[0] if len(values) == 1 else torch.stack(values).mean(0)


def _word_features(m: nn.Module, x: Tensor, lengths: Tensor, chars: tuple[Tensor, ...]) -> Tensor:
    """The word embeddings ``x`` (B, T, E) with the model's character features and character-LM features."""
    if m.chars is not None:
        x = torch.cat([x, char_features(m.chars, chars[0], chars[1], lengths)], dim=-1)
    if m.lm_features is not None:
        x = torch.cat([x, lm_string_features(m.lm_features, chars[0], chars[1], lengths)], dim=-1)
    return x


def _reads_chars(m: nn.Module) -> bool:
    return m.chars is not None or m.lm_features is not None


def _inputs(names: list[str], example: tuple[Tensor, ...], chars: Any) -> tuple:
    """The inputs of a graph over words (``names``: the ids' and the lengths'), with characters when ``chars``
    (the graph's character vocabulary) is not None: names, example, dynamic dimensions, shapes, dtypes."""
    dynamic, shapes = [{0: BATCH, 1: TIME}, {0: BATCH}], [[BATCH, TIME], [BATCH]]
    if chars is None:
        return names, example, dynamic, shapes, ["int64"] * 2
    example += _chars_example(example[0], len(chars))
    dynamic += [{0: BATCH, 1: TIME, 2: CHARS}, {0: BATCH, 1: TIME}]
    return (
        [*names, "chars", "char_lengths"],
        example,
        dynamic,
        [*shapes, [BATCH, TIME, CHARS], [BATCH, TIME]],
        ["int64"] * 4,
    )


def _ensemble_meta(run: Any) -> dict[str, Any]:
    runs = getattr(run, "members", ())
    return {"ensemble": [str(r.path.name) for r in runs]} if len(runs) > 1 else {}


class ClassifierGraph(nn.Module):
    """ids (B, T), lengths (B,) [, chars (B, T, C), char_lengths (B, T)] -> probabilities (B, K) (softmax, or
    sigmoids with several labels) [, attention (B, T) with attention pooling; label attention: the top label's].
    An ensemble's: its members' mean probabilities and the mean attention of those that attend."""

    def __init__(self, members: list[Member]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, ids: Tensor, lengths: Tensor, *chars: Tensor) -> tuple[Tensor, ...]:
        outputs = [_classify(member.model, *member.inputs(ids, chars), lengths) for member in self.members]
        attention = [w for _, w in outputs if w is not None]
        probs = _mean([p for p, _ in outputs])
        return (probs, _mean(attention)) if attention else (probs,)


def _classify(m: nn.Module, ids: Tensor, chars: tuple[Tensor, ...], lengths: Tensor) -> tuple[Tensor, Tensor | None]:
    x = _word_features(m, m.embedding(ids), lengths, chars)
    h, _ = run_layer(m.rnn, x, lengths)
    if m.head is None:  # label attention: it checks nothing, so it traces as it is
        logits, weights = m.pooling(h, lengths)
        weights = top_label_weights(logits, weights)
    else:
        pooled, weights = pool(m.pooling, h, lengths)
        logits = m.head(pooled)
    return (torch.sigmoid(logits) if m.config.multi_label else torch.softmax(logits, dim=-1)), weights


def classify_graphs(run: Any) -> list[Graph]:
    members, vocab, chars = _members(run, lambda r: (r.vocab, r.chars if _reads_chars(r.model) else None))
    inputs, example, dynamic, shapes, dtypes = _inputs(["ids", "lengths"], _example(high=len(vocab)), chars)
    meta: dict[str, Any] = {"vocab": _vocab(vocab), "lowercase": run.data.lowercase} | _ensemble_meta(run)
    if chars is not None:
        meta["chars"] = _vocab(chars)
    attends = any(m.model.head is None or m.model.pooling.attention is not None for m in members)
    outputs = ["probabilities"] + (["attention"] if attends else [])
    meta |= {
        "labels": list(run.labels.names),
        "multi_label": run.model.config.multi_label,
        "threshold": float(run.threshold),
        "inputs": _io(inputs, shapes, dtypes),
        "outputs": _io(outputs, [[BATCH, len(run.labels)], [BATCH, TIME]][: len(outputs)], ["float32"] * len(outputs)),
    }
    return [Graph(ClassifierGraph(members), example, inputs, outputs, dynamic, meta)]


class TaggerGraph(nn.Module):
    """words (B, T), lengths (B,) [, chars (B, T, C), char_lengths (B, T)] -> emissions (B, T, K), tags (B, T)
    (Viterbi with a CRF, else each word's argmax; -1 after each length) [, intent_probabilities (B, I)]. An
    ensemble's: its members' mean emissions, decoded with ``crf`` (their mean CRF, rnnkit.tasks.tag_ensemble), and
    the softmax of their mean intent logits."""

    def __init__(self, members: list[Member], crf: nn.Module | None) -> None:
        super().__init__()
        self.members, self.crf = nn.ModuleList(members), crf

    def forward(self, words: Tensor, lengths: Tensor, *chars: Tensor) -> tuple[Tensor, ...]:
        mask = time_mask(lengths, words.shape[1]).t()  # (B, T)
        outputs = [_emit(member.model, *member.inputs(words, chars), lengths, mask) for member in self.members]
        emissions = _mean([e for e, _ in outputs])
        if self.crf is not None:
            tags = viterbi(self.crf, emissions, lengths)
        else:
            tags = emissions.argmax(-1).masked_fill(~mask, -1)
        if outputs[0][1] is None:
            return emissions, tags
        return emissions, tags, torch.softmax(_mean([i for _, i in outputs]), dim=-1)


def _emit(
    m: nn.Module, words: Tensor, chars: tuple[Tensor, ...], lengths: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor | None]:
    """A tagger's emissions (B, T, K) and intent logits (B, I) or None."""
    cfg = m.config
    x = context_window(_word_features(m, m.embedding(words), lengths, chars), cfg.window, mask)
    h = m.encoder(x) if cfg.feedforward else run_layer(m.encoder, x, lengths)[0]
    return m.emissions(h), (None if m.intent is None else m.intent(m._pool(h, lengths, mask)))


def tag_graphs(run: Any) -> list[Graph]:
    m = run.model  # (an ensemble's: rnnkit.tasks.tag_ensemble.TaggerEnsemble, its CRF the mean)
    members, words, chars = _members(run, lambda r: (r.vocabs.words, r.vocabs.chars if _reads_chars(r.model) else None))
    inputs, example, dynamic, shapes, dtypes = _inputs(["words", "lengths"], _example(high=len(words)), chars)
    meta: dict[str, Any] = {"vocab": _vocab(words), "lowercase": run.data.lowercase} | _ensemble_meta(run)
    if chars is not None:
        meta["chars"] = _vocab(chars)
    outputs = ["emissions", "tags"] + (["intent_probabilities"] if m.intent_names else [])
    out_shapes = [[BATCH, TIME, len(m.tag_names)], [BATCH, TIME], [BATCH, len(m.intent_names)]]
    meta |= {
        "tags": list(m.tag_names),
        "intents": list(m.intent_names) if m.intent_names else None,
        "crf": m.crf is not None,
        "tag_padding": -1,
        "inputs": _io(inputs, shapes, dtypes),
        "outputs": _io(outputs, out_shapes[: len(outputs)], ["float32", "int64", "float32"][: len(outputs)]),
    }
    return [Graph(TaggerGraph(members, m.crf), example, inputs, outputs, dynamic, meta)]


# -- translate: the encoder and the decoder step -----------------------------------------------------------------


class EncoderGraph(nn.Module):
    """src (B, S), lengths (B,) -> memory (B, S, M), mask (B, S) bool [, keys (B, S, K)], state0, state1, ...:
    the decoder's first state (each layer's cell state, and the zero attentional vector with input feeding)."""

    def __init__(self, model: nn.Module, keys: bool) -> None:
        super().__init__()
        self.model, self.keys = model, keys

    def forward(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
        m = self.model
        memory, final = run_layer(m.encoder, m.src_embedding(src), lengths, final=True)
        mask = time_mask(lengths, src.shape[1]).t()
        B, kw = src.shape[0], {"device": memory.device, "dtype": memory.dtype}
        cells = m.bridge(final, [cell.initial_state(B, **kw) for cell in m.decoder.cells])
        feed = memory.new_zeros(B, m.config.hidden) if m.feeds else None
        keys = (m.attention.keys(memory),) if self.keys else ()
        return (memory, mask, *keys, *pytree.tree_flatten(_state_tree(m, tuple(cells), feed))[0])


class DecoderGraph(nn.Module):
    """tokens (B,), memory, mask [, keys], state0, ... -> log_probs (B, V), new_state0, ... [, attention (B, S)]."""

    def __init__(self, model: nn.Module, spec: Any, keys: bool) -> None:
        super().__init__()
        self.model, self.spec, self.keys = model, spec, keys

    def forward(self, tokens: Tensor, memory: Tensor, mask: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        from rnnkit.tasks.seq2seq.model import DecoderState

        m = self.model
        keys, leaves = (rest[0], rest[1:]) if self.keys else (None, rest)
        cells, *feed = pytree.tree_unflatten(list(leaves), self.spec)
        state = DecoderState(cells, feed[0] if feed else None, memory, mask, keys)
        out, new, weights = m._advance(m.tgt_embedding(tokens), state, m.decoder.bound_cells())
        log_probs = F.log_softmax(m._logits(out), dim=-1)
        flat = pytree.tree_flatten(_state_tree(m, new.cells, new.feed))[0]
        return (log_probs, *flat) if weights is None else (log_probs, *flat, weights)


def translate_graphs(run: Any) -> list[Graph]:
    from rnnkit.tasks.translate_run import SPECIALS

    m = run.model
    keys = m.config.attention in ("general", "additive")  # dot's keys are the memory itself; none has no attention
    src, lengths = _example(high=len(run.src_vocab))
    encoder = EncoderGraph(m, keys).eval()
    with torch.no_grad():
        enc_out = encoder(src, lengths)
    n_fixed = 2 + keys
    leaves = list(enc_out[n_fixed:])
    spec = pytree.tree_flatten(_state_template(m, src))[1]
    names = [f"state{i}" for i in range(len(leaves))]
    state = [{"name": n, "shape": list(t.shape[1:]), "dtype": str(t.dtype).removeprefix("torch.")}
             for n, t in zip(names, leaves, strict=True)]  # fmt: skip
    fixed = ["memory", "mask"] + (["keys"] if keys else [])
    meta = {
        "src_vocab": _vocab(run.src_vocab),
        "tgt_vocab": _vocab(run.tgt_vocab),
        "bos_id": SPECIALS["bos"],
        "eos_id": SPECIALS["eos"],
        "pad_id": SPECIALS["pad_id"],
        "src_lowercase": run.src.lowercase,
        "tgt_lowercase": run.tgt.lowercase,
        "subwords": run.src.subwords is not None,
        "attention": m.config.attention,
        "max_len": "2 * source length + 10 tokens (eos not counted), as rnnkit translate's default",
        "state": state,
    }
    enc_outputs = [*fixed, *names]
    enc_meta = meta | {
        "inputs": _io(["src", "lengths"], [[BATCH, SOURCE], [BATCH]], ["int64", "int64"]),
        "outputs": enc_outputs,
    }
    g = torch.Generator().manual_seed(2)
    tokens = torch.randint(4, len(run.tgt_vocab), (src.shape[0],), generator=g)
    dec_example = (tokens, *enc_out[:n_fixed], *[t if not t.is_floating_point() else torch.randn(t.shape, generator=g)
                                                 for t in leaves])  # fmt: skip
    dec_inputs = ["tokens", *fixed, *names]
    dec_outputs = ["log_probs", *[f"new_{n}" for n in names]] + (["attention"] if m.attention is not None else [])
    dec_meta = meta | {"inputs": dec_inputs, "outputs": dec_outputs}
    dyn_fixed = [{0: BATCH, 1: SOURCE}, {0: BATCH, 1: SOURCE}] + ([{0: BATCH, 1: SOURCE}] if keys else [])
    return [
        Graph(encoder, (src, lengths), ["src", "lengths"], enc_outputs, [{0: BATCH, 1: SOURCE}, {0: BATCH}],
              enc_meta, "encoder"),
        Graph(DecoderGraph(m, spec, keys).eval(), dec_example, dec_inputs, dec_outputs,
              [{0: BATCH}, *dyn_fixed, *({0: BATCH} for _ in names)], dec_meta, "decoder"),
    ]  # fmt: skip


def _state_template(m: nn.Module, src: Tensor) -> tuple:
    """The decoder's state for a batch like ``src`` as :func:`_state_tree` lays it out: what the leaves
    unflatten into."""
    cells = tuple(cell.initial_state(src.shape[0]) for cell in m.decoder.cells)
    return _state_tree(m, cells, torch.zeros(src.shape[0], m.config.hidden))


def _state_tree(m: nn.Module, cells: tuple, feed: Tensor | None) -> tuple:
    """(cells, feed) with input feeding, else (cells,): the graphs' state inputs and outputs are tensors only
    (pytree would make the absent attentional vector a None leaf, which no graph input can be)."""
    return (cells, feed) if m.feeds else (cells,)


# -- ctc ----------------------------------------------------------------------------------------------------------


class CTCGraph(nn.Module):
    """features (B, T, F), lengths (B,) -> log_probs (B, T', C) (blank = 0), out_lengths (B,) after subsampling."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        m = self.model
        x, out_lengths = m.subsample(features, lengths)
        h, _ = run_layer(m.rnn, x, out_lengths)
        logits = m.output(h)
        if not m.config.blank:
            logits = logits.masked_fill(torch.arange(m.n_labels, device=logits.device) == 0, -1e4)
        return F.log_softmax(logits, dim=-1), out_lengths


def ctc_graphs(run: Any) -> list[Graph]:
    from rnnkit.data.features import SAMPLE_RATE
    from rnnkit.tasks.ctc_run import n_features

    n = n_features(run.data)
    g = torch.Generator().manual_seed(0)
    features, lengths = torch.randn(3, 24, n, generator=g), torch.tensor([24, 13, 5])
    data = dataclasses.asdict(run.data)
    meta = {
        "labels": list(run.labels.names),
        "blank_id": 0,
        "units": run.data.units,
        "features": {k: data[k] for k in ("features", "n_mels", "n_mfcc")}
        | {"sample_rate": SAMPLE_RATE, "win_ms": 25.0, "hop_ms": 10.0, "normalise": "per utterance, per channel"},
        "subsample": run.model_config.subsample,
        "inputs": _io(["features", "lengths"], [[BATCH, TIME, n], [BATCH]], ["float32", "int64"]),
        "outputs": _io(["log_probs", "out_lengths"], [[BATCH, "time_out", len(run.labels)], [BATCH]],
                       ["float32", "int64"]),
    }  # fmt: skip
    return [Graph(CTCGraph(run.model), (features, lengths), ["features", "lengths"], ["log_probs", "out_lengths"],
                  [{0: BATCH, 1: TIME}, {0: BATCH}], meta)]  # fmt: skip


TASK_GRAPHS = {"classify": classify_graphs, "tag": tag_graphs, "translate": translate_graphs, "ctc": ctc_graphs}
