"""SCRN: equations by hand, gradients, the layer, bad input."""

import pytest
import torch

import rnnkit


def test_step_matches_the_equations_by_hand():
    torch.manual_seed(0)
    cell = rnnkit.SCRNCell(3, 4, context_size=2, alpha=0.9).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    h0, s0 = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    y, state = cell(x, rnnkit.SCRNState(h0, s0))
    B, A = cell.weight_ih[:2], cell.weight_ih[2:]
    s = 0.1 * x @ B.T + 0.9 * s0
    h = torch.sigmoid(s @ cell.weight_sh.T + x @ A.T + h0 @ cell.weight_hh.T + cell.bias)
    torch.testing.assert_close(state.s, s)
    torch.testing.assert_close(state.h, h)
    torch.testing.assert_close(y, torch.cat([h, s], dim=-1))


def test_alpha_one_freezes_the_context():
    cell = rnnkit.SCRNCell(3, 4, context_size=2, alpha=1.0)
    s0 = torch.randn(2, 2)
    _, state = cell(torch.randn(2, 3), rnnkit.SCRNState(torch.zeros(2, 4), s0))
    assert torch.equal(state.s, s0)


def test_gradcheck(gradcheck_cell):
    gradcheck_cell(rnnkit.SCRNCell(3, 4, context_size=2, dtype=torch.float64))


def test_layer_bidirectional_with_lengths_matches_hand_stepping():
    torch.manual_seed(0)
    layer = rnnkit.SCRN(3, 4, context_size=2, bidirectional=True)
    x, lengths = torch.randn(5, 2, 3), torch.tensor([5, 3])
    out, state = layer(x, lengths=lengths)
    assert out.shape == (5, 2, 2 * 6)
    fwd = layer.bound_cells()[0]
    st = fwd.initial_state(1)
    for t in range(3):  # the second sequence, forward direction, its 3 real steps
        y, st = fwd(x[t, 1:2], st)
        torch.testing.assert_close(out[t, 1, :6], y[0])
    torch.testing.assert_close(state.s[0, 1], st.s[0])
    assert torch.equal(out[3:, 1], torch.zeros(2, 12))


@pytest.mark.parametrize("alpha", [-0.1, 1.5, "0.5", True])
def test_alpha_outside_unit_interval_is_an_error(alpha):
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        rnnkit.SCRNCell(3, 4, alpha=alpha)
