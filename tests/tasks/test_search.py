"""Greedy and beam search against brute force over toy step functions: exactness, batching, eos, constraints."""

import math
from typing import NamedTuple

import pytest
import torch

from rnnkit.errors import RnnkitError
from rnnkit.tasks.seq2seq.search import Hypothesis, beam_search, greedy_search

V = 4  # token 0 is eos, 1..3 are words
EOS = 0
BOS = V  # only ever an input: the tables have a row for it but the step never scores it
NEG = float("-inf")


class Toy(NamedTuple):
    count: torch.Tensor  # (N,) steps taken so far: the log-probs depend on it
    bias: torch.Tensor  # (N, V) a per-sentence shift, so sentences differ


def table(seed: int, steps: int = 9, eos_bias: float = 0.0) -> torch.Tensor:
    """Logits (steps, V + 1, V) indexed by step number and previous token."""
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(steps, V + 1, V, generator=g)
    logits[..., EOS] += eos_bias
    return logits


def biases(batch: int, seed: int = 100) -> torch.Tensor:
    return torch.randn(batch, V, generator=torch.Generator().manual_seed(seed))


def toy_step(logits: torch.Tensor, calls: list | None = None):
    def step(tokens, state):
        if calls is not None:
            calls.append(tokens.shape[0])
        assert not torch.is_grad_enabled()
        log_probs = (logits[state.count, tokens] + state.bias).log_softmax(-1)
        return log_probs, Toy(state.count + 1, state.bias)

    return step


def toy_state(bias: torch.Tensor) -> Toy:
    return Toy(torch.zeros(bias.shape[0], dtype=torch.long), bias)


def brute_force(logits, bias, max_len, penalty, allowed=None, sentence=0):
    """Every output: up to max_len words then eos (finished), or max_len words cut; best score first."""
    found = []

    def walk(history, prev, total):
        t = len(history)
        row = (logits[t, prev] + bias).log_softmax(-1).tolist()
        if allowed is not None:
            row = [lp if ok else NEG for lp, ok in zip(row, allowed(history, sentence), strict=True)]
        if row[EOS] > NEG:
            found.append(Hypothesis(history, (total + row[EOS]) / (t + 1) ** penalty, total + row[EOS], True))
        if t == max_len:
            found.append(Hypothesis(history, total / max(t, 1) ** penalty, total, False))
            return
        for tok in range(1, V):
            if row[tok] > NEG:
                walk([*history, tok], tok, total + row[tok])

    walk([], BOS, 0.0)
    return sorted(found, key=lambda h: h.score, reverse=True)


def greedy_reference(logits, bias, max_len, penalty):
    """Argmax one sentence at a time in plain Python."""
    history, total, prev = [], 0.0, BOS
    for t in range(max_len + 1):
        row = (logits[t, prev] + bias).log_softmax(-1).tolist()
        tok = max(range(V), key=row.__getitem__)
        if tok == EOS:
            return history, True, total + row[EOS]
        if t == max_len:
            return history, False, total
        history, total, prev = [*history, tok], total + row[tok], tok
    raise AssertionError


def assert_same(got: list[Hypothesis], expected: list[Hypothesis]) -> None:
    assert [(h.tokens, h.finished) for h in got] == [(h.tokens, h.finished) for h in expected]
    for g, e in zip(got, expected, strict=True):
        assert g.score == pytest.approx(e.score, abs=1e-4)
        assert g.log_prob == pytest.approx(e.log_prob, abs=1e-4)


# -- exactness ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("penalty", [0.0, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_wide_beam_finds_the_brute_force_best(seed, penalty):
    # 3 words and max_len <= 3: 40 outputs ending in eos and 27 cut ones, all within a beam of 128
    logits, bias, max_len = table(seed), biases(3, seed), torch.tensor([1, 3, 2])
    result = beam_search(
        toy_step(logits), toy_state(bias), bos=BOS, eos=EOS, beam_size=128, max_len=max_len, length_penalty=penalty
    )
    for b in range(3):
        assert_same(result[b], brute_force(logits, bias[b], int(max_len[b]), penalty)[:1])


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_n_best_are_the_brute_force_top_distinct_and_sorted(penalty):
    logits, bias, max_len = table(7), biases(2, 7), torch.tensor([3, 2])
    result = beam_search(
        toy_step(logits), toy_state(bias), bos=BOS, eos=EOS, beam_size=128, max_len=max_len,
        length_penalty=penalty, n_best=10,
    )  # fmt: skip
    for b in range(2):
        assert len(result[b]) == 10
        assert_same(result[b], brute_force(logits, bias[b], int(max_len[b]), penalty)[:10])


