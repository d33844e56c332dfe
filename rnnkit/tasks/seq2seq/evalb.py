"""Labelled bracket scores of parse trees against gold trees, computed as EVALB does with ``COLLINS.prm``.

EVALB (Sekine & Collins 1997) is the standard constituency-parsing metric; this is its algorithm rewritten in
Python, with the settings of its ``COLLINS.prm`` built in:

- ``DELETE_LABEL TOP -NONE- , : `` '' .``: a word whose POS tag is one of these is removed before spans are
  counted, and a bracket with one of these labels is not counted (its children are). Tags are taken from the
  **gold** tree for both trees, so a predicted tree may carry any tags (``XX`` from :func:`~rnnkit.data.trees.
  rebuild`); with the gold tags EVALB itself removes the same words, and a test tree whose punctuation tags
  differ is an error there ("Length unmatch") rather than a score.
- a bracket is ``(label, start, end)`` over the remaining words, ``end`` exclusive; preterminals are not
  brackets; the root is one (unless labelled TOP); a bracket left with no word is dropped; labels are cut at
  their first ``-`` or ``=`` (function tags, ``NP-SBJ`` -> ``NP``), then ``EQ_LABEL ADVP PRT`` counts PRT as ADVP.
- brackets form a multiset: a unary chain ``(NP (NP ...))`` gives the same bracket twice, and a test tree
  matches it twice only if it has it twice.
- ``DELETE_LABEL_FOR_LENGTH -NONE-``: a sentence's length, for the ``max_length`` cut-off (EVALB's
  ``len<=40`` summary), counts every word but ``-NONE-`` ones (punctuation counts).

Scores are EVALB's summary: micro-averaged over all brackets of the corpus, in percent. Sentences whose words
differ (in number or spelling) are errors that EVALB skips; here they raise, so a score never leaves out
sentences silently.

>>> from rnnkit.data.trees import parse_tree
>>> gold = parse_tree("(S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (PRP it)))) (. .))")
>>> test = parse_tree("(S (NP (XX The) (XX cat)) (VP (XX sat)) (PP (XX on) (NP (XX it))) (XX .))")
>>> scores = evalb([gold], [test])
>>> scores["matched"], scores["gold_brackets"], scores["test_brackets"], round(scores["f1"], 2)
(4, 5, 5, 80.0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rnnkit.data.trees import CLOSE, LEAF, OPEN, Tree, tags, walk, words
from rnnkit.errors import RnnkitError

PUNCTUATION = frozenset({",", ":", "``", "''", "."})
"""The punctuation tags COLLINS.prm deletes (not ``-LRB-``, ``-RRB-``, ``#`` or ``$``)."""

DELETE_LABELS = frozenset({"TOP", "-NONE-"}) | PUNCTUATION
"""COLLINS.prm's DELETE_LABEL: words with these tags are removed, brackets with these labels not counted."""

LENGTH_DELETE_LABELS = frozenset({"-NONE-"})
"""COLLINS.prm's DELETE_LABEL_FOR_LENGTH: words not counted in a sentence's length."""

EQUAL_LABELS = {"PRT": "ADVP"}
"""COLLINS.prm's EQ_LABEL ADVP PRT, as a map to one representative."""

CUTOFF_LEN = 40
"""EVALB's second summary scores sentences of at most this many words (pass it as ``max_length``)."""

Bracket = tuple[str, int, int]  # (label, start, end) over the words left after deletion, end exclusive


def bracket_label(label: str) -> str:
    """The label EVALB compares: cut at the first ``-`` or ``=`` (function tags), then ADVP for PRT.

    Labels that start with ``-`` (``-NONE-``, ``-LRB-``) are kept whole (EVALB would cut them to nothing).

    >>> bracket_label("NP-SBJ-1"), bracket_label("PRT"), bracket_label("-NONE-")
    ('NP', 'ADVP', '-NONE-')
    """
    if not label.startswith("-"):
        label = label.split("-", 1)[0].split("=", 1)[0]
    return EQUAL_LABELS.get(label, label)


def sentence_brackets(tree: Tree, gold_tags: Sequence[str]) -> Counter[Bracket]:
    """The multiset of labelled brackets EVALB counts in ``tree``, deleting the words by ``gold_tags``.

    Args:
        tree: a gold or predicted tree.
        gold_tags: the gold tree's POS tags, one per word of ``tree``; words with a tag in
            :data:`DELETE_LABELS` are removed before spans are counted.

    Raises:
        RnnkitError: ``tree`` has another number of words than ``gold_tags`` has tags.

    >>> from rnnkit.data.trees import parse_tree
    >>> sorted(sentence_brackets(parse_tree("(S (NP (PRP It)) (VP (VBZ works)) (. .))"), ["PRP", "VBZ", "."]))
    [('NP', 0, 1), ('S', 0, 2), ('VP', 1, 2)]
    """
    brackets: Counter[Bracket] = Counter()
    starts: list[int] = []  # the kept-word position where each open bracket began
    kept = i = 0
    for kind, label, _ in walk(tree):
        if kind == OPEN:
            starts.append(kept)
        elif kind == LEAF:
            if i < len(gold_tags) and gold_tags[i] not in DELETE_LABELS:
                kept += 1
            i += 1
        elif kind == CLOSE:
            start, label = starts.pop(), bracket_label(label)
            if start < kept and label not in DELETE_LABELS:  # start == kept: nothing left inside
                brackets[label, start, kept] += 1
    if i != len(gold_tags):
        raise RnnkitError(f"the tree has {i} words but {len(gold_tags)} gold tags were given: give one tag per word")
    return brackets


def _crossing(test: Counter[Bracket], gold: Counter[Bracket]) -> int:
    """EVALB's crossing count: the test brackets that overlap some gold bracket without nesting in either way."""
    spans = {(s, e) for _, s, e in gold}
    return sum(n for (_, s, e), n in test.items() if any(gs < s < ge < e or s < gs < e < ge for gs, ge in spans))


def _check_words(index: int, gold: Tree, test: Tree) -> list[str]:
    """The gold tags, after checking both trees have the same words (EVALB's "Length/Words unmatch" errors)."""
    gold_words, test_words = words(gold), words(test)
    if len(gold_words) != len(test_words):
        raise RnnkitError(
            f"sentence {index}: length unmatch, the gold tree has {len(gold_words)} words and the test tree "
            f"{len(test_words)}: rebuild each prediction with its sentence's words"
        )
    for k, (g, t) in enumerate(zip(gold_words, test_words, strict=True)):
        if g != t:
            raise RnnkitError(
                f"sentence {index}: words unmatch at word {k}, gold {g!r} and test {t!r}: rebuild each "
                "prediction with the gold words (not <unk>-mapped ones)"
            )
    return tags(gold)


def evalb(gold: Sequence[Tree], test: Sequence[Tree], *, max_length: int | None = None) -> dict[str, float | int]:
    """EVALB's corpus summary (COLLINS.prm) of ``test`` trees against ``gold`` trees, sentence by sentence.

    Args:
        gold: the gold trees (with their POS tags, which decide the punctuation to delete).
        test: the predicted trees, in the same order, with the same words; their tags are ignored.
        max_length: score only sentences of at most this many words (:data:`CUTOFF_LEN` gives EVALB's
            ``len<=40`` summary); None scores all.

    Returns:
        ``precision``, ``recall``, ``f1`` (labelled brackets, micro-averaged, in percent), ``exact_match``
        (percent of sentences whose brackets all match, both ways), ``average_crossing`` (test brackets that
        cross a gold bracket, per sentence), and the counts ``sentences``, ``matched``, ``gold_brackets``,
        ``test_brackets``, ``exact``. With no bracket a score is 0.0, as EVALB prints.

    Raises:
        RnnkitError: the lists differ in length, or sentence i's trees differ in their words ("length
            unmatch" or "words unmatch", naming i).
    """
    if len(gold) != len(test):
        raise RnnkitError(f"evalb got {len(gold)} gold trees and {len(test)} test trees: give one test tree per gold")
    totals = Counter(sentences=0, matched=0, gold_brackets=0, test_brackets=0, exact=0, crossing=0)
    for index, (g, t) in enumerate(zip(gold, test, strict=True)):
        gold_tags = _check_words(index, g, t)
        if max_length is not None and sum(tag not in LENGTH_DELETE_LABELS for tag in gold_tags) > max_length:
            continue
        gold_brackets, test_brackets = sentence_brackets(g, gold_tags), sentence_brackets(t, gold_tags)
        matched = sum((gold_brackets & test_brackets).values())  # EVALB's greedy one-to-one matching
        n_gold, n_test = gold_brackets.total(), test_brackets.total()
        totals.update(sentences=1, matched=matched, gold_brackets=n_gold, test_brackets=n_test)
        totals.update(exact=int(matched == n_gold == n_test), crossing=_crossing(test_brackets, gold_brackets))
    return _summary(totals)


def _summary(totals: Counter[str]) -> dict[str, float | int]:
    """Percentages from the counts, 0.0 where a denominator is 0 (EVALB prints 0 there)."""
    matched, n_gold, n_test, n = (
        totals["matched"],
        totals["gold_brackets"],
        totals["test_brackets"],
        totals["sentences"],
    )
    recall = 100.0 * matched / n_gold if n_gold else 0.0
    precision = 100.0 * matched / n_test if n_test else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "exact_match": 100.0 * totals["exact"] / n if n else 0.0,
        "average_crossing": totals["crossing"] / n if n else 0.0,
        "sentences": n,
        "matched": matched,
        "gold_brackets": n_gold,
        "test_brackets": n_test,
        "exact": totals["exact"],
    }
