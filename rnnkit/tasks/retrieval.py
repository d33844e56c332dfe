"""Query-by-example retrieval: similarities between items, and mean average precision over a labelled collection.

Every item of a collection is a query against all the others; the relevant ones share its label (the same spoken
word, say). Average precision is scikit-learn's (the mean of the precision at each relevant item's rank), and
MAP its mean over the queries that have at least one relevant item. The similarities come from anything:
cosine of fixed-size vectors (:func:`cosine`: an autoencoder's codes, averaged features), or the negated
dynamic-time-warping cost of two feature sequences (:func:`dtw_similarities`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnkit.errors import RnnkitError


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities (A, B) of the rows of ``a`` and ``b`` (a zero row is similar to nothing: 0).

    >>> cosine(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[2.0, 0.0], [1.0, 1.0]])).round(4).tolist()
    [[1.0, 0.7071], [0.0, 0.0]]
    """
    norm = lambda m: m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)  # noqa: E731
    return norm(a) @ norm(b).T


def mean_average_precision(similarity: np.ndarray, labels: Sequence[Any]) -> tuple[float, int]:
    """MAP of each item as a query against the others (itself left out), and how many queries had a relevant
    item (those without one are not counted). ``similarity[i, j]``: how close j is to query i, higher nearer.

    >>> s = np.array([[0, 0.9, 0.1], [0.9, 0, 0.2], [0.1, 0.2, 0]])
    >>> mean_average_precision(s, ["a", "a", "b"])  # "b" has no other "b": two queries, each right first
    (1.0, 2)
    >>> mean_average_precision(np.array([[0, 0.1, 0.9], [0.1, 0, 0.9], [0.9, 0.9, 0]]), ["a", "a", "b"])
    (0.5, 2)
    """
    from sklearn.metrics import average_precision_score

    n = len(labels)
    if similarity.shape != (n, n):
        raise RnnkitError(f"similarity matrix of shape {similarity.shape}: expected ({n}, {n}), one row per item")
    labels = np.asarray(labels)
    scores = []
    for i in range(n):
        others = np.arange(n) != i
        relevant = labels[others] == labels[i]
        if relevant.any():
            scores.append(average_precision_score(relevant, similarity[i, others]))
    if not scores:
        raise RnnkitError("no item shares its label with another: retrieval has nothing to find")
    return float(np.mean(scores)), len(scores)


def dtw_similarities(features: Sequence[np.ndarray]) -> np.ndarray:
    """Negated dynamic-time-warping costs (N, N) between feature sequences (T_i, F): librosa's DTW over
    Euclidean frame distances, the path's total cost divided by the two lengths' sum (so long pairs are not
    penalised for their length). Symmetric; the diagonal is 0.

    >>> a, b, c = np.array([[0.0], [1.0], [2.0]]), np.array([[0.0], [0.0], [1.0], [2.0]]), np.array([[2.0], [2.0]])
    >>> (0.0 - dtw_similarities([a, b, c])).round(3).tolist()   # b is a with its first frame held: cost 0
    [[0.0, 0.0, 0.6], [0.0, 0.0, 0.833], [0.6, 0.833, 0.0]]

    (a to c: frame costs 2 + 1 + 0 over 3 + 2 frames; b to c: 2 + 2 + 1 + 0 over 4 + 2.)
    """
    from librosa.sequence import dtw

    n = len(features)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            cost = dtw(X=features[i].T, Y=features[j].T, metric="euclidean", backtrack=False)
            out[i, j] = out[j, i] = -cost[-1, -1] / (len(features[i]) + len(features[j]))
    return out
