"""CTC decoding against hand-made matrices, brute force over every frame path, and torch's ctc_loss."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.errors import RnnkitError
from rnnkit.tasks.ctc_decode import (
    FusionLM,
    Span,
    ctc_collapse,
    forced_alignment,
    greedy_alignment,
    greedy_decode,
    prefix_beam_search,
)

A, B = 1, 2  # two labels; index 0 is the blank unless a test says otherwise


def matrix(rows: list[dict[int, float]], num_classes: int = 3) -> Tensor:
    """(T, C) log-probs from per-frame probabilities of some classes; the rest of each frame's mass is spread evenly
    over the other classes (a tiny floor when none is left)."""
    probs = torch.zeros(len(rows), num_classes, dtype=torch.float64)
    for t, row in enumerate(rows):
        rest = [c for c in range(num_classes) if c not in row]
        for c, p in row.items():
            probs[t, c] = p
        probs[t, rest] = max(1 - sum(row.values()), 1e-6) / max(len(rest), 1)
    return (probs / probs.sum(-1, keepdim=True)).log()


def one_hot_path(path: list[int], num_classes: int = 3, peak: float = 0.9) -> Tensor:
    """Log-probs whose best path is ``path``, each frame's best class holding ``peak``."""
    return matrix([{c: peak} for c in path], num_classes)


def random_log_probs(T: int, C: int, seed: int, sharpness: float = 2.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, C, generator=g, dtype=torch.float64) * sharpness).log_softmax(-1)


def brute_force(log_probs: Tensor, blank: int = 0) -> dict[tuple[int, ...], float]:
    """log P(labelling) for every labelling of nonzero probability: logsumexp over the C^T frame paths."""
    T, C = log_probs.shape
    scores: dict[tuple[int, ...], list[float]] = defaultdict(list)
    for path in itertools.product(range(C), repeat=T):
        scores[tuple(ctc_collapse(path, blank))].append(sum(float(log_probs[t, c]) for t, c in enumerate(path)))
    return {labels: float(torch.tensor(s, dtype=torch.float64).logsumexp(0)) for labels, s in scores.items()}


def ctc_log_prob(log_probs: Tensor, labels: list[int], blank: int = 0) -> float:
    """log P(labels) by torch: -ctc_loss."""
    loss = F.ctc_loss(
        log_probs[:, None, :],
        torch.tensor(labels, dtype=torch.long),
        torch.tensor([log_probs.shape[0]]),
        torch.tensor([len(labels)]),
        blank=blank,
        reduction="sum",
        zero_infinity=False,
    )
    return -float(loss)


class BigramLM:
    """A toy FusionLM: the state is the previous label (``start`` before the first), log P from a (C, C) table."""

    def __init__(self, table: Tensor, start: int = 0) -> None:
        self.table, self.start, self.calls = table, start, 0

    def initial_state(self) -> int:
        return self.start

    def next_log_probs(self, state: int) -> Tensor:
        self.calls += 1
        return self.table[state]

    def advance(self, state: int, label: int) -> int:
        return label

    def log_prob(self, labels: tuple[int, ...]) -> float:
        previous = (self.start, *labels)[: len(labels)]
        return sum(float(self.table[p, c]) for p, c in zip(previous, labels, strict=True))


class UnigramLM(BigramLM):
    def __init__(self, probs: list[float]) -> None:
        row = torch.tensor(probs, dtype=torch.float64).log()
        super().__init__(row.expand(len(probs), len(probs)))


class ExplodingLM:
    def initial_state(self) -> None:
        raise AssertionError("the LM must not be called with lm_weight=0")

    next_log_probs = advance = initial_state


def best_labels(log_probs: Tensor, **kwargs) -> list[int]:
    return prefix_beam_search(log_probs, None, **kwargs)[0][0]


# --- ctc_collapse and greedy decoding ------------------------------------------------------------------------------


def test_collapse_merges_repeats_and_needs_a_blank_between_doubled_labels():
    assert ctc_collapse([A, A, 0, A]) == [A, A]
    assert ctc_collapse([A, A, A]) == [A]
    assert ctc_collapse([0, 0, 0]) == []
    assert ctc_collapse(torch.tensor([2, 2, 1, 0, 0]), blank=1) == [2, 0]  # another blank: 0 is a label


