"""Corpus BLEU and chrF of translations against one reference each, computed by sacrebleu.

The scores are sacrebleu's, with its signature (``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``)
so a reported number can be compared with published ones: BLEU on detokenized text with the ``13a`` tokenizer
is the WMT convention. Hypotheses and references are plain strings, one sentence each, in the same order.
"""

from __future__ import annotations

import warnings

from rnnkit.errors import RnnkitError

TOKENIZERS = ("13a", "intl", "zh", "char", "none")
"""sacrebleu's BLEU tokenizers that work offline ("spm" and "flores*" download a model, "*-mecab" need MeCab)."""

_TOKENIZED = 100  # hypotheses ending in " ." that sacrebleu takes for tokenized text (its own threshold)


def corpus_scores(
    hypotheses: list[str], references: list[str], *, tokenize: str = "13a", lowercase: bool = False
) -> dict[str, float | str]:
    """Corpus BLEU and chrF of ``hypotheses`` against ``references`` (one reference per hypothesis).

    Args:
        hypotheses: the system's translations, one string per sentence.
        references: the reference translations, in the same order.
        tokenize: the BLEU tokenizer, one of :data:`TOKENIZERS` (chrF works on characters and needs none).
        lowercase: score both metrics case-insensitively.

    Returns:
        ``{"bleu": float, "chrf": float, "bleu_signature": str, "chrf_signature": str, "bleu_detail": str}``:
        scores in 0..100, sacrebleu's signatures, and its score line
        (``"BLEU = 34.12 65.1/41.2/27.8/18.9 (BP = 1.000 ratio = ...)"``).

    Raises:
        RnnkitError: the two lists differ in length, are empty, or ``tokenize`` is not one of :data:`TOKENIZERS`.

    >>> scores = corpus_scores(["Two dogs play in the snow."], ["Two dogs play in the snow."])
    >>> round(scores["bleu"], 2), round(scores["chrf"], 2), scores["bleu_signature"].split("|version")[0]
    (100.0, 100.0, 'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp')
    """
    from sacrebleu.metrics import BLEU, CHRF  # imported here: it slows the CLI's start-up

    _check_inputs(hypotheses, references, tokenize)
    _warn_if_tokenized(hypotheses)
    bleu = BLEU(tokenize=tokenize, lowercase=lowercase, force=True)  # force: the tokenized-text check is ours
    chrf = CHRF(lowercase=lowercase)
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": float(bleu_score.score),
        "chrf": float(chrf_score.score),
        "bleu_signature": str(bleu.get_signature()),  # only known after scoring: it counts the references
        "chrf_signature": str(chrf.get_signature()),
        "bleu_detail": bleu_score.format(),
    }


def _check_inputs(hypotheses: list[str], references: list[str], tokenize: str) -> None:
    if len(hypotheses) != len(references):
        raise RnnkitError(
            f"{len(hypotheses):,} hypotheses but {len(references):,} references: "
            "give one reference per translated sentence, in the same order"
        )
    if not hypotheses:
        raise RnnkitError("no sentences to score: give at least one hypothesis and its reference")
    if tokenize not in TOKENIZERS:
        raise RnnkitError(f"unknown BLEU tokenizer {tokenize!r}: use one of {', '.join(TOKENIZERS)}")


def _warn_if_tokenized(hypotheses: list[str]) -> None:
    """One warning (not sacrebleu's three log lines) when the text looks tokenized: BLEU is for detokenized text."""
    count = sum(h.endswith(" .") for h in hypotheses)
    if count >= _TOKENIZED:
        warnings.warn(
            f"{count:,} of {len(hypotheses):,} hypotheses end in a tokenized period (' .'): BLEU on tokenized "
            "text is not comparable with published scores, which are on detokenized text",
            stacklevel=3,
        )