@pytest.mark.parametrize("beam", [3, 5, 128])
@pytest.mark.parametrize("n_best", [1, 3])
@pytest.mark.parametrize("seed", range(4))
def test_early_stop_is_exact_without_a_length_penalty_and_does_less(seed, n_best, beam):
    logits, bias, max_len = table(seed, eos_bias=1.0), biases(4, seed), torch.tensor([2, 3, 5, 8])
    kw = {"bos": BOS, "eos": EOS, "beam_size": beam, "max_len": max_len, "length_penalty": 0.0, "n_best": n_best}
    full_calls, early_calls = [], []
    full = beam_search(toy_step(logits, full_calls), toy_state(bias), **kw)
    early = beam_search(toy_step(logits, early_calls), toy_state(bias), early_stop=True, **kw)
    for a, b in zip(early, full, strict=True):
        assert_same(a, b)
    assert sum(early_calls) <= sum(full_calls)
    if beam == 5 and n_best == 1:
        assert sum(early_calls) < sum(full_calls)  # otherwise this test proves nothing


def shrinking_reference(logits, bias, max_len, beam, penalty):
    """GroundHog's / Nematus' beam search for one sentence in plain Python: the best ``beam - finished`` extensions
    of the live hypotheses; those ending in eos finish, the others stay live; at max_len the live ones are cut."""
    live, done = [([], 0.0)], []
    for t in range(max_len + 1):
        cands = sorted(
            ((lp + row[tok], tokens, tok) for tokens, lp in live
             for row in [(logits[t, tokens[-1] if tokens else BOS] + bias).log_softmax(-1).tolist()]
             for tok in range(V)),
            key=lambda c: -c[0],
        )  # fmt: skip
        width = beam - len(done)
        done += [
            Hypothesis(tokens, lp / (t + 1) ** penalty, lp, True) for lp, tokens, tok in cands[:width] if tok == EOS
        ]
        if len(done) >= beam:
            break
        if t == max_len:
            done += [Hypothesis(tokens, lp / max(t, 1) ** penalty, lp, False) for tokens, lp in live]
            break
        live = [([*tokens, tok], lp) for lp, tokens, tok in cands if tok != EOS][: beam - len(done)]
    return sorted(done, key=lambda h: h.score, reverse=True)


@pytest.mark.parametrize("beam", [2, 3, 5])
@pytest.mark.parametrize("penalty", [0.0, 1.0])
@pytest.mark.parametrize("seed", range(3))
def test_a_shrinking_beam_equals_its_reference_and_narrows(seed, penalty, beam):
    logits, bias, max_len = table(seed, eos_bias=0.5), biases(4, seed), torch.tensor([1, 3, 5, 8])
    calls = []
    got = beam_search(
        toy_step(logits, calls), toy_state(bias), bos=BOS, eos=EOS, beam_size=beam, max_len=max_len,
        length_penalty=penalty, n_best=beam, shrink=True,
    )  # fmt: skip
    for b in range(4):
        assert_same(got[b], shrinking_reference(logits, bias[b], int(max_len[b]), beam, penalty)[:beam])
    full = []
    beam_search(toy_step(logits, full), toy_state(bias), bos=BOS, eos=EOS, beam_size=beam, max_len=max_len)
    assert sum(calls) < sum(full)  # fewer rows: the point of shrinking


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_a_step_function_of_all_minus_infinity_raises(search):
    def step(tokens, state):
        return torch.full((tokens.shape[0], V), NEG), state

    run = greedy_search if search == "greedy" else beam_search
    kw = {"beam_size": 3} if search == "beam" else {}
    with pytest.raises(RnnkitError, match="no token is allowed for sentence 0 after 0 tokens"):
        run(step, toy_state(biases(2)), bos=BOS, eos=EOS, max_len=4, **kw)


