"""Several trained taggers of the same tags as one: ``rnnkit tag eval|predict RUN --ensemble RUN2 ...``.

Each member reads the sentences with its own vocabularies and features. The members' scores are averaged:
per word the emissions, and with CRFs the transition, start and end scores; per sentence the intent logits.
Viterbi on the averages finds the tags y with the highest mean of the members' log p_k(y | x), since a CRF's
log p_k(y | x) = score_k(x, y) - log Z_k(x) and log Z_k(x) is the same for every y: a product of experts
(Hinton 2002). For a softmax per word the same holds word by word (logits and log-probabilities differ by
one constant per word, which neither the argmax nor a softmax sees). Confidences and the loss are those of
the averaged model, renormalised.

>>> from rnnkit.tasks.tag import TagConfig, collate
>>> taggers = [SequenceTagger(20, ["O", "B-X", "I-X"], TagConfig(hidden=4, embed=3, crf=True)) for _ in range(2)]
>>> ensemble = TaggerEnsemble(taggers)
>>> batch = EnsembleBatch((collate([[4, 5, 6]]), collate([[4, 5, 6]])))
>>> ensemble.decode(batch).tags.shape
torch.Size([1, 3])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnkit.data.batching import bucket_batches
from rnnkit.errors import RnnkitError
from rnnkit.tasks.base import Task
from rnnkit.tasks.crf import CRF
from rnnkit.tasks.tag import SequenceTagger, TagBatch

__all__ = ["EnsembleBatch", "EnsembleEncoded", "TaggerEnsemble"]


class EnsembleBatch(NamedTuple):
    """The same sentences as each member reads them (its own word, character and label ids)."""

    members: tuple[TagBatch, ...]

    # What the tagger's decoding and scoring read of a batch: the same for every member.
    @property
    def words(self) -> Tensor:
        return self.members[0].words

    @property
    def lengths(self) -> Tensor:
        return self.members[0].lengths

    @property
    def tags(self) -> Tensor:
        return self.members[0].tags

    @property
    def intents(self) -> Tensor | None:
        return self.members[0].intents

    @property
    def gold(self) -> tuple | None:
        return self.members[0].gold

    @property
    def gold_intents(self) -> tuple | None:
        return self.members[0].gold_intents


class EnsembleEncoded:
    """Sentences encoded once per member (``rnnkit.tasks.tag_run.Encoded`` each), batched together."""

    def __init__(self, members: Sequence) -> None:
        self.members = list(members)
        self.unknown_tags: Counter = members[0].unknown_tags  # the members know the same tags and intents
        self.unknown_intents: Counter = members[0].unknown_intents

    def batch(self, rows: Sequence[int]) -> EnsembleBatch:
        return EnsembleBatch(tuple(m.batch(rows) for m in self.members))

    def batches(self, size: int) -> list[EnsembleBatch]:
        order = bucket_batches([len(w) for w in self.members[0].words], size, shuffle=False)
        return [self.batch(rows) for rows in order]


class TaggerEnsemble(SequenceTagger):
    """Trained :class:`SequenceTagger` s of the same tags and intents, all CRF or all softmax, as one tagger
    (see the module); it reads :class:`EnsembleBatch` es and is for evaluating and predicting, not training.
    ``names`` (e.g. the runs' folders) name the members in errors."""

    def __init__(self, members: Sequence[SequenceTagger], names: Sequence[str] | None = None) -> None:
        Task.__init__(self)  # not SequenceTagger's: the members hold every layer
        names = [f"tagger {i + 1}" for i in range(len(members))] if names is None else list(names)
        first = members[0]
        for other, name in zip(members[1:], names[1:], strict=True):
            for what, mine, theirs in (
                ("tags", first.tag_names, other.tag_names),
                ("intents", first.intent_names, other.intent_names),
            ):
                if mine != theirs:
                    raise RnnkitError(
                        f"--ensemble: {name} has {what} {list(theirs)[:8]} and {names[0]} {list(mine)[:8]}: an "
                        "ensemble's runs must be trained on the same tags"
                    )
            if (other.crf is None) != (first.crf is None):
                raise RnnkitError(
                    f"--ensemble: {name} and {names[0]} differ in --crf: an ensemble's runs must all have a CRF "
                    "or all a softmax"
                )
        self.members = nn.ModuleList(members)
        self.config, self.tag_names, self.intent_names = first.config, first.tag_names, first.intent_names
        self.spans, self.selection = first.spans, first.selection
        self.crf = None
        if first.crf is not None:
            self.crf = CRF(len(self.tag_names))
            with torch.no_grad():
                self.crf.allowed.copy_(first.crf.allowed)  # the same tags: the same constraints
                for name in ("transitions", "start", "end"):
                    getattr(self.crf, name).copy_(torch.stack([getattr(m.crf, name) for m in members]).mean(0))

    def forward(self, batch: EnsembleBatch) -> tuple[Tensor, Tensor | None]:  # type: ignore[override]
        """The members' mean emissions (B, T, K) and mean intent logits (B, I) or None."""
        outputs = [member(b) for member, b in zip(self.members, batch.members, strict=True)]
        emissions = torch.stack([e for e, _ in outputs]).mean(0)
        return emissions, (None if outputs[0][1] is None else torch.stack([i for _, i in outputs]).mean(0))
