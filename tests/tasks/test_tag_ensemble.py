"""TaggerEnsemble: a product of experts, checked against brute force over every tag sequence (CRF members)
and against the summed log-probabilities per word (softmax members); intents; mismatched members refused."""

import itertools

import pytest
import torch

from rnnkit.errors import RnnkitError
from rnnkit.tasks.tag import SequenceTagger, TagConfig, collate
from rnnkit.tasks.tag_ensemble import EnsembleBatch, TaggerEnsemble

TAGS = ["O", "B-LOC", "I-LOC"]


def members(n: int, names=TAGS, intents=(), **options) -> list[SequenceTagger]:
    out = []
    for seed in range(n):
        torch.manual_seed(seed)
        tagger = SequenceTagger(30, names, TagConfig(hidden=5, embed=4, **options), intent_names=intents)
        if tagger.crf is not None:  # a trained CRF's scores, not zeros
            with torch.no_grad():
                for p in (tagger.crf.transitions, tagger.crf.start, tagger.crf.end):
                    p.normal_()
        out.append(tagger.eval())
    return out


def test_crf_ensemble_decodes_the_best_sum_of_the_members_log_likelihoods_by_brute_force():
    taggers = members(3, crf=True, bidirectional=True)
    words = [[4, 9, 7, 12], [5, 6, 3, 0]]  # the second is 3 words long, then padding
    own = [[w for w in row if w] for row in words]
    # each member reads its own ids: here member k sees the words shifted by k (as its own vocabulary would)
    batch = EnsembleBatch(tuple(collate([[w + k for w in row] for row in own]) for k in range(3)))
    decoded = TaggerEnsemble(taggers).decode(batch).tags
    for b, row in enumerate(own):
        n = len(row)
        best, best_score = None, -float("inf")
        for tags in itertools.product(range(len(TAGS)), repeat=n):
            total = 0.0
            for k, tagger in enumerate(taggers):
                single = collate([[w + k for w in row]])
                emissions, _ = tagger(single)
                total += float(tagger.crf.log_likelihood(emissions, torch.tensor([tags])))
            if total > best_score:
                best, best_score = tags, total
        assert decoded[b, :n].tolist() == list(best)
        assert (decoded[b, n:] == -1).all()


def test_softmax_ensemble_takes_each_words_best_summed_log_probability_and_intent():
    """The product of the members' distributions, renormalised: its confidence is the chosen tag's share."""
    taggers = members(2, intents=("a", "b", "c"), intent=True)
    batch = collate([[4, 9, 7], [5, 6]])
    ensemble = TaggerEnsemble(taggers)
    decoded = ensemble.decode(EnsembleBatch((batch, batch)))
    outputs = [t(batch) for t in taggers]
    log_p = sum(e.log_softmax(-1) for e, _ in outputs)
    intents = sum(i.log_softmax(-1) for _, i in outputs)
    assert decoded.tags[0].tolist() == log_p[0].argmax(-1).tolist()
    assert decoded.tags[1, :2].tolist() == log_p[1, :2].argmax(-1).tolist()
    assert decoded.intents.tolist() == intents.argmax(-1).tolist()
    confidence = ensemble.decode(EnsembleBatch((batch, batch)), confidence=True).confidence
    assert torch.allclose(confidence[0], (log_p[0] / 2).softmax(-1).max(-1).values)


def test_an_ensemble_of_one_tagger_twice_is_that_tagger():
    tagger = members(1, crf=True)[0]
    batch = collate([[4, 9, 7], [5, 6]], [[0, 1, 2], [1, 0]])
    ensemble = TaggerEnsemble([tagger, tagger])
    pair = EnsembleBatch((batch, batch))
    assert torch.equal(ensemble.decode(pair, confidence=True).tags, tagger.decode(batch).tags)
    assert torch.allclose(
        ensemble.decode(pair, confidence=True).confidence, tagger.decode(batch, confidence=True).confidence
    )
    loss_one, count_one, *_ = tagger.tag_batches([batch])
    loss_two, count_two, *_ = ensemble.tag_batches([pair])
    assert count_one == count_two and loss_two == pytest.approx(loss_one, rel=1e-6)


def test_members_of_other_tags_or_output_layers_are_refused():
    with pytest.raises(RnnkitError, match="same tags"):
        TaggerEnsemble([members(1)[0], members(1, names=["O", "B-PER", "I-PER"])[0]])
    with pytest.raises(RnnkitError, match="all have a CRF"):
        TaggerEnsemble([members(1)[0], members(1, crf=True)[0]])
