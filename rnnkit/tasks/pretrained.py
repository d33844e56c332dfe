"""Pretrained word vectors into a model's word embedding: a GloVe / word2vec text file, or an rnnkit LM run.

``--embeddings PATH`` of ``rnnkit tag train`` and ``rnnkit classify train`` calls :func:`init_embedding` once, when a
run starts (a resumed run has its trained embedding in its checkpoint). Only the vectors of the run's vocabulary
are kept while the file is read, so a large file costs a pass, not its size in memory. A word the vectors lack
keeps its random initialisation; with ``lowercase`` (a lower-cased vocabulary) a vector's word also matches
lower-cased, the exact form winning ("good" over "Good").

The second source is self-supervised pretraining with rnnkit itself: train ``rnnkit lm train`` on any text you
have, then pass its run folder; its input embedding (``embedding.weight``, row per token of its vocab.json) is read.
``--encoder RUN`` (and ``--encoder-backward RUN``) go further: :func:`init_encoder` starts the recurrent layers from
the LM's too, as ULMFiT does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.data.text import read_text
from rnnkit.data.vocab import Vocabulary
from rnnkit.errors import RnnkitError


def init_embedding(weight: Tensor, vocab: Vocabulary, source: str | Path, *, lowercase: bool = False) -> str:
    """Copy the vectors of ``source`` into the rows of ``weight`` (V, E) of the words of ``vocab`` it has (the
    specials keep theirs); return one line saying how many words were found.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "vectors.txt"
    >>> _ = path.write_text("2 3\\nfilm 1 2 3\\nGood 4 5 6\\n")
    >>> vocab = Vocabulary.build(["good", "film", "plot"])
    >>> weight = torch.zeros(len(vocab), 3)
    >>> init_embedding(weight, vocab, path, lowercase=True)
    'pretrained vectors for 2 of 3 words from vectors.txt'
    >>> weight[vocab.index("good")].tolist()
    [4.0, 5.0, 6.0]
    """
    source = Path(source)
    wanted = set(vocab.tokens[len(Vocabulary.SPECIALS) :])
    vectors = _from_run(source, wanted) if source.is_dir() else _from_text(source, wanted, lowercase)
    dim = len(next(iter(vectors.values()))) if vectors else weight.shape[1]
    if dim != weight.shape[1]:
        raise RnnkitError(
            f"{source} has {dim}-dimensional vectors but the word embedding has {weight.shape[1]}: pass --embed {dim}"
        )
    found = _fill(weight, vocab, vectors)
    return f"pretrained vectors for {found:,} of {len(wanted):,} words from {source.name}"


def _fill(weight: Tensor, vocab: Vocabulary, vectors: dict[str, Any]) -> int:
    """Each word of ``vocab`` (specials excluded) that ``vectors`` has gets its vector as its row of ``weight`` (a
    view of some columns will do); returns how many did."""
    found = 0
    with torch.no_grad():
        for word in vocab.tokens[len(Vocabulary.SPECIALS) :]:
            vector = vectors.get(word)
            if vector is not None:
                weight[vocab.index(word)] = torch.as_tensor(vector, dtype=weight.dtype)
                found += 1
    return found


def _from_text(path: Path, wanted: set[str], lowercase: bool) -> dict[str, list[float]]:
    """``word v1 .. vd`` lines (GloVe; word2vec's text format, whose first line ``count dim`` is skipped)."""
    vectors: dict[str, list[float]] = {}
    exact: set[str] = set()
    dim = None
    for n, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.rstrip().split(" ")
        if n == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
            continue  # word2vec's header
        if len(parts) < 2:
            if not line.strip():
                continue
            raise RnnkitError(f"{path}:{n}: a word without a vector: give 'word v1 v2 ... vd' lines (GloVe's text)")
        dim = dim or len(parts) - 1
        if len(parts) - 1 != dim:
            raise RnnkitError(f"{path}:{n}: {len(parts) - 1} values where the first vector has {dim}: one size for all")
        word = parts[0] if parts[0] in wanted else parts[0].lower() if lowercase else None
        if word in wanted and (word not in vectors or (parts[0] == word and word not in exact)):
            try:
                vectors[word] = [float(x) for x in parts[1:]]
            except ValueError:
                raise RnnkitError(f"{path}:{n}: a value of {parts[0]!r} is not a number") from None
            if parts[0] == word:
                exact.add(word)  # "good" itself wins over "Good" lower-cased
    if dim is None:
        raise RnnkitError(f"{path} has no vectors: give 'word v1 v2 ... vd' lines (GloVe's text format)")
    return vectors


def _from_run(path: Path, wanted: set[str]) -> dict[str, Tensor]:
    """The input embedding of an rnnkit language-model run, one row per token of its vocabulary."""
    return _run_vectors(_lm_run(path, "a vectors file or "), wanted)


def _run_vectors(run: Any, wanted: set[str]) -> dict[str, Tensor]:
    """The rows of a loaded LM run's input embedding for the tokens in ``wanted``."""
    weight = run.model.embedding.weight.detach()
    return {token: weight[i] for i, token in enumerate(run.vocab.tokens) if token in wanted}


def init_encoder(
    embedding: Tensor,
    rnn: nn.Module,
    vocab: Vocabulary,
    forward: str | Path | None = None,
    backward: str | Path | None = None,
    *,
    cell: str,
) -> str:
    """Start a task's encoder from rnnkit LM runs (ULMFiT's transfer, Howard and Ruder 2018): the word embedding
    and the recurrent layers of ``cell``, not just the embedding. Return one line saying what was copied.

    ``forward`` is an LM of the text as it reads; ``backward`` one trained on each line's words reversed (see
    ``benchmarks/pretrain_lm.py``), for the backward direction of a bidirectional ``rnn``. Each run gives E columns
    of ``embedding`` (V, E x runs): the forward run's vectors the first E, the backward run's the next. Its layer i
    becomes the encoder's layer i in its direction; layer 0's input weights fill the columns of that run's block
    and are zero on the other run's, so each direction starts computing exactly what its LM computed; input
    columns beyond the embedding (character features) keep their random start. A bidirectional encoder's upper
    layers read both directions, which no LM did, so they keep theirs. Words the LM lacks keep their random
    vectors.

    For example, with two 256-unit LSTM LMs (``rnnkit lm train --layers 1 --hidden 256 ...``, one of them on
    reversed lines), a BiLSTM classifier starts from both::

        rnnkit classify train ... --bidirectional --hidden 256 --embed 512 --encoder runs/lm_fwd \\
            --encoder-backward runs/lm_bwd
    """
    sources = [(path, suffix) for path, suffix in ((forward, ""), (backward, "_reverse")) if path is not None]
    params = dict(rnn.named_parameters())
    if backward is not None and not any(name.endswith("_reverse") for name in params):
        raise RnnkitError("--encoder-backward starts a backward direction: add --bidirectional")
    runs = [_lm_run(Path(path)) for path, _ in sources]
    for (path, _), run in zip(sources, runs, strict=True):
        if run.model_config.cell != cell:
            raise RnnkitError(
                f"{path} is a {run.model_config.cell} LM and the encoder {cell}: pass --cell {run.model_config.cell}"
            )
    E = runs[0].model.embedding.weight.shape[1]
    width = embedding.shape[1]
    if width != E * len(runs) or any(run.model.embedding.weight.shape[1] != E for run in runs):
        sizes = " and ".join(str(run.model.embedding.weight.shape[1]) for run in runs)
        raise RnnkitError(
            f"the LM runs have {sizes}-dimensional embeddings but the word embedding has {width}: pass --embed "
            f"{sum(run.model.embedding.weight.shape[1] for run in runs)} (the runs' vectors side by side)"
        )
    said = []
    with torch.no_grad():
        for k, ((path, suffix), run) in enumerate(zip(sources, runs, strict=True)):
            block = slice(k * E, (k + 1) * E)
            found = _fill(embedding[:, block], vocab, _run_vectors(run, set(vocab.tokens)))
            layers = _copy_layers(params, run, Path(path), suffix, width, block)
            said.append(
                f"{Path(path).name} ({found:,} of {len(vocab) - len(Vocabulary.SPECIALS):,} words, "
                f"{layers} of {len(run.model.layers)} layer(s){' backward' * bool(suffix)})"
            )
    return "encoder from " + " and ".join(said)


def encoder_vocabulary(vocab: Vocabulary, data: Any) -> Vocabulary:
    """``vocab`` (a new run's, from its training text) with the words of the ``--encoder`` LMs' vocabularies added
    after its own (lower-cased with ``data.lowercase``), so that a word the training text lacks still reads as the
    LM's vector at eval and predict time, not as <unk>. Without an encoder, ``vocab`` itself.

    (Only the encoder's LMs: a GloVe file of ``--embeddings`` can hold millions of words.)
    """
    paths = [path for path in (data.encoder, data.encoder_backward) if path is not None]
    if not paths or data.embeddings is not None:
        return vocab  # (both given: start_from says so)
    tokens, counts, seen = list(vocab.tokens), list(vocab.counts), set(vocab.tokens)
    for path in paths:
        for word in _lm_run(Path(path), load=False).tokens[len(Vocabulary.SPECIALS) :]:
            word = word.lower() if data.lowercase else word
            if word not in seen:
                seen.add(word)
                tokens.append(word)
                counts.append(0)
    return Vocabulary(tokens, counts)


def _lm_run(path: Path, alternative: str = "", *, load: bool = True) -> Any:
    """The LM run in ``path`` loaded, or with ``load=False`` its vocabulary alone."""
    from rnnkit.tasks import registry
    from rnnkit.tasks.lm_run import check_lm_run

    check_lm_run(path, f"{alternative}a folder of rnnkit lm train")
    return registry.load_run(path) if load else Vocabulary.load(path / "vocab.json")


def _copy_layers(params: dict[str, Tensor], run: Any, path: Path, suffix: str, width: int, block: slice) -> int:
    """The LM's layers into the encoder's ``{name}_l{i}{suffix}`` parameters; returns how many layers."""
    bidirectional = any(name.endswith("_reverse") for name in params)
    for i, layer in enumerate(run.model.layers):
        pairs = [
            (name, value.detach(), params.get(f"{name.removesuffix('_l0')}_l{i}{suffix}"))
            for name, value in layer.named_parameters()
        ]
        if any(target is None or not name.endswith("_l0") for name, _, target in pairs):
            if i == 0:  # (the cells are checked equal: a difference in options, a Jordan's output size)
                lacks = ", ".join(name for name, _, target in pairs if target is None)
                raise RnnkitError(f"{path}: the encoder lacks the LM's {lacks}: give it the LM's cell options")
            return i  # the encoder has fewer layers
        if i > 0 and bidirectional:
            return i  # a bidirectional encoder's upper layers read both directions, which no LM did
        for name, value, target in pairs:
            if i == 0 and name.startswith("weight_ih") and target.shape[0] == value.shape[0]:
                target[:, :width] = 0.0  # this direction reads only its own run's block of the embedding
                target[:, block] = value.to(target.dtype)  # (columns after ``width``: character features)
            elif target.shape == value.shape:
                target.copy_(value)
            else:
                raise RnnkitError(
                    f"{path}: layer {i}'s {name} is {tuple(value.shape)} but the encoder's is {tuple(target.shape)}: "
                    f"give the encoder the LM's --hidden {run.model_config.hidden}"
                )
    return len(run.model.layers)


#: the help of the data options that start a run from pretrained weights (tag and classify)
EMBEDDINGS_HELP = (
    "pretrained word vectors for the word embedding when a run starts: a text file of 'word v1 .. vd' lines "
    "(GloVe, word2vec text) or an rnnkit lm run folder (self-supervised pretraining)"
)
ENCODER_HELP = "an rnnkit lm run whose embedding and recurrent layers start the encoder's (its forward direction)"
ENCODER_BACKWARD_HELP = "an rnnkit lm run of reversed lines: starts the backward direction (with --bidirectional)"


def start_from(embedding: Tensor, rnn: nn.Module | None, vocab: Vocabulary, data: Any, cell: str) -> str:
    """What a new run's ``data.embeddings`` / ``data.encoder`` / ``data.encoder_backward`` ask for, done; the line
    saying so ("" when none is set). A resumed run never calls this: its checkpoint holds the trained weights."""
    encoders = data.encoder is not None or data.encoder_backward is not None
    if data.embeddings is not None and encoders:
        raise RnnkitError("--encoder brings the LM's embedding too: give --embeddings or --encoder, not both")
    if data.embeddings is not None:
        return init_embedding(embedding, vocab, data.embeddings, lowercase=data.lowercase)
    if not encoders:
        return ""
    if rnn is None:
        raise RnnkitError("--encoder starts recurrent layers: this model has none (--cell none)")
    return init_encoder(embedding, rnn, vocab, data.encoder, data.encoder_backward, cell=cell)
