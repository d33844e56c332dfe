"""The CRF against brute force: every one of the K^T tag sequences scored by the docstring's formula."""

import copy
import itertools
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.autograd import gradcheck
from torch.func import functional_call

import rnnkit.tasks.crf as crf_module
from rnnkit.tasks.crf import CRF, bio_constraints

BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def random_crf(K: int, seed: int = 0, constraints=None) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(K, constraints=constraints, dtype=torch.float64)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def brute_force(crf: CRF, emissions: torch.Tensor, length: int, allowed=None):
    """All tag sequences of one sentence (N, L) and their scores (N,), keeping only allowed ones if given."""
    K, L = crf.num_tags, length
    ys = torch.tensor(list(itertools.product(range(K), repeat=L)))  # (N, L)
    scores = (
        crf.start[ys[:, 0]]
        + emissions[torch.arange(L), ys].sum(1)
        + crf.transitions[ys[:, :-1], ys[:, 1:]].sum(1)
        + crf.end[ys[:, -1]]
    )
    if allowed is not None:
        ok = allowed[K, ys[:, 0]] & allowed[ys[:, :-1], ys[:, 1:]].all(1) & allowed[ys[:, -1], K + 1]
        ys, scores = ys[ok], scores[ok]
    return ys, scores.detach()


def padded_batch(K: int, lengths: list[int], seed: int = 1, pad_value: float = 0.0):
    """Random float64 emissions (B, T, K) with ``pad_value`` after each length, random tags (B, T) and the mask."""
    gen = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    mask = torch.arange(T) < torch.tensor(lengths).unsqueeze(1)  # (B, T)
    emissions = torch.randn(B, T, K, generator=gen, dtype=torch.float64).masked_fill(~mask.unsqueeze(2), pad_value)
    tags = torch.randint(0, K, (B, T), generator=gen)
    return emissions, tags, mask


def check_against_brute_force(crf: CRF, lengths: list[int], seed: int = 1) -> None:
    emissions, tags, mask = padded_batch(crf.num_tags, lengths, seed)
    log_z = crf.log_partition(emissions, mask)
    ll = crf.log_likelihood(emissions, tags, mask)
    best = crf.decode(emissions, mask)
    for b, L in enumerate(lengths):
        ys, scores = brute_force(crf, emissions[b, :L], L)
        gold = (ys == tags[b, :L]).all(1)
        torch.testing.assert_close(log_z[b], scores.logsumexp(0))
        torch.testing.assert_close(ll[b], scores[gold][0] - scores.logsumexp(0))
        assert best.tags[b, :L].tolist() == ys[scores.argmax()].tolist()
        assert (best.tags[b, L:] == -1).all()
        torch.testing.assert_close(best.scores[b], scores.max())
    torch.testing.assert_close(best.scores, crf.score(emissions, best.tags, mask))


@pytest.mark.parametrize("K", [3, 4])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 5])
def test_log_partition_likelihood_and_viterbi_equal_brute_force(K, T):
    check_against_brute_force(random_crf(K, seed=T), [T, max(1, T - 1), 1, T, max(1, T - 2)])