def test_greedy_on_hand_made_matrices():
    assert greedy_decode(one_hot_path([A, A, 0, A])) == [[A, A]]
    assert greedy_decode(one_hot_path([0, A, A, B, B, 0, B])) == [[A, B, B]]
    assert greedy_decode(one_hot_path([0, 0, 0])) == [[]]
    assert greedy_decode(one_hot_path([A, 0, B]), blank=2) == [[1, 0]]  # index 2 is the blank, 0 a label


def test_greedy_batched_with_lengths_equals_each_sequence_alone():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([7, 3, 0, 5])
    batch = torch.randn(4, 7, 4, generator=g).log_softmax(-1)
    batch[1, 3:] = float("nan")  # what lies past a sequence's length is never read
    alone = [greedy_decode(batch[b, :n])[0] for b, n in enumerate(lengths.tolist())]
    assert greedy_decode(batch, lengths) == alone
    assert [[s.label for s in row] for row in greedy_alignment(batch, lengths)] == alone
    assert greedy_decode(batch[:, :3]) == greedy_decode(batch, torch.full((4,), 3))  # None: every frame


def test_greedy_alignment_gives_first_and_last_frame_of_each_label():
    lp = one_hot_path([0, A, A, 0, B, B, B, 0, A, 0, A, A])
    assert greedy_alignment(lp) == [[Span(A, 1, 2), Span(B, 4, 6), Span(A, 8, 8), Span(A, 10, 11)]]
    assert greedy_alignment(lp[None], torch.tensor([6])) == [[Span(A, 1, 2), Span(B, 4, 5)]]


def test_greedy_rejects_bad_inputs():
    with pytest.raises(RnnkitError, match="lengths"):
        greedy_decode(torch.zeros(2, 4, 3), torch.tensor([5, 1]))
    with pytest.raises(RnnkitError, match="blank"):
        greedy_decode(torch.zeros(4, 3), blank=3)
    with pytest.raises(RnnkitError, match="shape"):
        greedy_decode(torch.zeros(4))


# --- prefix beam search against brute force and ctc_loss -----------------------------------------------------------


