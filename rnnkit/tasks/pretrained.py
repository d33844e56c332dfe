"""Pretrained word vectors into a model's word embedding: a GloVe / word2vec text file, or an rnnkit LM run.

``--embeddings PATH`` of ``rnnkit tag train`` and ``rnnkit classify train`` calls :func:`init_embedding` once, when a
run starts (a resumed run has its trained embedding in its checkpoint). Only the vectors of the run's vocabulary
are kept while the file is read, so a large file costs a pass, not its size in memory. A word the vectors lack
keeps its random initialisation; with ``lowercase`` (a lower-cased vocabulary) a vector's word also matches
lower-cased, the exact form winning ("good" over "Good").

The second source is self-supervised pretraining with rnnkit itself: train ``rnnkit lm train`` on any text you
have, then pass its run folder; its input embedding (``embedding.weight``, row per token of its vocab.json) is read.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

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
    found = 0
    with torch.no_grad():
        for word in wanted:
            vector = vectors.get(word)
            if vector is not None:
                weight[vocab.index(word)] = torch.as_tensor(vector, dtype=weight.dtype)
                found += 1
    return f"pretrained vectors for {found:,} of {len(wanted):,} words from {source.name}"


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


def _from_run(path: Path, wanted: set[str]) -> dict[str, list[float]]:
    """The input embedding of an rnnkit language-model run, one row per token of its vocabulary."""
    from rnnkit.tasks import registry

    if registry.task_of(path).name != "lm":
        raise RnnkitError(f"{path} is not an rnnkit lm run: give a vectors file or a folder of rnnkit lm train")
    run = registry.load_run(path)
    weight = run.model.embedding.weight.detach()
    return {token: weight[i].tolist() for i, token in enumerate(run.vocab.tokens) if token in wanted}