@settings(max_examples=50, deadline=None)
@given(
    K=st.integers(1, 4),
    lengths=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_property_brute_force(K, lengths, seed):
    check_against_brute_force(random_crf(K, seed), lengths, seed)


def test_padding_never_changes_results():
    crf, lengths = random_crf(4), [6, 3, 1, 5]
    emissions, tags, mask = padded_batch(4, lengths, pad_value=float("nan"))
    emissions[1, 3:] = 1e6  # whatever the padding holds
    emissions.requires_grad_()
    ll = crf.log_likelihood(emissions, tags, mask)
    best = crf.decode(emissions, mask)
    for b, L in enumerate(lengths):
        alone = emissions[b : b + 1, :L]
        torch.testing.assert_close(ll[b : b + 1], crf.log_likelihood(alone, tags[b : b + 1, :L]))
        one = crf.decode(alone)
        assert best.tags[b, :L].tolist() == one.tags[0].tolist()
        torch.testing.assert_close(best.scores[b : b + 1], one.scores)
    ll.sum().backward()
    assert torch.isfinite(emissions.grad).all() and (emissions.grad[~mask] == 0).all()
    by_lengths = crf.log_likelihood(emissions, tags, lengths=torch.tensor(lengths))
    by_int_mask = crf.log_likelihood(emissions, tags, mask.long())
    torch.testing.assert_close(by_lengths, ll)
    torch.testing.assert_close(by_int_mask, ll)
    assert torch.equal(crf.decode(emissions, lengths=lengths, pad=0).tags, best.tags.clamp(min=0))


def test_decode_in_blocks_sorted_by_length_equals_one_block(monkeypatch):
    crf, lengths = random_crf(3, seed=2), [2, 7, 1, 5, 7, 3, 4, 6, 1]
    emissions, _, mask = padded_batch(3, lengths, seed=6, pad_value=float("nan"))
    whole = crf.decode(emissions, mask)
    monkeypatch.setattr(crf_module, "_BLOCK_FLOATS", 2 * 3 * 3)  # blocks of 2 sentences
    blocks = crf.decode(emissions, mask)
    assert torch.equal(blocks.tags, whole.tags)
    torch.testing.assert_close(blocks.scores, whole.scores)


def test_an_empty_batch_gives_empty_results():
    crf, emissions = CRF(3), torch.zeros(0, 4, 3)
    assert crf.decode(emissions).tags.shape == (0, 4) and crf.decode(emissions).scores.shape == (0,)
    assert crf.log_likelihood(emissions, torch.zeros(0, 4, dtype=torch.long)).shape == (0,)


class LogLikelihood(nn.Module):
    def __init__(self, crf: CRF) -> None:
        super().__init__()
        self.crf = crf

    def forward(self, emissions, tags, mask):
        return self.crf.log_likelihood(emissions, tags, mask)


def test_gradcheck_log_likelihood():
    crf, (emissions, tags, mask) = random_crf(3), padded_batch(3, [3, 2])
    wrapper = LogLikelihood(crf)
    emissions.requires_grad_()
    names = ["crf.transitions", "crf.start", "crf.end"]
    params = [p.detach().clone().requires_grad_() for p in (crf.transitions, crf.start, crf.end)]

    def f(emissions, *params):
        return functional_call(wrapper, dict(zip(names, params, strict=True)), (emissions, tags, mask))

    assert gradcheck(f, (emissions, *params), eps=1e-6, atol=1e-6)


def test_decode_never_outputs_a_forbidden_transition():
    allowed = bio_constraints(BIO)
    crf = random_crf(5, constraints=allowed)
    emissions, _, mask = padded_batch(5, [7, 4, 1, 6, 2], seed=3)
    emissions = 30 * emissions
    emissions[:, :, [2, 4]] += 100.0  # I-PER and I-LOC everywhere: start -> I-X and B-PER -> I-LOC are forbidden
    tags = crf.decode(emissions, mask).tags
    free = CRF(5, dtype=torch.float64)
    free.load_state_dict({**crf.state_dict(), "allowed": torch.ones(7, 7, dtype=torch.bool)})
    assert not _all_allowed(free.decode(emissions, mask).tags, mask, allowed)  # the emissions do push for them
    assert _all_allowed(tags, mask, allowed)


def _all_allowed(tags, mask, allowed) -> bool:
    K = allowed.shape[0] - 2
    for row, m in zip(tags, mask, strict=True):
        path = [K, *row[m].tolist(), K + 1]
        if not all(allowed[i, j] for i, j in itertools.pairwise(path)):
            return False
    return True


def test_constrained_crf_equals_brute_force_over_allowed_sequences():
    allowed = bio_constraints(BIO)
    crf = random_crf(5, seed=4, constraints=allowed)
    lengths = [4, 2, 1, 3]
    emissions, _, mask = padded_batch(5, lengths, seed=5)
    log_z, best = crf.log_partition(emissions, mask), crf.decode(emissions, mask)
    for b, L in enumerate(lengths):
        ys, scores = brute_force(crf, emissions[b, :L], L, allowed)
        torch.testing.assert_close(log_z[b], scores.logsumexp(0))
        assert best.tags[b, :L].tolist() == ys[scores.argmax()].tolist()
        torch.testing.assert_close(best.scores[b], scores.max())
        gold = ys[torch.randint(len(ys), ())].unsqueeze(0)  # an allowed sequence
        torch.testing.assert_close(
            crf.log_likelihood(emissions[b : b + 1, :L], gold)[0], scores[(ys == gold).all(1)][0] - scores.logsumexp(0)
        )


def test_constraints_as_pairs_equal_the_matrix():
    allowed = bio_constraints(BIO)
    pairs = allowed.nonzero().tolist()
    pairs = [(i, j) for i, j in pairs if i <= 5 and j != 5]  # the rows and columns that mean something
    assert torch.equal(CRF(5, constraints=pairs).allowed, CRF(5, constraints=allowed).allowed)
    state = CRF(5, constraints=allowed).state_dict()
    restored = CRF(5)
    restored.load_state_dict(state)  # checkpoints carry the constraints
    assert torch.equal(restored.allowed, allowed)


def test_bio_constraints_forbid_exactly_the_right_pairs():
    allowed = bio_constraints(BIO)  # O=0 B-PER=1 I-PER=2 B-LOC=3 I-LOC=4, start=5, end=6
    forbidden = {(0, 2), (3, 2), (4, 2), (5, 2), (0, 4), (1, 4), (2, 4), (5, 4)}  # O, B-/I-other, start -> I-X
    expected = torch.zeros(7, 7, dtype=torch.bool)
    for i, j in itertools.product(range(6), [0, 1, 2, 3, 4, 6]):
        expected[i, j] = (i, j) not in forbidden
    assert torch.equal(allowed, expected)


def test_iobes_constraints():
    allowed = bio_constraints(["O", "B-PER", "I-PER", "E-PER", "S-PER"], scheme="IOBES")  # start=5, end=6
    closed, opened = [0, 3, 4, 5], [1, 2]  # O, E, S, start; B, I
    expected = torch.zeros(7, 7, dtype=torch.bool)
    for i, j in itertools.product(closed, [0, 1, 4, 6]):  # -> O, B, S, end
        expected[i, j] = True
    for i, j in itertools.product(opened, [2, 3]):  # -> I, E
        expected[i, j] = True
    assert torch.equal(allowed, expected)
    assert torch.equal(bio_constraints(["O", "B-X", "I-X", "E-X", "S-X"], scheme="BIOES"), expected)


def _alternating(n: int, T: int, gen: torch.Generator):
    """Tokens "x" and "w": x is tagged X=0, and each run of w's alternates A=1, B=2, A, ... from A.

    Whether a w is A or B depends on the tag before it, which no emission of the token alone can know.
    """
    w = torch.rand(n, T, generator=gen) < 0.7  # (n, T)
    y, prev = torch.empty(n, T, dtype=torch.long), torch.zeros(n, dtype=torch.long)
    for t in range(T):
        prev = y[:, t] = torch.where(w[:, t], torch.where(prev == 1, 2, 1), 0)
    return F.one_hot(w.long(), 2).double(), y, torch.randint(1, T + 1, (n,), generator=gen)


def test_learns_a_rule_that_needs_the_previous_tag():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    linear, crf = nn.Linear(2, 3).double(), CRF(3, dtype=torch.float64)
    opt = torch.optim.Adam([*linear.parameters(), *crf.parameters()], lr=0.1)
    x, y, lengths = _alternating(64, 10, gen)
    for _ in range(60):
        opt.zero_grad()
        (crf(linear(x), y, lengths=lengths) / len(x)).backward()
        opt.step()
    x, y, lengths = _alternating(256, 20, gen)  # longer runs than in training
    mask = torch.arange(20) < lengths.unsqueeze(1)
    with torch.no_grad():
        emissions = linear(x)
    assert (crf.decode(emissions, mask).tags == y)[mask].all()
    assert not (emissions.argmax(2) == y)[mask].all()  # the emissions alone cannot tell A from B


def test_float32_is_stable_on_long_sequences():
    crf = random_crf(5)
    emissions = 10 * torch.randn(2, 1000, 5, dtype=torch.float64)
    exact = crf.log_partition(emissions)
    single = crf.float().log_partition(emissions.float())
    assert torch.isfinite(single).all()
    torch.testing.assert_close(single.double(), exact, rtol=1e-5, atol=0)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda crf: crf.log_partition(torch.zeros(2, 3)),
            "expected emissions of shape (B, T, num_tags=3), got (2, 3)",
        ),
        (lambda crf: crf.decode(torch.zeros(2, 4, 5)), "expected emissions of shape (B, T, num_tags=3), got (2, 4, 5)"),
        (
            lambda crf: crf(torch.zeros(2, 4, 3), torch.zeros(2, 3, dtype=torch.long)),
            "expected integer tags of shape (B, T) = (2, 4) like emissions, got (2, 3)",
        ),
        (
            lambda crf: crf(torch.zeros(2, 4, 3), torch.full((2, 4), 3)),
            "expected tags in 0..2 at real positions, got 3 at [0, 0]",
        ),
        (
            lambda crf: crf.decode(torch.zeros(2, 4, 3), torch.tensor([[1, 1, 1, 1], [1, 0, 1, 1]]).bool()),
            "expected each mask row to be Trues then Falses, row 1 is [1, 0, 1, 1]",
        ),
        (
            lambda crf: crf.decode(torch.zeros(2, 4, 3), torch.ones(2, 5, dtype=torch.bool)),
            "expected a bool mask of shape (B, T) = (2, 4) like emissions, got (2, 5)",
        ),
        (
            lambda crf: crf.decode(torch.zeros(3, 4, 3), lengths=[4, 0, 2]),
            "at least one step per sequence: sequence 1 of emissions (B, T) = (3, 4) is empty",
        ),
        (lambda crf: crf.decode(torch.zeros(2, 0, 3)), "at least one step per sequence"),
        (lambda crf: crf.decode(torch.zeros(2, 4, 3), lengths=[4, 5]), "expected lengths <= T = 4"),
        (lambda crf: crf.decode(torch.zeros(2, 4, 3), lengths=[4]), "expected integer lengths of shape (B,) = (2,)"),
        (lambda crf: crf.decode(torch.zeros(1, 4, 3), torch.ones(1, 4), lengths=[4]), "mask or lengths, not both"),
    ],
)
def test_errors_name_expected_and_received(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(CRF(3))


def test_constraint_errors():
    with pytest.raises(ValueError, match=re.escape("shape (K+2, K+2) = (5, 5), got (3, 3)")):
        CRF(3, constraints=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=re.escape("CRF constraint (5, 0): from must be in 0..3 (3 = start)")):
        CRF(3, constraints=[(0, 1), (5, 0)])
    with pytest.raises(ValueError, match=re.escape("tag 'B_PER' is neither 'O' nor <prefix>-<type>")):
        bio_constraints(["O", "B_PER"])
    with pytest.raises(ValueError, match=re.escape("tag 'E-PER' is neither")):
        bio_constraints(["O", "E-PER"])  # not a BIO prefix
    with pytest.raises(ValueError, match="unknown scheme 'BIEO'"):
        bio_constraints(["O"], scheme="BIEO")


def reference_log_partition(crf: CRF, emissions, mask=None):
    """log Z by the forward algorithm with a logsumexp over the broadcast (B, K, K) sums at every step."""
    mask = crf._check(emissions, None, mask, None)
    A, start, end = crf._potentials(crf_module.FORBIDDEN)
    alpha = start + emissions[:, 0]
    for t in range(1, emissions.shape[1]):
        step = crf_module._forward_step_reference(alpha, A) + emissions[:, t]
        alpha = torch.where(mask[:, t, None], step, alpha)
    return torch.logsumexp(alpha + end, dim=1)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_matmul_forward_equals_logsumexp_forward(dtype, tol, constrained, seed):
    K = len(BIO) if constrained else 7
    crf = random_crf(K, seed, bio_constraints(BIO) if constrained else None).to(dtype)
    emissions, _, mask = padded_batch(K, [9, 4, 1, 9, 6, 2], seed, pad_value=float("nan"))
    emissions = (3 * emissions).to(dtype).requires_grad_()
    fast, slow = crf.log_partition(emissions, mask), reference_log_partition(crf, emissions, mask)
    torch.testing.assert_close(fast, slow, rtol=0, atol=tol)
    grads = torch.autograd.grad(fast.sum(), [emissions, *crf.parameters()])
    expected = torch.autograd.grad(slow.sum(), [emissions, *crf.parameters()])
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=tol)


