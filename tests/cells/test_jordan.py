"""JordanCell: the previous output is the state."""

import pytest
import torch

import rnnkit


@pytest.mark.parametrize("output_activation", ["tanh", "identity", "softmax"])
def test_jordan_gradcheck(gradcheck_cell, output_activation):
    gradcheck_cell(rnnkit.JordanCell(3, 4, output_size=2, output_activation=output_activation, dtype=torch.float64))


def test_jordan_step_by_hand():
    torch.manual_seed(0)
    cell = rnnkit.JordanCell(3, 4, output_size=2)
    x, y_prev = torch.randn(2, 3), torch.randn(2, 2)
    h = torch.tanh(x @ cell.weight_ih.T + cell.bias_ih + y_prev @ cell.weight_yh.T)
    want = torch.tanh(h @ cell.weight_hy.T + cell.bias_hy)
    y, state = cell(x, rnnkit.JordanState(y_prev))
    torch.testing.assert_close(y, want)
    assert isinstance(state, rnnkit.JordanState)
    assert torch.equal(state.y, y)  # the state fed back is the output itself


def test_jordan_literal_numbers():
    cell = rnnkit.JordanCell(1, 1, output_size=1, nonlinearity="identity", output_activation="identity")
    with torch.no_grad():
        cell.weight_ih.fill_(2.0)
        cell.bias_ih.fill_(1.0)
        cell.weight_yh.fill_(0.5)
        cell.weight_hy.fill_(3.0)
        cell.bias_hy.fill_(-1.0)
    # h = 2x + 1 + 0.5 y_prev; y = 3h - 1
    y1, s = cell(torch.tensor([[1.0]]))  # h = 3, y = 8
    y2, s = cell(torch.tensor([[0.0]]), s)  # h = 1 + 4 = 5, y = 14
    assert y1.item() == 8.0 and y2.item() == 14.0 and s.y.item() == 14.0


def test_jordan_sizes_and_parameters():
    cell = rnnkit.JordanCell(3, 5, output_size=2)
    assert cell.output_size == 2 and cell.hidden_size == 5
    assert {n: tuple(p.shape) for n, p in cell.named_parameters()} == {
        "weight_ih": (5, 3),
        "weight_yh": (5, 2),
        "weight_hy": (2, 5),
        "bias_ih": (5,),
        "bias_hy": (2,),
    }
    assert cell.initial_state(4).y.shape == (4, 2)
    assert cell.recurrent_weights == ("weight_yh",)
