"""Pooling over recurrent outputs: each kind worked by hand on a tiny tensor; padding never counts."""

import math

import pytest
import torch

from rnnkit import Recurrent
from rnnkit.tasks.pooling import AttentionPooling, LabelAttention, Pooling, last_pool, max_pool, mean_pool, valid_mask

NAN = float("nan")


def outputs():
    """(B=2, T=3, H=2): the second sequence has 2 valid steps; its padded step holds junk (never read)."""
    h = torch.tensor(
        [
            [[1.0, -1.0], [2.0, -5.0], [3.0, 0.0]],
            [[4.0, 2.0], [-6.0, 8.0], [100.0, 100.0]],
        ]
    )
    return h, torch.tensor([3, 2])


def test_valid_mask():
    assert valid_mask(torch.tensor([2, 0, 3]), 3).tolist() == [[True, True, False], [False] * 3, [True] * 3]


def test_last_takes_each_sequences_own_last_step():
    h, lengths = outputs()
    assert last_pool(h, lengths).tolist() == [[3.0, 0.0], [-6.0, 8.0]]


def test_last_bidirectional_takes_forward_at_the_end_and_backward_at_the_start():
    h, lengths = outputs()  # H=2: feature 0 is the forward direction, feature 1 the backward one
    assert last_pool(h, lengths, bidirectional=True).tolist() == [[3.0, -1.0], [-6.0, 2.0]]


def test_last_bidirectional_is_both_directions_final_states_of_a_real_layer():
    torch.manual_seed(0)
    layer = Recurrent("gru", 3, 4, bidirectional=True, batch_first=True)
    x, lengths = torch.randn(2, 5, 3), torch.tensor([5, 2])
    out, h_n = layer(x, lengths=lengths)  # h_n: (D=2, B, 4), each direction's state after its whole sequence
    pooled = last_pool(out, lengths, bidirectional=True)
    torch.testing.assert_close(pooled, torch.cat([h_n.h[0], h_n.h[1]], dim=-1))


def test_mean_and_max_leave_padding_out():
    h, lengths = outputs()
    assert mean_pool(h, lengths).tolist() == [[2.0, -2.0], [-1.0, 5.0]]
    assert max_pool(h, lengths).tolist() == [[3.0, 0.0], [4.0, 8.0]]


def test_attention_by_hand():
    h, lengths = outputs()
    pool = AttentionPooling(2, 1)
    with torch.no_grad():  # s_t = v tanh(w . h_t + c) with w = (1, 0), c = 0, v = 1: s_t = tanh(h_t[0])
        pool.proj.weight.copy_(torch.tensor([[1.0, 0.0]]))
        pool.proj.bias.zero_()
        pool.score.weight.fill_(1.0)
        pooled, weights = pool(h, lengths)
    s = torch.tanh(torch.tensor([4.0, -6.0]))
    alpha = torch.softmax(s, 0)
    torch.testing.assert_close(weights[1], torch.cat([alpha, torch.zeros(1)]))
    torch.testing.assert_close(pooled[1], alpha[0] * h[1, 0] + alpha[1] * h[1, 1])


def test_attention_weights_sum_to_one_over_valid_steps_and_are_zero_at_padding():
    torch.manual_seed(0)
    h = torch.randn(3, 6, 5)
    lengths = torch.tensor([6, 1, 4])
    with torch.no_grad():
        _, weights = AttentionPooling(5, 7)(h, lengths)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    assert weights[1].tolist() == [1.0, 0, 0, 0, 0, 0]
    assert (weights[2, 4:] == 0).all() and (weights[2, :4] > 0).all()


@pytest.mark.parametrize("kind", ["last", "mean", "max", "attention"])
def test_what_sits_in_the_padding_never_changes_the_result(kind):
    torch.manual_seed(0)
    pool = Pooling(kind, 4, bidirectional=kind == "last")
    h, lengths = torch.randn(2, 5, 4), torch.tensor([5, 3])
    junk = h.clone()
    junk[1, 3:] = NAN  # NaN at padding: even a multiplication by 0 would leak it
    with torch.no_grad():
        a, _ = pool(h, lengths)
        b, _ = pool(junk, lengths)
        alone, _ = pool(h[1:, :3], lengths[1:])
    assert not b.isnan().any()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(alone[0], a[1], rtol=0, atol=1e-6)


def test_bad_lengths_are_one_line_errors():
    h = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r"every length must lie in \[1, 3\]"):
        mean_pool(h, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="lengths of shape"):
        max_pool(h, torch.tensor([3]))
    with pytest.raises(ValueError, match="unknown pooling 'sum'"):
        Pooling("sum", 4)


def test_gradients_reach_only_valid_steps():
    h = torch.randn(1, 4, 3, requires_grad=True)
    pooled, _ = Pooling("attention", 3)(h, torch.tensor([2]))
    pooled.sum().backward()
    assert h.grad[0, 2:].abs().sum() == 0 and h.grad[0, :2].abs().sum() > 0
    assert math.isfinite(float(h.grad.sum()))


def test_label_attention_is_one_attention_pooling_per_label_scored_by_its_own_weights():
    torch.manual_seed(0)
    H, L = 6, 3
    module = LabelAttention(H, L, attention_size=5).double()
    h, lengths = torch.randn(2, 4, H, dtype=torch.float64), torch.tensor([4, 2])
    logits, weights = module(h, lengths)
    for label in range(L):  # AttentionPooling with the same W, c and this label's query as v
        pool = AttentionPooling(H, 5).double()
        with torch.no_grad():
            pool.proj.load_state_dict(module.proj.state_dict())
            pool.score.weight.copy_(module.queries.weight[label : label + 1])
        pooled, w = pool(h, lengths)
        torch.testing.assert_close(weights[:, label], w, rtol=0, atol=1e-12)
        want = pooled @ module.weight[label] + module.bias[label]
        torch.testing.assert_close(logits[:, label], want, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda x: module(x, lengths)[0], h.clone().requires_grad_())
