"""Keyphrase scores worked by hand, the two targets (all / present gold), the ranking of tagged spans, the
TF-IDF floor, and on the real Inspec validation data the ceilings its README gives for the gold tags."""

from pathlib import Path

import pytest

from rnnkit.data.formats import read_inspec
from rnnkit.data.tags import spans
from rnnkit.tasks.keyphrase import TfIdf, candidates, keyphrase_scores, present, rank_spans, stem_phrase, tokenize

INSPEC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "inspec"


def test_phrases_match_after_lowercasing_and_stemming():
    assert stem_phrase(["Neural", "Networks"]) == stem_phrase(["neural", "network"]) == ("neural", "network")
    assert stem_phrase(["learning"]) == ("learn",) and stem_phrase(["E-mails"]) == stem_phrase(["e-mail"])
    assert tokenize("real-time control (RTC)") == ["real-time", "control", "-LRB-", "RTC", "-RRB-"]
    assert present(("neural", "network"), ("a", "neural", "network")) and not present(
        ("network", "neural"), ("neural", "network")
    )


def test_scores_worked_by_hand():
    """Doc 1: gold {neural network, speech, back-propagation (absent)}; ranked: speech, neural networks (dup of
    a stem: neural network), tagger. Doc 2: gold {cat}; nothing predicted (P = 0 by definition)."""
    docs = [["training", "neural", "network", "taggers", "for", "speech"], ["the", "cat"]]
    gold = [["neural networks", "speech", "back-propagation"], ["cat"]]
    ranked = [[("speech",), ("neural", "networks"), ("neural", "network"), ("taggers",)], []]
    s = keyphrase_scores(docs, gold, ranked, ks=(1, 5))
    # doc 1, all gold: @1 P 1 R 1/3 F 1/2; @5 and @M: 3 distinct guesses, 2 hits: P 2/3 R 2/3 F 2/3. Doc 2: 0.
    assert s["all"]["f1@1"] == pytest.approx(0.5 / 2) and s["all"]["f1@M"] == pytest.approx((2 / 3) / 2)
    assert s["all"]["precision@5"] == pytest.approx(1 / 3) and s["all"]["recall@1"] == pytest.approx(1 / 6)
    # present gold: back-propagation is absent, so doc 1 has targets {neural network, speech}: P 2/3 R 1 F 0.8
    assert s["present"]["f1@M"] == pytest.approx(0.4) and s["present"]["documents"] == 2
    kept = keyphrase_scores(docs, gold, ranked, ks=(5,), kept=[1, 0])  # @M: only the first guess of doc 1
    assert kept["all"]["f1@M"] == pytest.approx(0.25) and kept["all"]["f1@5"] == s["all"]["f1@5"]


def test_present_target_skips_documents_without_a_present_keyphrase():
    s = keyphrase_scores([["a", "dog"], ["a", "cat"]], [["dog"], ["horse"]], [[("dog",)], [("cat",)]])
    assert s["all"]["documents"] == 2 and s["all"]["f1@M"] == pytest.approx(0.5)
    assert s["present"]["documents"] == 1 and s["present"]["f1@M"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="2 documents, 1 gold lists"):
        keyphrase_scores([["a"], ["b"]], [["a"]], [[], []])


def test_spans_rank_by_mean_probability_each_stem_once():
    tokens = ["Fast", "neural", "nets", "and", "Neural", "Net", "control"]
    ranked = rank_spans(tokens, [(0, 1), (1, 3), (4, 6), (6, 7)], [0.9, 0.5, 0.7, 1.0, 0.8, 0.9, 0.9])
    assert ranked == [(("Fast",), 0.9), (("control",), 0.9), (("Neural", "Net"), 0.85)]  # ties: earlier first


def test_candidates_are_runs_between_stopwords_and_tfidf_prefers_frequent_rare_phrases():
    tokens = ["the", "design", "of", "neural", "network", "taggers", ",", "and", "12", "more", "taggers"]
    assert [c for c, _ in candidates(tokens)] == [("design",), ("neural", "network", "taggers"), ("taggers",)]
    long = ["very", "large", "scale", "integrated", "circuit", "design"]
    assert candidates(long, max_words=4) == [] and len(candidates(long, max_words=6)) == 1
    ranker = TfIdf([["cats", ",", "sleep"], ["dogs", ",", "bark"], ["dogs", ",", "run"]])  # df: cat 1, dog 2, bird 0
    assert ranker.rank(["dogs", ",", "cats", ",", "cats", ",", "dogs", ",", "birds"])[:2] == [("cats",), ("birds",)]


@pytest.mark.skipif(not (INSPEC / "valid.jsonl").is_file(), reason="needs ../shared/data/inspec")
def test_gold_tags_as_predictions_reach_the_ceilings_the_data_readme_gives():
    """README: the gold tags as predictions score P 98.9 / R 74.6 / F1@M 83.6 against all gold keyphrases,
    and P 99.5 / R 96.3 / F1 97.6 against the present ones (497 documents)."""
    documents = read_inspec(INSPEC / "valid.jsonl")
    ranked = [[tuple(d.tokens[s:e]) for _, s, e in spans(d.tags)] for d in documents]
    s = keyphrase_scores([d.tokens for d in documents], [d.keyphrases for d in documents], ranked)
    got = [round(100 * s[t][k], 1) for t in ("all", "present") for k in ("precision@M", "recall@M", "f1@M")]
    assert got == [98.9, 74.6, 83.6, 99.5, 96.3, 97.6] and s["present"]["documents"] == 497
