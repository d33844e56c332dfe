"""TreeConstraint: the exact tokens allowed after hand-made prefixes, and greedy/beam search under random or
adversarial step functions always returning well-formed trees with the sentence's number of XX.
"""

import pytest
import torch

from rnnkit.data import Vocabulary
from rnnkit.data.trees import linearize, rebuild, repairs, token_kind
from rnnkit.errors import RnnkitError
from rnnkit.tasks.seq2seq.search import beam_search, greedy_search
from rnnkit.tasks.seq2seq.tree_constraint import MAX_OPEN_RUN, TreeConstraint

# (PP has no )PP and )ADJP no (ADJP: neither may ever be written
VOCAB = Vocabulary([*Vocabulary.SPECIALS, "(S", ")S", "(NP", ")NP", "(VP", ")VP", "XX", "(PP", ")ADJP"])
OPENS = {"(S", "(NP", "(VP"}


def allowed(constraint: TreeConstraint, prefix: str, sentence: int = 0) -> set[str]:
    history = torch.tensor([VOCAB.encode(prefix.split())], dtype=torch.long)
    mask = constraint(history, torch.tensor([sentence]))
    assert mask.dtype == torch.bool and mask.shape == (1, len(VOCAB))
    return set(VOCAB.decode(mask[0].nonzero().squeeze(1)))


@pytest.mark.parametrize(
    "prefix, n, expected",
    [
        ("", 1, OPENS),  # the first token opens the root; (PP cannot close, so it is never allowed
        ("(S", 1, {"XX"} | OPENS),
        ("(S XX", 1, {")S"}),  # the one XX is written: only the root's close
        ("(S XX", 2, {"XX"} | OPENS),  # the root cannot close with an XX still to come
        ("(S (NP XX", 1, {")NP"}),
        ("(S (NP XX", 2, {")NP", "XX"} | OPENS),
        ("(S (NP XX )NP", 1, {")S"}),
        ("(S (NP XX )NP", 2, {"XX"} | OPENS),
        ("(S (NP", 1, {"XX"} | OPENS),  # NP holds no XX yet: it may not close
        ("(S XX )S", 1, {"<eos>"}),  # after the root, only eos
        ("(S XX XX )S", 2, {"<eos>"}),
        ("", 0, {"<eos>"}),  # no word, no tree: the output can only be empty
    ],
)
def test_allowed_tokens_after_hand_made_prefixes(prefix, n, expected):
    assert allowed(TreeConstraint(VOCAB, [n]), prefix) == expected


@pytest.mark.parametrize(
    "prefix",
    [
        "(S )S",  # a bracket closed with no XX inside
        "XX",  # an XX outside every bracket
        ")S",
        "<pad>",
        "(S <unk>",
        "(PP",  # a label the vocabulary cannot close
        ")ADJP",
        "(S XX )NP",  # a close of another label
        "(S XX )S (S",  # a second root
        "(S XX )S XX",
        "(S XX <eos>",
    ],
)
def test_broken_histories_allow_nothing(prefix):
    # empty beam slots carry such rows; the search ignores their masks, which must not raise
    assert allowed(TreeConstraint(VOCAB, [3]), prefix) == set()


def test_too_many_xx_allows_nothing():
    assert allowed(TreeConstraint(VOCAB, [1]), "(S XX XX") == set()


def test_max_open_run_limits_brackets_opened_in_a_row():
    constraint = TreeConstraint(VOCAB, [3], max_open_run=2)
    assert allowed(constraint, "(S") == {"XX"} | OPENS
    assert allowed(constraint, "(S (NP") == {"XX"}
    assert allowed(constraint, "(S (NP XX") == {"XX", ")NP"} | OPENS  # an XX resets the run
    assert constraint.max_lengths().tolist() == [3 * 5]


def test_max_len_keeps_room_to_finish():
    # 2 words, max_len 4: only (S XX XX )S fits. After (S: t=1, 2 XX and 1 close to come; an open needs 2 more
    constraint = TreeConstraint(VOCAB, [2], max_len=4)
    assert allowed(constraint, "") == OPENS
    assert allowed(constraint, "(S") == {"XX"}
    assert allowed(constraint, "(S XX") == {"XX"}
    assert constraint.max_lengths().tolist() == [4]
    wider = TreeConstraint(VOCAB, [2], max_len=6)
    assert allowed(wider, "(S") == {"XX"} | OPENS
    assert allowed(wider, "(S (NP") == {"XX"}


def test_sentences_of_a_batch_keep_their_own_lengths():
    constraint = TreeConstraint(VOCAB, torch.tensor([1, 2]))
    history = torch.tensor([VOCAB.encode(["(S", "XX"])] * 2)
    mask = constraint(history, torch.tensor([0, 1]))
    assert set(VOCAB.decode(mask[0].nonzero().squeeze(1))) == {")S"}
    assert set(VOCAB.decode(mask[1].nonzero().squeeze(1))) == {"XX"} | OPENS


def test_the_cache_follows_reordered_rows():
    # step by step with rows swapped between calls gives the masks a fresh constraint computes from scratch
    prefixes = [["(S", "(NP", "XX", ")NP", "(VP", "XX"], ["(NP", "(NP", "XX", "XX", ")NP", "XX"]]
    constraint = TreeConstraint(VOCAB, [3, 4])
    sentence = torch.tensor([0, 1])
    for t in range(len(prefixes[0]) + 1):
        order = [t % 2, 1 - t % 2]
        history = torch.tensor([VOCAB.encode(prefixes[i][:t]) for i in order]).view(2, t)
        mask = constraint(history, sentence[order])
        fresh = TreeConstraint(VOCAB, [3, 4])(history, sentence[order])
        assert torch.equal(mask, fresh)


