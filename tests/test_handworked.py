"""The tutorials' two hand-worked examples, computed by real rnnkit modules."""

import pytest
import torch
from torch import nn

import rnnkit


def _elman_all_ones():
    cell = rnnkit.ElmanCell(2, 2, nonlinearity="identity")
    readout = nn.Linear(2, 2)
    with torch.no_grad():
        for p in [*cell.parameters(), *readout.parameters()]:
            p.fill_(1.0 if p.dim() == 2 else 0.0)
    return cell, readout


def _run_elman(order):
    cell, readout = _elman_all_ones()
    x = torch.tensor([[v, v] for v in order], dtype=torch.float32).unsqueeze(1)  # (T, B=1, 2)
    h, state = rnnkit.Recurrent(cell)(x, rnnkit.ElmanState(torch.zeros(1, 1, 2)))
    return h[:, 0], readout(h)[:, 0], state


def test_elman_two_linear_units_all_weights_one():
    hidden, outputs, state = _run_elman([1, 1, 2])
    # h1 = W[1,1] = [2,2]; h2 = [2,2] + U[2,2] = [6,6]; h3 = [4,4] + U[6,6] = [16,16]; y = V h
    assert hidden.tolist() == [[2.0, 2.0], [6.0, 6.0], [16.0, 16.0]]
    assert outputs.tolist() == [[4.0, 4.0], [12.0, 12.0], [32.0, 32.0]]
    assert state.h.tolist() == [[[16.0, 16.0]]]


def test_elman_order_matters():
    _, outputs, _ = _run_elman([2, 1, 1])
    # h = [4,4], [2,2] + [8,8] = [10,10], [2,2] + [20,20] = [22,22]
    assert outputs.tolist() == [[8.0, 8.0], [20.0, 20.0], [44.0, 44.0]]
    _, same_multiset, _ = _run_elman([1, 2, 1])
    assert same_multiset.tolist() == [[4.0, 4.0], [16.0, 16.0], [36.0, 36.0]]
    assert outputs[-1].tolist() != [32.0, 32.0] and same_multiset[-1].tolist() != [32.0, 32.0]


def _memory_lstm():
    cell = rnnkit.LSTMCell(3, 1, activation="identity")
    with torch.no_grad():
        cell.weight_hh.zero_()
        cell.bias_hh.zero_()
        # rows in gate order i, f, g, o; columns x1, x2, x3
        cell.weight_ih.copy_(torch.tensor([[0.0, 100, 0], [0, 100, 0], [1, 0, 0], [0, 0, 100]]))
        cell.bias_ih.copy_(torch.tensor([-10.0, 10, 0, -10]))
    return cell


XS = torch.tensor([[3.0, 1, 0], [4, 1, 0], [2, 0, 0], [1, 0, 1], [3, -1, 0]])


def test_one_unit_lstm_writes_holds_reads_and_clears():
    cell = _memory_lstm()
    out, final, steps = rnnkit.Recurrent(cell)(XS.unsqueeze(1), return_steps=True)
    memory = steps.c.flatten()
    outputs = steps.h.flatten()
    torch.testing.assert_close(memory, torch.tensor([3.0, 7.0, 7.0, 7.0, 0.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(outputs, torch.tensor([0.0, 0.0, 0.0, 7.0, 0.0]), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.flatten(), outputs)
    assert final.c.item() == pytest.approx(memory[-1].item())
    # x2 = 0 holds: the third input's x1 = 2 is not written (7, not 9), and reading (step 4) does not write 1
    assert memory[2].item() == pytest.approx(7.0, abs=1e-3) and memory[3].item() == pytest.approx(7.0, abs=1e-3)


def test_one_unit_lstm_gates_by_hand():
    """The gate values themselves: sigmoid(100*x2 - 10), sigmoid(100*x2 + 10), sigmoid(100*x3 - 10)."""
    cell = _memory_lstm()
    gates = XS @ cell.weight_ih.T + cell.bias_ih
    i, f, g, o = torch.sigmoid(gates[:, 0]), torch.sigmoid(gates[:, 1]), gates[:, 2], torch.sigmoid(gates[:, 3])
    torch.testing.assert_close(i, torch.sigmoid(100 * XS[:, 1] - 10))
    torch.testing.assert_close(f, torch.sigmoid(100 * XS[:, 1] + 10))
    torch.testing.assert_close(o, torch.sigmoid(100 * XS[:, 2] - 10))
    assert torch.equal(g, XS[:, 0])
    c, cs = torch.zeros(()), []
    for t in range(5):
        c = f[t] * c + i[t] * g[t]
        cs.append(c)
    _, _, steps = rnnkit.Recurrent(cell)(XS.unsqueeze(1), return_steps=True)
    torch.testing.assert_close(steps.c.flatten(), torch.stack(cs))