def test_n_best_of_a_narrow_beam_are_distinct_sorted_and_led_by_the_best():
    logits, bias = table(3), biases(3, 3)
    narrow = beam_search(toy_step(logits), toy_state(bias), bos=BOS, eos=EOS, beam_size=5, max_len=6, n_best=5)
    best = beam_search(toy_step(logits), toy_state(bias), bos=BOS, eos=EOS, beam_size=5, max_len=6, n_best=1)
    for hyps, top in zip(narrow, best, strict=True):
        assert 1 < len(hyps) <= 5
        assert len({(tuple(h.tokens), h.finished) for h in hyps}) == len(hyps)
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert hyps[0] == top[0]


@pytest.mark.parametrize("penalty", [0.0, 0.7, 1.0])
@pytest.mark.parametrize("seed", range(5))
def test_beam_of_one_is_greedy(seed, penalty):
    logits, bias, max_len = table(seed, eos_bias=-1.0), biases(5, seed), torch.tensor([0, 1, 3, 5, 8])
    kw = {"bos": BOS, "eos": EOS, "max_len": max_len, "length_penalty": penalty}
    greedy = greedy_search(toy_step(logits), toy_state(bias), **kw)
    beam = beam_search(toy_step(logits), toy_state(bias), beam_size=1, **kw)
    assert [[h] for h in greedy] == beam  # tokens, scores and log-probs identical, not merely close
    for b, h in enumerate(greedy):
        tokens, finished, log_prob = greedy_reference(logits, bias[b], int(max_len[b]), penalty)
        assert (h.tokens, h.finished) == (tokens, finished)
        length = max(len(tokens) + finished, 1)
        assert h.log_prob == pytest.approx(log_prob, abs=1e-4)
        assert h.score == pytest.approx(log_prob / length**penalty, abs=1e-4)


# -- eos and max_len ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_eos_first_gives_an_empty_finished_output(search):
    logits, bias = table(0, eos_bias=20.0), biases(2)
    hyps = _run(search, logits, bias, max_len=4)
    for b, h in enumerate(hyps):
        eos_log_prob = (logits[0, BOS] + bias[b]).log_softmax(-1)[EOS].item()
        assert h == Hypothesis([], eos_log_prob, eos_log_prob, True)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_max_len_cuts_without_eos(search):
    logits, bias = table(1, eos_bias=-30.0), biases(3)
    hyps = _run(search, logits, bias, max_len=torch.tensor([0, 1, 3]), penalty=1.0)
    assert [len(h.tokens) for h in hyps] == [0, 1, 3]
    assert not any(h.finished for h in hyps)
    assert hyps[0].score == hyps[0].log_prob == 0.0  # nothing emitted: length counts as 1, not 0
    assert hyps[2].score == pytest.approx(hyps[2].log_prob / 3)


def test_eos_is_free_at_max_len():
    # eos is likely only at step 2, so max_len=2 outputs ([w, w] + eos) end there and finish with 2 words
    logits = table(2, eos_bias=-30.0)
    logits[2, :, EOS] = 30.0
    hyps = _run("greedy", logits, biases(2), max_len=torch.tensor([2, 1]))
    assert (len(hyps[0].tokens), hyps[0].finished) == (2, True)
    assert (len(hyps[1].tokens), hyps[1].finished) == (1, False)


def test_a_vocabulary_of_only_eos_ends_at_once():
    def step(tokens, state):
        return torch.zeros(tokens.shape[0], 1), state

    state = torch.zeros(3, 2)
    assert greedy_search(step, state, bos=1, eos=0, max_len=5) == [Hypothesis([], 0.0, 0.0, True)] * 3
    assert (
        beam_search(step, state, bos=1, eos=0, max_len=5, beam_size=3, n_best=3)
        == [[Hypothesis([], 0.0, 0.0, True)]] * 3
    )


def _run(search, logits, bias, max_len, penalty=1.0, **kw):
    args = {"bos": BOS, "eos": EOS, "max_len": max_len, "length_penalty": penalty, **kw}
    if search == "greedy":
        return greedy_search(toy_step(logits), toy_state(bias), **args)
    return [hyps[0] for hyps in beam_search(toy_step(logits), toy_state(bias), beam_size=3, **args)]


# -- constraints -------------------------------------------------------------------------------------------


def no_repeats_and_no_3_in_sentence_1(history, sentence):
    """Python rule for brute force: never repeat the previous word; sentence 1 never uses word 3."""
    return [
        not (history and tok == history[-1] and tok != EOS) and not (sentence == 1 and tok == 3) for tok in range(V)
    ]


