"""Attention scores against hand computation; masking; precomputed keys; gradients in float64."""

import pytest
import torch

from rnnkit.errors import RnnkitError
from rnnkit.tasks.seq2seq.attention import (
    AdditiveAttention,
    DotAttention,
    GeneralAttention,
    make_attention,
)


def _inputs(B=3, Tq=4, S=5, Hq=6, Hm=6, dtype=torch.float32):
    torch.manual_seed(0)
    query, memory = torch.randn(B, Tq, Hq, dtype=dtype), torch.randn(B, S, Hm, dtype=dtype)
    lengths = torch.tensor([5, 3, 1])[:B]
    mask = torch.arange(S) < lengths.unsqueeze(1)
    return query, memory, mask, lengths


def _reference(score, query, memory, lengths):
    """Attention by loops over sentences, queries and only the real positions."""
    B, Tq, _ = query.shape
    contexts, weights = torch.zeros(B, Tq, memory.shape[-1], dtype=query.dtype), torch.zeros(B, Tq, memory.shape[1])
    for b in range(B):
        n = int(lengths[b])
        for t in range(Tq):
            s = torch.stack([score(query[b, t], memory[b, j]) for j in range(n)])
            a = torch.softmax(s, 0)
            contexts[b, t] = (a.unsqueeze(1) * memory[b, :n]).sum(0)
            weights[b, t, :n] = a.to(weights.dtype)
    return contexts, weights


@pytest.mark.parametrize("scaled", [True, False])
@pytest.mark.parametrize("kind", ["dot", "general", "additive"])
def test_matches_the_equations_by_hand(kind, scaled):
    query, memory, mask, lengths = _inputs()
    att = make_attention(kind, 6, 6, 7, scaled=scaled)
    d = 6**0.5 if scaled else 1.0  # dot and general: scores / sqrt(query size) unless unscaled
    if kind == "dot":
        score = lambda q, m: torch.dot(q, m) / d  # noqa: E731
    elif kind == "general":
        W = att.linear.weight  # (Hq, Hm)
        score = lambda q, m: q @ W @ m / d  # noqa: E731
    else:
        Wa, ba, Ua, v = att.query_proj.weight, att.query_proj.bias, att.memory_proj.weight, att.v.weight[0]
        score = lambda q, m: v @ torch.tanh(Wa @ q + ba + Ua @ m)  # noqa: E731
    with torch.no_grad():
        context, weights = att(query, memory, mask)
        want_context, want_weights = _reference(score, query, memory, lengths)
    torch.testing.assert_close(context, want_context, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, want_weights, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", ["dot", "general", "additive"])
def test_padding_gets_no_weight_and_cannot_change_the_context(kind):
    query, memory, mask, _ = _inputs()
    att = make_attention(kind, 6, 6)
    with torch.no_grad():
        context, weights = att(query, memory, mask)
        junk = memory.masked_fill(~mask.unsqueeze(-1), 1e4)  # anything at padding
        context2, weights2 = att(query, junk, mask)
    assert (weights[~mask.unsqueeze(1).expand_as(weights)] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    torch.testing.assert_close(context, context2)
    torch.testing.assert_close(weights, weights2)


@pytest.mark.parametrize("kind", ["dot", "general", "additive"])
def test_one_step_and_precomputed_keys_equal_the_full_call(kind):
    query, memory, mask, _ = _inputs()
    att = make_attention(kind, 6, 6)
    with torch.no_grad():
        context, weights = att(query, memory, mask)
        keys = att.keys(memory)
        for t in range(query.shape[1]):
            c, w = att(query[:, t], memory, mask, keys=keys)
            assert c.shape == (3, 6) and w.shape == (3, 5)
            torch.testing.assert_close(c, context[:, t])
            torch.testing.assert_close(w, weights[:, t])


@pytest.mark.parametrize("source", [[0, 0, 1, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2], [0, 2, 2, 2], [1]])  # ragged, full, ...
@pytest.mark.parametrize("kind", ["dot", "general", "additive"])
def test_queries_sharing_memories_equal_queries_on_copies(kind, source):
    _, memory, mask, _ = _inputs()
    att = make_attention(kind, 6, 6)
    source = torch.tensor(source)
    q = torch.randn(len(source), 6, generator=torch.Generator().manual_seed(len(source)))
    with torch.no_grad():
        keys = att.keys(memory)
        context, weights = att(q, memory, mask, keys, source=source)
        want_context, want_weights = att(q, memory[source], mask[source], keys[source])
    torch.testing.assert_close(context, want_context)
    torch.testing.assert_close(weights, want_weights)


@pytest.mark.parametrize("kind", ["general", "additive"])
def test_gradcheck_float64(kind):
    query, memory, mask, _ = _inputs(B=2, Tq=2, S=3, Hq=3, Hm=4, dtype=torch.float64)
    att = make_attention(kind, 3, 4).double()
    query.requires_grad_(True)
    memory.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q, m: att(q, m, mask[:2, :3]), (query, memory))


def test_sizes_and_names():
    assert isinstance(make_attention("dot", 4, 4), DotAttention)
    assert isinstance(make_attention("general", 4, 8), GeneralAttention)
    assert isinstance(make_attention("additive", 4, 8), AdditiveAttention)
    assert make_attention("none", 4, 8) is None
    with pytest.raises(RnnkitError, match="equal query and memory sizes, got 4 and 8"):
        make_attention("dot", 4, 8)
    with pytest.raises(RnnkitError, match="unknown attention 'luong'"):
        make_attention("luong", 4, 4)