def check_output(tokens: list[int], n: int, max_open_run: int = MAX_OPEN_RUN) -> None:
    linear = VOCAB.decode(tokens)
    assert linear.count("XX") == n and repairs(linear, n) == []
    assert linearize(rebuild(linear, [f"w{i}" for i in range(n)])) == linear
    run = longest = 0
    for token in linear:
        run = run + 1 if token_kind(token)[0] == "open" else 0 if token == "XX" else run
        longest = max(longest, run)
    assert longest <= max_open_run


def random_step(bias: dict[str, float] | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shift = torch.zeros(len(VOCAB))
    for token, value in (bias or {}).items():
        shift[VOCAB.index(token)] = value

    def step(tokens, state):
        return (2 * torch.randn(tokens.shape[0], len(VOCAB), generator=g) + shift).log_softmax(-1), state

    return step


LENGTHS = [1, 2, 5, 12]


@pytest.mark.parametrize("beam", [1, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_beam_search_outputs_well_formed_trees(beam, seed):
    constraint = TreeConstraint(VOCAB, LENGTHS)
    found = beam_search(
        random_step(seed=seed),
        torch.zeros(len(LENGTHS), 1),
        bos=VOCAB.bos_id,
        eos=VOCAB.eos_id,
        beam_size=beam,
        n_best=beam,
        max_len=constraint.max_lengths(),
        constraint=constraint,
    )
    for n, hypotheses in zip(LENGTHS, found, strict=True):
        assert hypotheses
        for h in hypotheses:
            assert h.finished
            check_output(h.tokens, n)


@pytest.mark.parametrize(
    "bias",
    [
        {"(S": 6.0, "(NP": 6.0, "(VP": 6.0},  # wants to open forever: the run limit stops it
        {"<eos>": 8.0, ")S": 6.0},  # wants to stop at once
        {"XX": 8.0},  # wants XX forever
        {"<pad>": 9.0, "<unk>": 9.0, "(PP": 9.0, ")ADJP": 9.0},  # wants what is never allowed
    ],
)
def test_greedy_search_under_adversarial_step_functions(bias):
    constraint = TreeConstraint(VOCAB, LENGTHS, max_open_run=3)
    limits = constraint.max_lengths()
    found = greedy_search(
        random_step(bias),
        torch.zeros(len(LENGTHS), 1),
        bos=VOCAB.bos_id,
        eos=VOCAB.eos_id,
        max_len=limits,
        constraint=constraint,
    )
    for n, limit, h in zip(LENGTHS, limits.tolist(), found, strict=True):
        assert h.finished and len(h.tokens) <= limit
        check_output(h.tokens, n, max_open_run=3)


def test_a_tight_max_len_still_ends_in_trees():
    # max_len 3n + 2 is below the run bound: the budget rule keeps every hypothesis finishable within it
    limits = [3 * n + 2 for n in LENGTHS]
    constraint = TreeConstraint(VOCAB, LENGTHS, max_len=limits)
    found = beam_search(
        random_step({"(S": 4.0, "(NP": 4.0}, seed=3),
        torch.zeros(len(LENGTHS), 1),
        bos=VOCAB.bos_id,
        eos=VOCAB.eos_id,
        beam_size=4,
        n_best=4,
        max_len=constraint.max_lengths(),
        constraint=constraint,
    )
    for n, limit, hypotheses in zip(LENGTHS, limits, found, strict=True):
        for h in hypotheses:
            assert h.finished and len(h.tokens) <= limit
            check_output(h.tokens, n)


def test_a_sentence_without_words_ends_at_once():
    constraint = TreeConstraint(VOCAB, [0, 2])
    found = greedy_search(
        random_step(),
        torch.zeros(2, 1),
        bos=VOCAB.bos_id,
        eos=VOCAB.eos_id,
        max_len=constraint.max_lengths(),
        constraint=constraint,
    )
    assert found[0].tokens == [] and found[0].finished
    check_output(found[1].tokens, 2)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: TreeConstraint(Vocabulary([*Vocabulary.SPECIALS, "(S", ")S"]), [1]), "no XX token"),
        (lambda: TreeConstraint(Vocabulary([*Vocabulary.SPECIALS, "(S", ")NP", "XX"]), [1]), "both open and close"),
        (lambda: TreeConstraint(VOCAB, [2, -1]), "lengths must be at least 0, got -1"),
        (lambda: TreeConstraint(VOCAB, torch.tensor([1.0])), "lengths must be a 1-D integer tensor"),
        (lambda: TreeConstraint(VOCAB, [1], max_open_run=0), "max_open_run must be at least 1"),
        (lambda: TreeConstraint(VOCAB, [1, 5], max_len=6), "max_len 6 is too short for sentence 1 of 5 words"),
        (lambda: TreeConstraint(VOCAB, [1, 5], max_len=[9]), "max_len has 1 values for 2 sentences"),
    ],
)
def test_construction_errors(make, message):
    with pytest.raises(RnnkitError, match=message):
        make()


def test_sentence_index_out_of_range():
    with pytest.raises(RnnkitError, match="sentence index 2 is out of range: this constraint has 2"):
        TreeConstraint(VOCAB, [1, 2])(torch.zeros(1, 0, dtype=torch.long), torch.tensor([2]))