def no_repeats_and_no_3_in_sentence_1_batched(history, sentence):
    allowed = torch.ones(history.shape[0], V, dtype=torch.bool)
    if history.shape[1]:
        allowed[torch.arange(history.shape[0]), history[:, -1]] = False
    allowed[:, EOS] = True
    allowed[sentence == 1, 3] = False
    return allowed


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_constrained_beam_equals_constrained_brute_force(penalty):
    logits, bias, max_len = table(4), biases(3, 4), torch.tensor([3, 3, 2])
    seen = []

    def constraint(history, sentence):
        seen.append((history.shape, sentence.tolist()))
        return no_repeats_and_no_3_in_sentence_1_batched(history, sentence)

    result = beam_search(
        toy_step(logits), toy_state(bias), bos=BOS, eos=EOS, beam_size=128, max_len=max_len,
        length_penalty=penalty, n_best=5, constraint=constraint,
    )  # fmt: skip
    assert seen[0][0] == (3, 0)  # bos is not in the history; at first one live beam per sentence
    assert [shape[1] for shape, _ in seen] == [0, 1, 2, 3]
    assert sorted(set(seen[0][1])) == [0, 1, 2]
    for b in range(3):
        expected = brute_force(logits, bias[b], int(max_len[b]), penalty, no_repeats_and_no_3_in_sentence_1, b)
        assert_same(result[b], expected[:5])
        for h in result[b]:
            assert all(x != y for x, y in zip(h.tokens, h.tokens[1:], strict=False))
    assert all(3 not in h.tokens for h in result[1])


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_a_forbidden_token_never_appears(search):
    logits, bias = table(2, eos_bias=-3.0), biases(4, 2)
    bias[:, 2] += 3.0  # make word 2 attractive

    def no_2(history, sentence):
        allowed = torch.ones(history.shape[0], V, dtype=torch.bool)
        allowed[:, 2] = False
        return allowed

    free = _run(search, logits, bias, max_len=6)
    assert any(2 in h.tokens for h in free)  # otherwise this test proves nothing
    assert all(2 not in h.tokens for h in _run(search, logits, bias, max_len=6, constraint=no_2))


@pytest.mark.parametrize("search", ["greedy", "beam"])
@pytest.mark.parametrize("after", [0, 2])
def test_a_constraint_allowing_nothing_raises(search, after):
    def nothing_late(history, sentence):
        return torch.full((history.shape[0], V), history.shape[1] < after)

    with pytest.raises(RnnkitError, match=f"no token is allowed for sentence 0 after {after} tokens") as err:
        _run(search, table(0, eos_bias=-30.0), biases(2), max_len=5, constraint=nothing_late)
    assert "\n" not in str(err.value)


def test_a_constraint_of_the_wrong_shape_raises():
    with pytest.raises(RnnkitError, match=r"constraint must return a bool mask of shape \(2, 4\)"):
        _run("greedy", table(0), biases(2), max_len=3, constraint=lambda h, s: torch.ones(2, V - 1, dtype=torch.bool))


# -- batching ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_a_sentence_does_not_depend_on_the_rest_of_the_batch(search):
    logits, bias, max_len = table(6, eos_bias=-1.0), biases(4, 6), [2, 5, 1, 4]
    together = _run(search, logits, bias, max_len=torch.tensor(max_len))
    alone = [_run(search, logits, bias[b : b + 1], max_len=max_len[b])[0] for b in range(4)]
    assert_same(together, alone)
    assert len({tuple(h.tokens) for h in together}) > 1  # the sentences really differ


@pytest.mark.parametrize(("search", "width"), [("greedy", 1), ("beam", 3)])
def test_rows_leave_the_batch_as_sentences_end(search, width):
    calls = []
    logits, bias = table(0, eos_bias=-30.0), biases(3)  # no eos: each sentence ends at its max_len
    args = {"bos": BOS, "eos": EOS, "max_len": torch.tensor([0, 2, 5])}
    if search == "greedy":
        greedy_search(toy_step(logits, calls), toy_state(bias), **args)
    else:
        beam_search(toy_step(logits, calls), toy_state(bias), beam_size=width, **args)
    # a sentence with max_len m takes steps 0..m (the last may still emit eos); the first step has one live beam
    assert calls == [3] + [width * n for n in [2, 2, 1, 1, 1]]


