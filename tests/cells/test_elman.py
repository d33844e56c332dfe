"""ElmanCell and IRNNCell: the equation, gradients, torch.nn.RNNCell compatibility, the IRNN's init."""

import pytest
import torch
from torch import nn

import rnnkit


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
def test_elman_gradcheck(gradcheck_cell, nonlinearity):
    gradcheck_cell(rnnkit.ElmanCell(3, 4, nonlinearity=nonlinearity, dtype=torch.float64))


def test_irnn_gradcheck(gradcheck_cell):
    cell = rnnkit.IRNNCell(3, 4, dtype=torch.float64)
    with torch.no_grad():  # move away from the IRNN's init so that no pre-activation sits at the relu's kink
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))
    gradcheck_cell(cell)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
def test_elman_step_matches_equation(nonlinearity):
    torch.manual_seed(0)
    cell = rnnkit.ElmanCell(3, 4, nonlinearity=nonlinearity)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    g = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda a: a}[nonlinearity]
    expected = g(x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh)
    y, state = cell(x, rnnkit.ElmanState(h))
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(state.h, expected)
    assert isinstance(state, rnnkit.ElmanState)


def test_elman_default_state_is_zero():
    torch.manual_seed(0)
    cell = rnnkit.ElmanCell(3, 4)
    x = torch.randn(2, 3)
    y0, _ = cell(x)
    y1, _ = cell(x, rnnkit.ElmanState(torch.zeros(2, 4)))
    torch.testing.assert_close(y0, y1)
    torch.testing.assert_close(y0, torch.tanh(x @ cell.weight_ih.T + cell.bias_ih + cell.bias_hh))


def test_elman_without_bias():
    cell = rnnkit.ElmanCell(3, 4, bias=False)
    assert cell.bias_ih is None and cell.bias_hh is None
    assert [n for n, _ in cell.named_parameters()] == ["weight_ih", "weight_hh"]
    y, _ = cell(torch.zeros(2, 3))
    assert torch.equal(y, torch.zeros(2, 4))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_torch_rnncell_state_dict_loads(nonlinearity):
    torch.manual_seed(0)
    ref = nn.RNNCell(3, 4, nonlinearity=nonlinearity)
    cell = rnnkit.ElmanCell(3, 4, nonlinearity=nonlinearity)
    cell.load_state_dict(ref.state_dict())
    x, h = torch.randn(5, 3), torch.randn(5, 4)
    y, state = cell(x, rnnkit.ElmanState(h))
    torch.testing.assert_close(y, ref(x, h), atol=1e-6, rtol=0)
    assert torch.equal(state.h, y)
    # and back
    ref2 = nn.RNNCell(3, 4, nonlinearity=nonlinearity)
    ref2.load_state_dict(cell.state_dict())
    torch.testing.assert_close(ref2(x, h), y, atol=1e-6, rtol=0)


def test_same_init_as_torch_rnncell_under_seed():
    torch.manual_seed(7)
    ref = nn.RNNCell(3, 5)
    torch.manual_seed(7)
    cell = rnnkit.ElmanCell(3, 5)
    for (n1, p1), (n2, p2) in zip(ref.named_parameters(), cell.named_parameters(), strict=True):
        assert n1 == n2
        assert torch.equal(p1, p2)


def test_irnn_init_is_identity_recurrence_zero_bias_and_relu():
    torch.manual_seed(0)
    cell = rnnkit.IRNNCell(3, 4)
    assert cell.nonlinearity == "relu"
    assert torch.equal(cell.weight_hh, torch.eye(4))
    assert torch.equal(cell.bias_ih, torch.zeros(4)) and torch.equal(cell.bias_hh, torch.zeros(4))
    assert cell.weight_ih.abs().max() < 0.01  # N(0, 0.001^2)
    assert cell.weight_ih.abs().max() > 0
    # with zero input weights, h_t = relu(h_{t-1}): a positive state is carried unchanged, negatives cut
    with torch.no_grad():
        cell.weight_ih.zero_()
    h = torch.tensor([[1.5, -2.0, 0.25, 3.0]])
    y, _ = cell(torch.randn(1, 3), rnnkit.ElmanState(h))
    assert torch.equal(y, torch.tensor([[1.5, 0.0, 0.25, 3.0]]))
