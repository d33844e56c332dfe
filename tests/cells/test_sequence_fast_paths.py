"""Cells that override ``sequence`` (SCRN, Clockwork, minGRU, minLSTM) against the reference loop
``Cell.sequence``, which steps one at a time: outputs, final states, every step's state and gradients."""

import pytest
import torch

import rnnkit
from rnnkit import state as S
from rnnkit.cells.base import Cell

CASES = {
    "scrn": lambda: rnnkit.SCRNCell(3, 6, context_size=4, alpha=0.9, dtype=torch.float64),
    "clockwork": lambda: rnnkit.ClockworkCell(3, 6, periods=[1, 2, 4], dtype=torch.float64),
    "clockwork-non-prefix": lambda: rnnkit.ClockworkCell(3, 6, periods=[2, 3], dtype=torch.float64),
    "mingru": lambda: rnnkit.MinGRUCell(3, 6, dtype=torch.float64),
    "minlstm": lambda: rnnkit.MinLSTMCell(3, 6, dtype=torch.float64),
}


def random_state(cell, B):
    state = cell.initial_state(B)
    state = S.tree_map(lambda x: torch.randn_like(x) if x.is_floating_point() else x, state)
    if isinstance(cell, rnnkit.ClockworkCell):
        state = state._replace(t=torch.tensor([3, 3, 3]))  # all at the same step, not at 0
    return state


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("masked", [False, True])
def test_fast_sequence_equals_the_reference_loop(name, masked):
    torch.manual_seed(0)
    cell = CASES[name]()
    xs = torch.randn(9, 3, 3, dtype=torch.float64)
    state = random_state(cell, 3)
    mask = (torch.arange(9).unsqueeze(1) < torch.tensor([9, 5, 1])) if masked else None

    def run(sequence):
        cell.zero_grad()
        out, final, steps = sequence(cell.project_inputs(xs), state, mask, True)
        valid = out if mask is None else out * mask.unsqueeze(-1)
        loss = valid.pow(2).sum() + sum(x.sum() for x in S.tree_leaves(final) if x.is_floating_point())
        loss.backward()
        return valid, final, steps, [p.grad.clone() for p in cell.parameters()]

    fast = run(cell.sequence)
    ref = run(lambda *args: Cell.sequence(cell, *args))
    torch.testing.assert_close(fast[0], ref[0])
    for a, b in zip(S.tree_leaves(fast[1]), S.tree_leaves(ref[1]), strict=True):
        torch.testing.assert_close(a, b)
    for step_fast, step_ref in zip(fast[2], ref[2], strict=True):
        for a, b in zip(S.tree_leaves(step_fast), S.tree_leaves(step_ref), strict=True):
            torch.testing.assert_close(a, b)
    for a, b in zip(fast[3], ref[3], strict=True):
        torch.testing.assert_close(a, b)


def test_clockwork_sequences_at_different_steps_take_the_general_path():
    torch.manual_seed(0)
    cell = CASES["clockwork"]()
    xs = torch.randn(6, 2, 3, dtype=torch.float64)
    state = rnnkit.ClockworkState(torch.randn(2, 6, dtype=torch.float64), torch.tensor([0, 1]))
    out, final, _ = cell.sequence(cell.project_inputs(xs), state)
    ref_out, ref_final, _ = Cell.sequence(cell, cell.project_inputs(xs), state)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(final.h, ref_final.h)
    assert final.t.tolist() == [6, 7]