def test_sentences_full_of_finished_hypotheses_leave_early():
    calls = []
    logits = table(0, eos_bias=-30.0)
    logits[1:, :, EOS] = 30.0  # eos is best from step 1 on
    beam_search(toy_step(logits, calls), toy_state(biases(2)), bos=BOS, eos=EOS, beam_size=3, max_len=8)
    assert calls == [2, 6]  # step 0 runs one beam a sentence; step 1 finishes all three beams of both


def test_a_nested_state_and_a_custom_reorder():
    class Enc(NamedTuple):
        memory: torch.Tensor  # (N, S, H)
        mask: torch.Tensor  # (N, S)

    logits, bias = table(8), biases(3, 8)
    memory = torch.randn(3, 5, 2)
    indices = []

    def reorder(state, index):
        indices.append(index.clone())
        return (
            Toy(state[0].count[index], state[0].bias[index]),
            [Enc(state[1][0].memory[index], state[1][0].mask[index]), None],
        )

    def step(tokens, state):
        log_probs, toy = toy_step(logits)(tokens, state[0])
        assert state[1][0].memory.shape == (tokens.shape[0], 5, 2) and state[1][1] is None
        return log_probs, (toy, state[1])

    nested = (toy_state(bias), [Enc(memory, torch.ones(3, 5, dtype=torch.bool)), None])
    args = {"bos": BOS, "eos": EOS, "beam_size": 2, "max_len": 4, "n_best": 2}
    got = beam_search(step, nested, reorder=reorder, **args)
    assert indices[0].tolist() == [0, 0, 1, 1, 2, 2]  # tiled sentence-major
    assert got == beam_search(toy_step(logits), toy_state(bias), **args)
    assert beam_search(step, nested, **args) == got  # the default reorder handles the nesting too


def test_an_empty_batch_gives_nothing():
    state = toy_state(torch.zeros(0, V))
    assert greedy_search(toy_step(table(0)), state, bos=BOS, eos=EOS, max_len=3) == []
    assert beam_search(toy_step(table(0)), state, bos=BOS, eos=EOS, max_len=3, beam_size=2) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_search_stays_on_the_states_device():
    logits, bias = table(9), biases(3, 9)
    cpu = beam_search(toy_step(logits), toy_state(bias), bos=BOS, eos=EOS, beam_size=3, max_len=5, n_best=3)

    def step(tokens, state):
        assert tokens.is_cuda and state.count.is_cuda
        return toy_step(logits.cuda())(tokens, state)

    gpu = beam_search(
        step, toy_state(bias.cuda()), bos=BOS, eos=EOS, beam_size=3, max_len=torch.tensor([5, 5, 5]), n_best=3
    )
    for a, b in zip(cpu, gpu, strict=True):
        assert_same(a, b)


# -- bad arguments -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"beam_size": 0}, "beam_size must be at least 1, got 0"),
        ({"n_best": 0}, "n_best must lie between 1 and beam_size=3, got 0"),
        ({"n_best": 4}, "n_best must lie between 1 and beam_size=3, got 4"),
        ({"max_len": torch.tensor([3, 3])}, r"max_len must be an int or a \(3,\) tensor, got a tensor of shape \(2,\)"),
        ({"max_len": torch.tensor(3)}, r"max_len must be an int or a \(3,\) tensor, got a tensor of shape \(\)"),
        ({"max_len": -1}, "max_len must be at least 0, got -1"),
        ({"max_len": torch.tensor([2, -3, 1])}, "max_len must be at least 0, got -3"),
        ({"max_len": torch.tensor([2.0, 3.0, 1.0])}, "max_len must hold integers, got torch.float32"),
        ({"max_len": 2.5}, r"max_len must be an int or a \(3,\) tensor, got float"),
        ({"eos": 7}, "eos must be a token id below the step function's vocabulary of 4, got 7"),
    ],
)
def test_bad_arguments_say_what_was_expected_and_what_came(kw, message):
    args = {"bos": BOS, "eos": EOS, "beam_size": 3, "max_len": 4, **kw}
    with pytest.raises(RnnkitError, match=message) as err:
        beam_search(toy_step(table(0)), toy_state(biases(3)), **args)
    assert "\n" not in str(err.value)


