"""The cell protocol's defaults: forward from a zero state, sequence with masks, size checks."""

from typing import NamedTuple

import pytest
import torch
from torch import nn

import rnnkit


class CountState(NamedTuple):
    n: torch.Tensor


class CountCell(rnnkit.Cell):
    """Adds its input to a running sum; output = the running sum. No parameters: the protocol's minimum."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.input_size = self.hidden_size = input_size

    def initial_state(self, batch_size, *, device=None, dtype=None):
        return CountState(torch.zeros(batch_size, self.input_size, device=device, dtype=dtype))

    def step(self, x_proj, state):
        n = state.n + x_proj
        return n, CountState(n)


def test_default_project_inputs_is_identity_and_output_size_is_hidden_size():
    cell = CountCell(2)
    x = torch.randn(3, 2)
    assert cell.project_inputs(x) is x
    assert cell.output_size == 2


def test_sequence_with_mask_carries_state_at_padding():
    cell = CountCell(1)
    xs = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]).unsqueeze(-1)  # (T=3, B=2, 1)
    mask = torch.tensor([[True, True], [True, False], [True, False]])
    ys, final, steps = cell.sequence(xs, cell.initial_state(2), mask, keep_steps=True)
    assert final.n.flatten().tolist() == [6.0, 10.0]
    assert [s.n.flatten().tolist() for s in steps] == [[1.0, 10.0], [3.0, 10.0], [6.0, 10.0]]
    assert ys[:, 0].flatten().tolist() == [1.0, 3.0, 6.0]


def test_sequence_without_steps_returns_none():
    cell = CountCell(1)
    ys, final, steps = cell.sequence(torch.ones(4, 2, 1), cell.initial_state(2))
    assert steps is None
    assert final.n.flatten().tolist() == [4.0, 4.0]
    assert ys[:, 1].flatten().tolist() == [1.0, 2.0, 3.0, 4.0]


def test_zeros_follow_parameters_dtype():
    cell = rnnkit.LSTMCell(2, 3, dtype=torch.float64)
    state = cell.initial_state(2)
    assert state.h.dtype == torch.float64 and state.c.dtype == torch.float64
    assert cell.initial_state(2, dtype=torch.float32).h.dtype == torch.float32


@pytest.mark.parametrize("cls", [rnnkit.ElmanCell, rnnkit.GRUCell, rnnkit.LSTMCell])
@pytest.mark.parametrize(
    ("sizes", "error", "message"),
    [
        ((0, 3), ValueError, "input_size must be greater than zero, got 0"),
        ((3, -1), ValueError, "hidden_size must be greater than zero, got -1"),
        ((3, 2.0), TypeError, r"hidden_size should be of type int, got: float \(2.0\)"),
        (("3", 2), TypeError, r"input_size should be of type int, got: str \('3'\)"),
    ],
)
def test_bad_sizes(cls, sizes, error, message):
    """torch.nn's wording and class (TypeError for a wrong type); rnnkit's errors are ValueErrors too."""
    with pytest.raises(error, match=f"^{cls.__name__}: {message}$") as caught:
        cls(*sizes)
    assert isinstance(caught.value, ValueError)


def test_jordan_bad_output_size():
    with pytest.raises(ValueError, match="output_size must be greater than zero, got 0"):
        rnnkit.JordanCell(3, 4, output_size=0)


@pytest.mark.parametrize(
    ("proj", "message"),
    [
        (-1, "proj_size should be a positive integer or zero to disable projections, got -1"),
        (4, r"proj_size has to be smaller than hidden_size \(4 >= 4\)"),
        (5, r"proj_size has to be smaller than hidden_size \(5 >= 4\)"),
    ],
)
def test_lstm_bad_proj_size(proj, message):
    with pytest.raises(ValueError, match=f"^LSTMCell: {message}$"):
        rnnkit.LSTMCell(3, 4, proj_size=proj)


def test_registry():
    assert rnnkit.CELLS["lstm"] is rnnkit.LSTMCell
    assert rnnkit.CELLS["gru"] is rnnkit.GRUCell
    assert rnnkit.CELLS["rnn"] is rnnkit.CELLS["elman"] is rnnkit.ElmanCell
    assert rnnkit.CELLS["irnn"] is rnnkit.IRNNCell
    assert rnnkit.CELLS["jordan"] is rnnkit.JordanCell
    assert all(issubclass(c, rnnkit.Cell) and issubclass(c, nn.Module) for c in rnnkit.CELLS.values())