def _extreme_case(dtype):
    """BIO emissions spread over 1e3 nats, and a sentence where I-PER's only predecessor B-PER is 1e3 below O."""
    gen = torch.Generator().manual_seed(7)
    emissions = 1e3 * torch.rand(4, 12, len(BIO), generator=gen, dtype=torch.float64)
    emissions[0] = 0
    emissions[0, 0, 1] = -1e3  # B-PER first: its sum at I-PER underflows, a clamp alone would give it ~1e3 - 87
    emissions[0, 1:, 2] = 1e3  # I-PER after that: the true best path is B-PER I-PER ... at 1e3 * 10
    lengths = torch.tensor([12, 7, 1, 10])
    return emissions.to(dtype).requires_grad_(), torch.arange(12) < lengths.unsqueeze(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_emissions_give_exact_log_z_and_finite_gradients(dtype):
    crf = random_crf(len(BIO), seed=3, constraints=bio_constraints(BIO)).to(dtype)
    emissions, mask = _extreme_case(dtype)
    log_z = crf.log_partition(emissions, mask)
    exact = reference_log_partition(copy.deepcopy(crf).double(), emissions.detach().double(), mask)
    torch.testing.assert_close(log_z.double(), exact, rtol=1e-6 if dtype == torch.float32 else 1e-12, atol=0)
    grads = torch.autograd.grad(log_z.sum(), [emissions, *crf.parameters()])
    assert all(torch.isfinite(g).all() for g in grads)
    assert (grads[0][~mask] == 0).all()


@pytest.mark.parametrize("constrained", [False, True])
def test_marginals_equal_brute_force(constrained):
    """p(y_t = k | x) summed over every allowed tag sequence, and 0 in padding; under no_grad as predict runs it."""
    constraints = bio_constraints(BIO) if constrained else None
    crf = random_crf(len(BIO), seed=3, constraints=constraints)
    lengths = [4, 1, 3]
    emissions, _, mask = padded_batch(len(BIO), lengths, seed=4)
    with torch.no_grad():
        marginals = crf.marginals(emissions, mask)
    assert not marginals.requires_grad
    for b, L in enumerate(lengths):
        ys, scores = brute_force(crf, emissions[b, :L], L, crf.allowed if constrained else None)
        p = (scores - scores.logsumexp(0)).exp()  # (N,)
        expected = torch.stack([torch.zeros(len(BIO), dtype=p.dtype).index_add(0, ys[:, t], p) for t in range(L)])
        torch.testing.assert_close(marginals[b, :L], expected)
        assert (marginals[b, L:] == 0).all()


def test_marginals_of_near_certain_tags_stay_probabilities():
    """Peaked emissions (a trained tagger's) round a certain tag's marginal past 1 in float32: it is kept in [0, 1]."""
    torch.manual_seed(0)
    emissions = torch.randn(64, 40, 5) * 30
    marginals = CRF(5).marginals(emissions, torch.ones(64, 40, dtype=torch.bool))
    assert marginals.min() >= 0 and marginals.max() <= 1 and (marginals == 1).sum() > 100  # (unclamped: 1.00005)
    torch.testing.assert_close(marginals.sum(-1), torch.ones(64, 40), atol=1e-4, rtol=0)
