"""rnnkit.state: operations on recurrent state values."""

from typing import NamedTuple

import pytest
import torch

import rnnkit
from rnnkit import state as S


def _lstm_state(B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return rnnkit.LSTMState(torch.randn(B, 4, generator=g), torch.randn(B, 5, generator=g))


def test_map_state_keeps_the_type_and_combines_fields():
    a, b = _lstm_state(seed=0), _lstm_state(seed=1)
    s = S.map_state(lambda x, y: x + 2 * y, a, b)
    assert isinstance(s, rnnkit.LSTMState)
    assert torch.equal(s.h, a.h + 2 * b.h) and torch.equal(s.c, a.c + 2 * b.c)
    plain = S.map_state(torch.neg, (a.h, a.c))
    assert type(plain) is tuple and torch.equal(plain[1], -a.c)
    assert type(S.map_state(torch.neg, [a.h])) is list


def test_detach_cuts_the_graph():
    w = torch.ones((), requires_grad=True)
    s = S.map_state(lambda t: t * w, _lstm_state())
    d = S.detach(s)
    assert isinstance(d, rnnkit.LSTMState)
    assert not d.h.requires_grad and not d.c.requires_grad and d.h.grad_fn is None
    assert torch.equal(d.h, s.h)
    assert s.h.requires_grad


def test_where_picks_per_batch_entry():
    new, old = _lstm_state(seed=0), _lstm_state(seed=1)
    mask = torch.tensor([True, False, True])
    s = S.where(mask, new, old)
    assert isinstance(s, rnnkit.LSTMState)
    assert torch.equal(s.h[0], new.h[0]) and torch.equal(s.h[1], old.h[1]) and torch.equal(s.h[2], new.h[2])
    assert torch.equal(s.c[1], old.c[1]) and torch.equal(s.c[2], new.c[2])


def test_where_on_3d_fields():
    new = (torch.ones(2, 3, 4),)
    old = (torch.zeros(2, 3, 4),)
    (s,) = S.where(torch.tensor([False, True]), new, old)
    assert s[0].sum().item() == 0 and s[1].sum().item() == 12


def test_select_reorders_and_picks():
    s = _lstm_state()
    r = S.select(s, torch.tensor([2, 0]))
    assert torch.equal(r.h, s.h[[2, 0]]) and torch.equal(r.c, s.c[[2, 0]])
    stacked = rnnkit.LSTMState(torch.randn(2, 3, 4), torch.randn(2, 3, 5))  # (L*D, B, ...)
    r = S.select(stacked, torch.tensor([1, 1, 0]), dim=1)
    assert torch.equal(r.c, stacked.c[:, [1, 1, 0]])


def test_stack_unbind_round_trip():
    states = [_lstm_state(seed=i) for i in range(4)]
    stacked = S.stack(states)
    assert isinstance(stacked, rnnkit.LSTMState)
    assert stacked.h.shape == (4, 3, 4) and stacked.c.shape == (4, 3, 5)
    assert torch.equal(stacked.c[2], states[2].c)
    back = S.unbind(stacked)
    assert len(back) == 4 and all(isinstance(b, rnnkit.LSTMState) for b in back)
    for a, b in zip(back, states, strict=True):
        assert torch.equal(a.h, b.h) and torch.equal(a.c, b.c)
    again = S.stack(back, dim=1)
    assert again.h.shape == (3, 4, 4) and torch.equal(again.h[:, 1], states[1].h)
    assert [torch.equal(x.c, y.c) for x, y in zip(S.unbind(again, dim=1), states, strict=True)] == [True] * 4


def test_stack_unbind_plain_tuples():
    parts = [(torch.full((2,), float(i)),) for i in range(3)]
    stacked = S.stack(parts)
    assert type(stacked) is tuple and stacked[0].tolist() == [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    back = S.unbind(stacked)
    assert [type(b) for b in back] == [tuple] * 3
    assert back[2][0].tolist() == [2.0, 2.0]


def test_layer_state_splits_by_layer_and_direction():
    layer = rnnkit.Recurrent("lstm", 3, 4, num_layers=2, bidirectional=True)
    _, final = layer(torch.randn(5, 2, 3))
    per_cell = S.unbind(final)
    assert len(per_cell) == 4
    assert torch.equal(per_cell[3].c, final.c[3])


class Pair(NamedTuple):
    a: torch.Tensor
    b: torch.Tensor


def test_tree_helpers_on_nested_states():
    tree = (Pair(torch.tensor(1.0), torch.tensor(2.0)), [torch.tensor(3.0)], None, torch.tensor(4.0))
    doubled = S.tree_map(lambda t: 2 * t, tree)
    assert isinstance(doubled[0], Pair) and isinstance(doubled[1], list) and doubled[2] is None
    assert [t.item() for t in S.tree_leaves(doubled)] == [2.0, 4.0, 6.0, 8.0]
    replaced = S.tree_replace(tree, [torch.tensor(float(-i)) for i in range(4)])
    assert replaced[0].b.item() == -1.0 and replaced[3].item() == -3.0
    assert isinstance(replaced[0], Pair)
    with pytest.raises(TypeError, match="not str"):
        S.tree_map(torch.neg, ("h",))
