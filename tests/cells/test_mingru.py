"""minGRU / minLSTM: the parallel scan equals step-by-step generation, with any initial state."""

import pytest
import torch
from torch.autograd import gradcheck

import rnnkit
from rnnkit.cells.mingru import g, log_g
from rnnkit.scan import scan_log

CELLS = [rnnkit.MinGRUCell, rnnkit.MinLSTMCell]


def stepped(cell, xs, h0):
    state, outs = rnnkit.MinState(h0), []
    for x in xs:
        y, state = cell(x, state)
        outs.append(y)
    return torch.stack(outs), state


@pytest.mark.parametrize("cell_type", CELLS)
@pytest.mark.parametrize("h0_kind", ["zero", "positive", "negative"])
@pytest.mark.parametrize("T", [1, 7, 300])
def test_parallel_scan_equals_stepping_in_float32(cell_type, h0_kind, T):
    torch.manual_seed(T)
    cell = cell_type(5, 8)
    xs = torch.randn(T, 3, 5) * 2
    h0 = {"zero": torch.zeros(3, 8), "positive": torch.rand(3, 8) * 3, "negative": -torch.rand(3, 8) * 3}[h0_kind]
    parallel, final, _ = cell.sequence(cell.project_inputs(xs), rnnkit.MinState(h0))
    reference, ref_state = stepped(cell, xs, h0)
    torch.testing.assert_close(parallel, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(final.h, ref_state.h, atol=1e-5, rtol=1e-5)


def test_the_activation_g_is_positive_and_its_log_matches():
    x = torch.linspace(-30, 30, 601, dtype=torch.float64)
    assert (g(x) > 0).all()
    torch.testing.assert_close(log_g(x), g(x).log())


def test_scan_on_a_hand_example_with_a_negative_initial_state():
    a, b = torch.full((2, 1, 1), 0.5), torch.full((2, 1, 1), 2.0)
    h = scan_log(a.log(), b.log(), torch.full((1, 1), -4.0))
    assert h.flatten().tolist() == [0.0, 2.0]  # 0.5 * -4 + 2, then 0.5 * 0 + 2


def test_a_scan_over_zero_steps_is_an_error():
    with pytest.raises(ValueError, match="length 0"):
        scan_log(torch.zeros(0, 1, 1), torch.zeros(0, 1, 1), torch.zeros(1, 1))


@pytest.mark.parametrize("layer_type", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_layer_with_lengths_and_both_directions_matches_stepping_each_sequence(layer_type):
    torch.manual_seed(0)
    layer = layer_type(3, 4, bidirectional=True)
    x, lengths = torch.randn(6, 2, 3), torch.tensor([6, 4])
    h0 = torch.randn(2, 2, 4)
    out, state = layer(x, rnnkit.MinState(h0), lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        fwd, fs = stepped(layer.cells[0], x[:n, b : b + 1], h0[0, b : b + 1])
        bwd, bs = stepped(layer.cells[1], x[:n, b : b + 1].flip(0), h0[1, b : b + 1])
        torch.testing.assert_close(out[:n, b, :4], fwd[:, 0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[:n, b, 4:], bwd.flip(0)[:, 0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state.h[0, b], fs.h[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state.h[1, b], bs.h[0], atol=1e-5, rtol=1e-5)
        assert torch.equal(out[n:, b], torch.zeros(6 - n, 8))


@pytest.mark.parametrize("cell_type", CELLS)
def test_gradcheck_of_the_scan_float64(cell_type):
    torch.manual_seed(0)
    cell = cell_type(2, 3, dtype=torch.float64)
    xs = torch.randn(5, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    w, b = (p.detach().clone().requires_grad_() for p in (cell.weight_ih, cell.bias_ih))

    def f(xs, h0, w, b):
        log_a, log_b = cell.coefficients(torch.nn.functional.linear(xs, w, b))
        return scan_log(log_a, log_b, h0, chunk=2)  # several chunks: the carried state is differentiated too

    assert gradcheck(f, (xs, h0, w, b))


def test_lm_trains_with_mingru():
    from rnnkit.tasks.lm import LanguageModel, LMConfig

    lm = LanguageModel(20, LMConfig(cell="mingru", hidden=8, layers=2))
    logits, state = lm(torch.randint(0, 20, (5, 2)))
    assert logits.shape == (5, 2, 20) and state[0].h.shape == (1, 2, 8)
