"""Keyphrase extraction scores as the keyphrase literature computes them, and the TF-IDF ranking they are compared with.

A phrase is compared by its words, lower-cased and Porter-stemmed (nltk's stemmer, as pke and the papers use), so
"Neural Networks" predicted matches "neural network" in the gold list, and a document's predictions that stem
alike count once. Per document: precision, recall and F1 of the de-duplicated predictions, exact match; then the
mean over documents (macro). F1@k keeps the k best-ranked predictions (P = hits / predictions kept, pke's
convention); F1@M keeps all of them. Two targets (the protocols of ../shared/data/inspec/README.md):

- ``all``: every gold keyphrase, also the ~23% that do not occur in the text (protocol 2, Hulth 2003, pke);
- ``present``: only the gold keyphrases whose stemmed words occur in the document's, and only documents that
  have one (protocol 3, Meng et al. 2017).

>>> gold = [["neural networks", "back-propagation", "speech"]]
>>> text = [["Training", "neural", "network", "tagger", "for", "speech"]]
>>> scores = keyphrase_scores(text, gold, [[("speech",), ("neural", "network"), ("tagger",)]])
>>> round(scores["all"]["f1@M"], 4), round(scores["present"]["f1@M"], 4), round(scores["all"]["f1@5"], 4)
(0.6667, 0.8, 0.6667)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

Phrase = tuple[str, ...]
BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}


@lru_cache(maxsize=1)
def _nltk() -> tuple:
    from nltk.stem.porter import PorterStemmer
    from nltk.tokenize import TreebankWordTokenizer

    return PorterStemmer(), TreebankWordTokenizer()


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """A word lower-cased and Porter-stemmed: ``stem("Networks") == "network"``."""
    return _nltk()[0].stem(word.lower())


def stem_phrase(words: Iterable[str]) -> Phrase:
    """A phrase's words, each lower-cased and stemmed: the form phrases are compared in."""
    return tuple(stem(w) for w in words)


def tokenize(text: str) -> list[str]:
    """A gold keyphrase split into words as the Inspec text is (Treebank tokens, brackets as ``-LRB-`` ...)."""
    return [BRACKETS.get(w, w) for w in _nltk()[1].tokenize(text)]


def present(phrase: Phrase, document: Sequence[str]) -> bool:
    """Whether the stemmed ``phrase`` occurs as consecutive words of the stemmed ``document``."""
    n = len(phrase)
    return n > 0 and any(tuple(document[i : i + n]) == phrase for i in range(len(document) - n + 1))


def keyphrase_scores(
    documents: Sequence[Sequence[str]],
    gold: Sequence[Sequence[str]],
    ranked: Sequence[Sequence[Phrase]],
    *,
    ks: Sequence[int] = (5, 10),
    kept: Sequence[int] | None = None,
) -> dict[str, dict[str, float]]:
    """Macro precision, recall and F1 at each k and at M (all predictions), against all gold keyphrases and
    against the present ones (see the module).

    Args:
        documents: each document's tokens.
        gold: each document's gold keyphrases as written (strings; tokenized with :func:`tokenize`).
        ranked: each document's predicted phrases, best first, as word tuples (stemmed here).
        kept: how many of each document's ranked phrases are its predictions for F1@M (a classifier's labels
            over its threshold); None: all of them.
    """
    if not len(documents) == len(gold) == len(ranked):
        raise ValueError(
            f"{len(documents)} documents, {len(gold)} gold lists and {len(ranked)} predictions: give one each"
        )
    sums = {target: Counter() for target in ("all", "present")}
    counts = Counter()
    for i, (tokens, phrases, predicted) in enumerate(zip(documents, gold, ranked, strict=True)):
        text = stem_phrase(tokens)
        targets = _unique(stem_phrase(tokenize(p)) for p in phrases)
        guesses = _unique(stem_phrase(p) for p in predicted)
        at_m = guesses if kept is None else _unique(stem_phrase(p) for p in predicted[: kept[i]])
        for target, wanted in (("all", targets), ("present", [p for p in targets if present(p, text)])):
            if target == "present" and not wanted:
                continue
            counts[target] += 1
            for k in (*ks, None):
                chosen = at_m if k is None else guesses[:k]
                at = "M" if k is None else str(k)
                p, r, f = _prf(chosen, set(wanted))
                sums[target].update({f"precision@{at}": p, f"recall@{at}": r, f"f1@{at}": f})
    result: dict[str, dict[str, float]] = {}
    for target, total in sums.items():
        n = counts[target]
        result[target] = {key: value / n for key, value in total.items()} | {"documents": n}
    return result


