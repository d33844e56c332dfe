"""Clockwork RNN: modules tick on their periods, slow modules do not hear fast ones, gradients, bad input."""

import pytest
import torch
from torch.autograd import gradcheck

import rnnkit


def test_modules_update_only_on_their_period():
    torch.manual_seed(0)
    layer = rnnkit.Clockwork(2, 6, periods=[1, 2, 3])  # modules of 2 units with periods 1, 2, 3
    out, state = layer(torch.randn(7, 1, 2))
    h = out[:, 0]  # (T, 6)
    for t in range(1, 7):
        changed = (h[t] != h[t - 1]).view(3, 2).all(dim=1).tolist()
        assert changed == [True, t % 2 == 0, t % 3 == 0], t
    assert state.t.tolist() == [[7]]


def test_recurrent_mask_is_block_upper_triangular_and_enforced():
    cell = rnnkit.ClockworkCell(2, 6, periods=[1, 2, 4])
    expected = torch.tensor([[1, 1, 1], [0, 1, 1], [0, 0, 1]], dtype=torch.float32).repeat_interleave(2, 0)
    assert torch.equal(cell.recurrent_mask, expected.repeat_interleave(2, 1))
    # a slow module's value at t=4 does not depend on the fast module's state
    h0 = torch.zeros(1, 6, requires_grad=True)
    x = torch.randn(1, 2)
    y, _ = cell(x, rnnkit.ClockworkState(h0, torch.tensor([4])))
    y[0, 4:].sum().backward()
    assert torch.equal(h0.grad[0, :4], torch.zeros(4)) and h0.grad[0, 4:].abs().sum() > 0


def test_step_counter_is_held_at_padding_and_final_state_is_at_the_true_end():
    layer = rnnkit.Clockwork(2, 4, periods=[1, 2])
    x = torch.randn(5, 2, 2)
    _, state = layer(x, lengths=torch.tensor([5, 2]))
    assert state.t[0].tolist() == [5, 2]
    _, alone_state = layer(x[:2, 1:2])
    torch.testing.assert_close(state.h[0, 1], alone_state.h[0, 0])


def test_gradcheck_float64():
    torch.manual_seed(0)
    cell = rnnkit.ClockworkCell(2, 4, periods=[1, 2], dtype=torch.float64)
    xs = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)

    def f(xs, h0, w_ih, w_hh, b):
        xp = torch.nn.functional.linear(xs, w_ih, b)
        state, outs = rnnkit.ClockworkState(h0, torch.zeros(2, dtype=torch.long)), []
        for x in xp:
            candidate = cell.g(x + torch.nn.functional.linear(state.h, w_hh * cell.recurrent_mask))
            active = state.t.unsqueeze(1) % cell.unit_period == 0
            state = rnnkit.ClockworkState(torch.where(active, candidate, state.h), state.t + 1)
            outs.append(state.h)
        return torch.stack(outs)

    params = [p.detach().clone().requires_grad_() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih)]
    ref = f(xs, h0, *params)
    layer_out, _ = rnnkit.Recurrent(cell)(
        xs, rnnkit.ClockworkState(h0.unsqueeze(0), torch.zeros(1, 2, dtype=torch.long))
    )
    torch.testing.assert_close(layer_out, ref)
    assert gradcheck(f, (xs, h0, *params))


@pytest.mark.parametrize("periods", [[0, 2], [1, -2], [1.5, 2], [True, 2], []])
def test_periods_must_be_positive_integers(periods):
    with pytest.raises(ValueError, match="periods must be positive integers"):
        rnnkit.ClockworkCell(2, 4, periods=periods)


def test_hidden_size_must_split_into_modules():
    with pytest.raises(ValueError, match="does not split into 3 equal modules"):
        rnnkit.ClockworkCell(2, 4, periods=[1, 2, 4])


@pytest.mark.parametrize("periods", [[1, 2, 4, 8], [2, 3]])
@pytest.mark.parametrize("t0", [[0, 0], [5, 5], [3, 6]])
def test_for_steps_equals_the_step_it_prepares(periods, t0):
    """for_steps(): W_H masked once and only the ticking modules computed; the same numbers as step at any
    starting steps, equal or not, and periods that are not multiples of each other."""
    torch.manual_seed(0)
    cell = rnnkit.ClockworkCell(3, 4 * len(periods), periods=periods, dtype=torch.float64)
    fast = cell.for_steps()
    assert fast is not cell and fast._premasked and not cell._premasked
    state = fast_state = rnnkit.ClockworkState(torch.randn(2, cell.hidden_size, dtype=torch.float64), torch.tensor(t0))
    for _ in range(9):
        x = cell.project_inputs(torch.randn(2, 3, dtype=torch.float64))
        y, state = cell.step(x, state)
        y_fast, fast_state = fast.step(x, fast_state)
        torch.testing.assert_close(y_fast, y, rtol=0, atol=1e-14)
        assert torch.equal(fast_state.t, state.t)
    xs = cell.project_inputs(torch.randn(6, 2, 3, dtype=torch.float64))
    out, final, _ = fast.sequence(xs, fast_state)
    ref, ref_final, _ = cell.sequence(xs, state)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-14)
    assert torch.equal(final.t, ref_final.t)