def test_a_state_without_tensors_or_a_bad_step_output_raises():
    step = toy_step(table(0))
    with pytest.raises(RnnkitError, match="holds no tensors"):
        greedy_search(step, (None, []), bos=BOS, eos=EOS, max_len=3)
    with pytest.raises(RnnkitError, match="first tensor is a scalar"):
        beam_search(step, (torch.tensor(1.0),), bos=BOS, eos=EOS, max_len=3, beam_size=2)
    with pytest.raises(RnnkitError, match=r"log-probs of shape \(2, V\), got \(3, 4\)"):
        greedy_search(lambda t, s: (torch.zeros(3, V), s), torch.zeros(2, 1), bos=BOS, eos=EOS, max_len=3)


def test_length_penalty_changes_the_ranking():
    # a sanity check that the normalisation reaches the choice: mean-per-token favours longer outputs
    logits, bias = table(3), biases(4, 3)
    raw = beam_search(toy_step(logits), toy_state(bias), bos=BOS, eos=EOS, beam_size=8, max_len=6, length_penalty=0)
    mean = beam_search(toy_step(logits), toy_state(bias), bos=BOS, eos=EOS, beam_size=8, max_len=6, length_penalty=1)
    assert sum(len(h[0].tokens) for h in mean) > sum(len(h[0].tokens) for h in raw)
    assert all(math.isfinite(h[0].score) for h in raw + mean)


# -- the chunked top-k of long rows ------------------------------------------------------------------------


@pytest.mark.parametrize("vocab", [5921, 64 * 50, 640, 639, 4])  # a ragged tail, none, 2K chunks, fewer, tiny
def test_the_chunked_ranking_finds_the_best_of_all_sums(vocab):
    from rnnkit.tasks.seq2seq.search import _candidates

    n, k, g = 6, 5, torch.Generator().manual_seed(vocab)
    scores = 3 * torch.randn(n, k, generator=g)
    scores[0, 1:] = NEG  # the first step: one live beam
    scores[1, 3] = NEG  # an empty slot among live ones
    occupied = scores > NEG
    log_probs = torch.randn(int(occupied.sum()), vocab, generator=g).log_softmax(1)
    log_probs[0, ::2] = NEG  # a constraint
    log_probs[1, -3:] += 9  # the best in the tail
    log_probs[2, : min(vocab, 64)] += 9  # all of one chunk best
    log_probs[3] = log_probs[3].round()  # ties
    row_of = (occupied.view(-1).cumsum(0) - 1).clamp(min=0)
    top, _, ends, cont, cont_slot, cont_token = _candidates(scores, row_of, log_probs, 0, torch.full((n,), k))
    every = torch.full((n * k, vocab), NEG)
    every[occupied.view(-1)] = log_probs
    want = (scores.view(n * k, 1) + every).view(n, k * vocab).topk(min(2 * k, k * vocab), dim=1).values
    assert torch.equal(top, want)
    sentence = torch.arange(n).unsqueeze(1)
    again = scores.gather(1, cont_slot) + every[sentence * k + cont_slot, cont_token]  # what each candidate sums
    live = cont > NEG
    assert torch.equal(again[live], cont[live]) and (cont_token[live] != 0).all()  # continuing: eos is token 0
    assert ends.shape == top.shape and not ends[top == NEG].any()


def test_a_long_vocabulary_searches_as_with_plain_topk(monkeypatch):
    from rnnkit.tasks.seq2seq import search

    vocab, g = 3000, torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(12, vocab + 1, vocab, generator=g)
    logits[..., EOS] += torch.linspace(-4, 4, 12).view(12, 1)  # endings grow likelier with each step

    def step(tokens, state):
        return (logits[state.count, tokens] + state.bias).log_softmax(-1), Toy(state.count + 1, state.bias)

    state = Toy(torch.zeros(3, dtype=torch.long), torch.randn(3, vocab, generator=g))
    kw = {"bos": vocab, "eos": EOS, "max_len": 10, "beam_size": 5, "n_best": 3}
    chunked = beam_search(step, state, **kw)
    monkeypatch.setattr(search, "CHUNK", 1)  # every sum ranked
    plain = beam_search(step, state, **kw)
    for got, want in zip(chunked, plain, strict=True):
        assert_same(got, want)