@pytest.mark.parametrize(
    ("T", "C", "seed", "blank"), [(1, 3, 0, 0), (3, 3, 1, 0), (4, 4, 2, 0), (5, 3, 3, 0), (5, 4, 4, 2)]
)
def test_wide_beam_scores_every_labelling_exactly(T, C, seed, blank):
    lp = random_log_probs(T, C, seed)
    expected = brute_force(lp, blank)
    beam = prefix_beam_search(lp, T, beam_size=len(expected) + 5, blank=blank)
    assert {tuple(labels): score for labels, score in beam} == pytest.approx(expected, abs=1e-9)
    best, score = beam[0]
    assert tuple(best) == max(expected, key=expected.get)
    for labels, score in beam:  # torch's ctc_loss agrees on every prefix, the best first
        assert score == pytest.approx(ctc_log_prob(lp, labels, blank), abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_length_cuts_the_frames_and_float32_input_works(seed):
    lp = random_log_probs(6, 3, seed)
    expected = brute_force(lp[:4])
    beam = prefix_beam_search(lp.float(), torch.tensor(4), beam_size=100)
    assert {tuple(labels): score for labels, score in beam} == pytest.approx(expected, abs=1e-5)


def test_doubled_label_needs_a_blank_between_its_frames():
    lp = one_hot_path([A, A], num_classes=2, peak=0.99)  # two frames cannot hold "aa"
    assert [A, A] not in [labels for labels, _ in prefix_beam_search(lp, None, beam_size=10)]
    lp = one_hot_path([A, 0, A], num_classes=2, peak=0.99)
    best, score = prefix_beam_search(lp, None, beam_size=10)[0]
    assert best == [A, A] and score == pytest.approx(3 * math.log(0.99))  # the one path "a _ a"


def test_one_one_best_path_collapses_otherwise_than_the_best_labelling():
    # a middle frame that is slightly more "a" than blank: best path "a a a" -> "a"
    merged = matrix([{A: 0.6, 0: 0.4}, {A: 0.55, 0: 0.45}, {A: 0.6, 0: 0.4}], num_classes=2)
    assert greedy_decode(merged) == [[A]]
    assert best_labels(merged, beam_size=4) == [A]
    # slightly more blank: best path "a _ a" -> "aa", yet "a" has more paths: P(a) = 0.714 > P(aa) = 0.198
    split = matrix([{A: 0.6, 0: 0.4}, {A: 0.45, 0: 0.55}, {A: 0.6, 0: 0.4}], num_classes=2)
    assert greedy_decode(split) == [[A, A]]
    beam = dict((tuple(labels), math.exp(score)) for labels, score in prefix_beam_search(split, None, beam_size=4))
    assert beam == pytest.approx({(A,): 0.714, (A, A): 0.198, (): 0.088})


def test_beam_sums_paths_where_greedy_takes_one():
    lp = matrix([{0: 0.6, A: 0.4}, {0: 0.6, A: 0.4}], num_classes=2)
    assert greedy_decode(lp) == [[]]
    assert [(labels, round(math.exp(s), 6)) for labels, s in prefix_beam_search(lp, None, beam_size=2)] == [
        ([A], 0.64),
        ([], 0.36),
    ]


@pytest.mark.parametrize("seed", range(5))
def test_beam_of_one_keeps_one_prefix_and_follows_a_peaked_best_path(seed):
    g = torch.Generator().manual_seed(seed)
    path = torch.randint(0, 4, (8,), generator=g).tolist()
    lp = one_hot_path(path, num_classes=4, peak=0.9)
    beam = prefix_beam_search(lp, None, beam_size=1)
    assert len(beam) == 1 and beam[0][0] == greedy_decode(lp)[0] == ctc_collapse(path)
    assert beam[0][1] <= prefix_beam_search(lp, None, beam_size=50)[0][1] + 1e-12  # a narrower beam sums fewer paths


def test_prune_keeps_only_each_frames_best_labels():
    lp = random_log_probs(5, 5, 7)
    assert prefix_beam_search(lp, None, beam_size=8, prune=4) == prefix_beam_search(lp, None, beam_size=8)
    top = lp[:, 1:].argmax(-1) + 1  # each frame's best label
    for labels, _ in prefix_beam_search(lp, None, beam_size=8, prune=1):
        assert set(labels) <= set(top.tolist())


def test_empty_utterance_and_blank_only_classes():
    assert prefix_beam_search(torch.zeros(3, 4), 0, beam_size=3) == [([], 0.0)]
    assert prefix_beam_search(torch.zeros(3, 1), None, beam_size=3) == [([], 0.0)]


def test_search_rejects_bad_arguments():
    lp = random_log_probs(3, 3, 0)
    for kwargs, message in [
        ({"beam_size": 0}, "beam_size"),
        ({"beam_size": 2, "prune": 0}, "prune"),
        ({"beam_size": 2, "blank": 3}, "blank"),
    ]:
        with pytest.raises(RnnkitError, match=message):
            prefix_beam_search(lp, None, **kwargs)
    with pytest.raises(RnnkitError, match="length"):
        prefix_beam_search(lp, 4, beam_size=2)
    with pytest.raises(RnnkitError, match=r"\(T, C\)"):
        prefix_beam_search(lp[None], None, beam_size=2)
    with pytest.raises(RnnkitError, match="next_log_probs"):
        prefix_beam_search(lp, None, beam_size=2, lm=UnigramLM([0.5, 0.5]), lm_weight=1.0)


# --- shallow fusion and the insertion bonus ------------------------------------------------------------------------


def test_toy_lms_are_fusion_lms():
    assert isinstance(BigramLM(torch.zeros(3, 3)), FusionLM)


@pytest.mark.parametrize(("weight", "bonus"), [(0.7, -0.3), (2.0, 1.5)])
def test_fused_scores_equal_ctc_plus_weighted_lm_plus_bonus(weight, bonus):
    lp = random_log_probs(4, 3, 11)
    lm = BigramLM(random_log_probs(3, 3, 12))
    expected = {
        labels: score + weight * lm.log_prob(labels) + bonus * len(labels) for labels, score in brute_force(lp).items()
    }
    beam = prefix_beam_search(lp, None, beam_size=100, lm=lm, lm_weight=weight, insertion_bonus=bonus)
    assert {tuple(labels): score for labels, score in beam} == pytest.approx(expected, abs=1e-9)
    assert lm.calls <= 4 * 100  # one LM row per prefix per frame at most: cached while the prefix stays


def test_lm_weight_zero_never_calls_the_lm():
    lp = random_log_probs(5, 4, 3)
    assert prefix_beam_search(lp, None, beam_size=4, lm=ExplodingLM(), lm_weight=0.0) == prefix_beam_search(
        lp, None, beam_size=4
    )


def test_an_lm_that_prefers_a_label_wins_a_close_frame():
    lp = matrix([{0: 0.9}, {0: 0.1, A: 0.5, B: 0.4}, {0: 0.9}])
    assert best_labels(lp, beam_size=4) == [A]
    prefers_b = UnigramLM([0.05, 0.05, 0.9])
    assert best_labels(lp, beam_size=4, lm=prefers_b, lm_weight=1.0) == [B]
    assert best_labels(lp, beam_size=4, lm=prefers_b, lm_weight=0.01) == [A]  # too weak to overturn the acoustics


def test_lm_score_is_added_when_a_label_is_appended_not_when_a_repeat_merges():
    lp = one_hot_path([A, A, A, A], num_classes=2, peak=0.99)
    lm = UnigramLM([0.5, 0.25])
    (labels, score), *_ = prefix_beam_search(lp, None, beam_size=4, lm=lm, lm_weight=1.0)
    assert labels == [A] and score == pytest.approx(ctc_log_prob(lp, [A]) + math.log(0.25))


def test_insertion_bonus_moves_the_length_preference():
    lp = matrix([{A: 0.9, 0: 0.05, B: 0.05}, {0: 0.55, B: 0.45}])
    assert best_labels(lp, beam_size=8) == [A]
    assert best_labels(lp, beam_size=8, insertion_bonus=1.0) == [A, B]
    assert best_labels(lp, beam_size=8, insertion_bonus=-10.0) == []


def _brute_force_alignment(lp: torch.Tensor, labels: list[int]) -> list[Span] | None:
    """The best path collapsing to ``labels`` by trying every path (tiny T and C only)."""
    T, C = lp.shape
    best, best_path = -math.inf, None
    for path in itertools.product(range(C), repeat=T):
        if ctc_collapse(path) == labels:
            score = sum(float(lp[t, c]) for t, c in enumerate(path))
            if score > best:
                best, best_path = score, path
    if best_path is None:
        return None
    runs, t = [], 0
    while t < T:  # each run of a label in the path is one emitted label
        end = t
        while end + 1 < T and best_path[end + 1] == best_path[t]:
            end += 1
        if best_path[t] != 0:
            runs.append(Span(best_path[t], t, end))
        t = end + 1
    return runs


@pytest.mark.parametrize("seed", range(12))
def test_forced_alignment_is_the_best_path_of_the_labelling(seed):
    g = torch.Generator().manual_seed(seed)
    T, C = 6, 3
    lp = (3 * torch.randn(T, C, generator=g, dtype=torch.float64)).log_softmax(-1)
    for labels in ([1], [2, 1], [1, 1], [1, 2, 1], [2, 2, 2]):
        assert forced_alignment(lp, labels) == _brute_force_alignment(lp, labels), labels


def test_forced_alignment_of_the_greedy_labelling_is_the_greedy_alignment():
    g = torch.Generator().manual_seed(0)
    lp = (4 * torch.randn(80, 6, generator=g)).log_softmax(-1)
    assert forced_alignment(lp, greedy_decode(lp)[0]) == greedy_alignment(lp)[0]


def test_forced_alignment_of_an_impossible_labelling_is_a_clear_error():
    lp = torch.zeros(3, 3).log_softmax(-1)
    assert forced_alignment(lp, []) == []
    with pytest.raises(RnnkitError, match="3 labels cannot be said in 3 frames"):
        forced_alignment(lp, [1, 1, 2])  # the repeat needs a blank between: 4 frames
    with pytest.raises(RnnkitError, match="other than the blank"):
        forced_alignment(lp, [0])