def _unique(phrases: Iterable[Phrase]) -> list[Phrase]:
    """The non-empty phrases in order, each once."""
    return list(dict.fromkeys(p for p in phrases if p))


def _prf(predicted: list[Phrase], gold: set[Phrase]) -> tuple[float, float, float]:
    hits = sum(p in gold for p in predicted)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return precision, recall, f1


# ---------------------------------------- the unsupervised floor


def _stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


def candidates(tokens: Sequence[str], max_words: int = 4) -> list[tuple[Phrase, int]]:
    """Each maximal run of content words (no stopword, punctuation or number) of at most ``max_words`` words,
    as (words, start): "the design of neural network taggers" gives ``design`` and ``neural network taggers``.

    pke's TfIdf takes noun phrases from a part-of-speech tagger; nltk's needs a model download, which rnnkit never
    does, so runs between stopwords stand in for noun phrases (on Inspec valid they score F1@10 0.286 where every
    1..3-gram scores 0.176: sub-phrases of a good phrase crowd the top ten).
    """
    stop = _stopwords()
    ok = [w.lower() not in stop and any(c.isalpha() for c in w) and not w.startswith("-") for w in tokens]
    found, i = [], 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and ok[j]:
            j += 1
        if 0 < j - i <= max_words:
            found.append((tuple(tokens[i:j]), i))
        i = max(j, i + 1)
    return found


class TfIdf:
    """Rank a document's candidate phrases (:func:`candidates`) by term frequency in it times inverse document
    frequency in a reference collection, both counted on stemmed phrases (pke's TfIdf).

    >>> ranker = TfIdf([["deep", "learning", "rocks"], ["the", "cat"], ["the", "dog"]])
    >>> ranker.rank(["a", "dog", "and", "a", "cat", "and", "a", "cat"])  # cat: twice as frequent, as rare
    [('cat',), ('dog',)]
    """

    def __init__(self, collection: Iterable[Sequence[str]], max_words: int = 4) -> None:
        self.max_words = max_words
        self.df: Counter = Counter()
        self.n = 0
        for tokens in collection:
            self.n += 1
            self.df.update({stem_phrase(p) for p, _ in candidates(tokens, max_words)})

    def rank(self, tokens: Sequence[str]) -> list[Phrase]:
        """The document's candidates, best first (ties: the earlier first), each stemmed form once, as written."""
        tf: Counter = Counter()
        first: dict[Phrase, tuple[int, Phrase]] = {}
        for words, start in candidates(tokens, self.max_words):
            key = stem_phrase(words)
            tf[key] += 1
            first.setdefault(key, (start, words))
        score = {key: tf[key] * math.log((self.n + 1) / (self.df[key] + 1)) for key in tf}
        order = sorted(score, key=lambda key: (-score[key], first[key][0]))
        return [first[key][1] for key in order]


# ---------------------------------------- a tagger's spans as a ranking


def rank_spans(
    tokens: Sequence[str], spans: Iterable[tuple[int, int]], confidence: Sequence[float]
) -> list[tuple[Phrase, float]]:
    """A tagged document's spans as keyphrases, best first, each stemmed form once: a span scores the mean
    probability of its tags (``confidence``, per word), a phrase its best occurrence; ties go to the earlier.

    >>> words, confidence = ["fast", "neural", "nets", "and", "neural", "nets"], [0.5, 0.6, 0.8, 1, 0.9, 0.9]
    >>> rank_spans(words, [(1, 3), (4, 6), (0, 1)], confidence)
    [(('neural', 'nets'), 0.9), (('fast',), 0.5)]
    """
    best: dict[Phrase, tuple[float, int, Phrase]] = {}
    for start, end in spans:
        words = tuple(tokens[start:end])
        score = sum(confidence[start:end]) / max(end - start, 1)
        key = stem_phrase(words)
        if key not in best or score > best[key][0]:
            best[key] = (score, min(start, best.get(key, (0, start))[1]), words)
    order = sorted(best.values(), key=lambda item: (-item[0], item[1]))
    return [(words, round(score, 6)) for score, _, words in order]
