"""Corpus BLEU and chrF: sacrebleu's numbers and signatures, options, and one-line errors."""

import logging
import re
import warnings

import pytest
import sacrebleu

from rnnkit.errors import RnnkitError
from rnnkit.tasks.seq2seq.bleu import TOKENIZERS, corpus_scores

REFERENCES = [
    "Two young, White males are outside near many bushes.",
    "Several men in hard hats are operating a giant pulley system.",
    "A little girl climbing into a wooden playhouse.",
    "A man in a blue shirt is standing on a ladder cleaning windows.",
]
HYPOTHESES = [
    "Two young white men are outside near many bushes.",
    "Several men in hard hats operate a giant pulley system.",
    "A little girl climbs into a wooden playhouse.",
    "A man in a blue shirt stands on a ladder and cleans windows.",
]


def test_perfect_hypotheses_score_100():
    scores = corpus_scores(REFERENCES, REFERENCES)
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["chrf"] == pytest.approx(100.0)
    assert scores["bleu_detail"].startswith("BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000")


def test_matches_sacrebleu_corpus_functions():
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    expected_bleu = sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES])
    assert scores["bleu"] == pytest.approx(expected_bleu.score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score)
    assert scores["bleu_detail"] == str(expected_bleu)
    assert 20 < scores["bleu"] < 80  # a real, partial match
    assert isinstance(scores["bleu"], float) and isinstance(scores["chrf"], float)


def test_known_small_example():
    scores = corpus_scores(
        ["The cat sat on the mat.", "A dog runs in the park today"],
        ["The cat sat on the mat.", "A dog is running in the park"],
    )
    assert scores["bleu"] == pytest.approx(66.26877, abs=1e-4)  # sacrebleu 2.6.0, tok 13a
    assert scores["bleu_detail"] == (
        "BLEU = 66.27 85.7/75.0/60.0/50.0 (BP = 1.000 ratio = 1.000 hyp_len = 14 ref_len = 14)"
    )
    assert scores["chrf"] == pytest.approx(69.90286, abs=1e-4)


def test_signatures():
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    assert scores["bleu_signature"] == f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{sacrebleu.__version__}"
    assert "nrefs:1" in scores["chrf_signature"]
    assert "case:mixed" in scores["chrf_signature"]
    intl = corpus_scores(HYPOTHESES, REFERENCES, tokenize="intl", lowercase=True)
    assert "tok:intl" in intl["bleu_signature"]
    assert "case:lc" in intl["bleu_signature"]
    assert "case:lc" in intl["chrf_signature"]


@pytest.mark.parametrize("tokenize", TOKENIZERS)
def test_every_offered_tokenizer_works_offline(tokenize):
    scores = corpus_scores(HYPOTHESES, REFERENCES, tokenize=tokenize)
    assert f"tok:{tokenize}" in scores["bleu_signature"]
    assert 0 < scores["bleu"] < 100


def test_lowercase_changes_the_score_on_cased_input():
    hypotheses, references = ["the black cat sits on a red mat"], ["The Black Cat sits on a Red Mat"]
    cased = corpus_scores(hypotheses, references)
    lowered = corpus_scores(hypotheses, references, lowercase=True)
    assert lowered["bleu"] == pytest.approx(100.0)
    assert lowered["chrf"] == pytest.approx(100.0)
    assert cased["bleu"] < 50
    assert cased["chrf"] < lowered["chrf"]


def test_length_mismatch_names_both_counts():
    with pytest.raises(RnnkitError, match=re.escape("1,001 hypotheses but 1,000 references")):
        corpus_scores(["a"] * 1001, ["a"] * 1000)


def test_empty_input_and_unknown_tokenizer():
    with pytest.raises(RnnkitError, match="no sentences to score"):
        corpus_scores([], [])
    with pytest.raises(RnnkitError, match=re.escape("unknown BLEU tokenizer 'spm': use one of 13a, intl, zh, char")):
        corpus_scores(["a"], ["a"], tokenize="spm")


def test_empty_hypotheses_score_zero():
    scores = corpus_scores(["", ""], REFERENCES[:2])
    assert scores["bleu"] == 0.0
    assert scores["chrf"] == 0.0


def test_tokenized_text_gives_one_warning_not_sacrebleu_logs(caplog):
    lines = [f"a man rides bike number {i} ." for i in range(120)]
    expected = re.escape("120 of 120 hypotheses end in a tokenized period")
    with caplog.at_level(logging.WARNING, logger="sacrebleu"), pytest.warns(UserWarning, match=expected) as record:
        corpus_scores(lines, lines)
    assert len(record) == 1
    assert record[0].filename == __file__
    assert caplog.records == []


def test_detokenized_text_gives_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        corpus_scores(HYPOTHESES * 50, REFERENCES * 50)
