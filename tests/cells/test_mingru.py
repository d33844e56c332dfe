"""minGRU / minLSTM: the parallel scan equals step-by-step generation, with any initial state."""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import rnnkit
from rnnkit.cells.mingru import g, log_g
from rnnkit.scan import scan_gated, scan_linear, scan_log, sweep, sweep_chunked

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
@pytest.mark.parametrize("scan", ["linear", "log"])
def test_parallel_scan_equals_stepping_in_float32(cell_type, h0_kind, T, scan):
    torch.manual_seed(T)
    cell = cell_type(5, 8, scan=scan)
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
    torch.testing.assert_close(g(x), torch.where(x >= 0, x + 0.5, torch.sigmoid(x)))  # the paper's definition


def test_an_unknown_scan_is_an_error():
    with pytest.raises(ValueError, match="scan must be 'linear' or 'log', got 'fast'"):
        rnnkit.MinGRUCell(2, 3, scan="fast")


@pytest.mark.parametrize("T", [1, 2, 9, 64, 101])
@pytest.mark.parametrize("chunk", [2, 3, 10])
def test_the_chunked_sweep_equals_the_plain_sweep_both_ways(T, chunk):
    torch.manual_seed(T)
    a, b, h0 = torch.rand(T, 2, 3, dtype=torch.float64), torch.randn(T, 2, 3, dtype=torch.float64), torch.randn(2, 3)
    h0 = h0.double()
    for reverse in (False, True):
        expected = sweep(a, b, h0, reverse=reverse)
        torch.testing.assert_close(sweep_chunked(a, b, h0, chunk, reverse=reverse), expected)
    # the reverse sweep is the adjoint recurrence: g_t = b_t + a_{t+1} g_{t+1}, written out by hand
    g, expected = h0, torch.empty_like(b)
    for t in reversed(range(T)):
        g = b[t] + (a[t + 1] * g if t + 1 < T else g)
        expected[t] = g
    torch.testing.assert_close(sweep(a, b, h0, reverse=True), expected)


@pytest.mark.parametrize("block", [1, 3, 50])
@pytest.mark.parametrize("width", [3, 4096])  # a small step is swept in chunks, a large one step by step
def test_gradcheck_of_the_blocked_scan_float64(block, width):
    torch.manual_seed(0)
    T = 12 if width < 100 else 3
    a = torch.rand(T, width, dtype=torch.float64, requires_grad=True)
    b = torch.randn(T, width, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(width, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda a, b, h0: scan_linear(a, b, h0, block=block), (a, b, h0), fast_mode=width > 100)


@pytest.mark.parametrize("block", [1, 3, 50])
def test_gradgradcheck_of_the_blocked_gated_scan_float64(block):
    """Gradients of gradients go through a differentiable recomputation (create_graph=True)."""
    torch.manual_seed(0)
    x = torch.randn(7, 2, 2, 3, dtype=torch.float64, requires_grad=True)  # (T, B, 2, H): a and b
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)

    def scan(x, h0):
        return scan_gated(lambda x: (torch.sigmoid(x[..., 0, :]), torch.tanh(x[..., 1, :])), x, h0, block=block)

    assert gradcheck(scan, (x, h0)) and gradgradcheck(scan, (x, h0))


def test_the_blocked_scan_equals_the_log_scan_over_a_long_sequence():
    torch.manual_seed(0)
    a, b, h0 = torch.rand(5000, 2, 3) * 0.5 + 0.5, torch.rand(5000, 2, 3), -torch.rand(2, 3)
    torch.testing.assert_close(scan_linear(a, b, h0), scan_log(a.log(), b.log(), h0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(scan_linear(a, b, h0), sweep(a, b, h0))


@pytest.mark.parametrize("scan", [scan_linear, lambda a, b, h0: scan_log(a.log(), b.log(), h0)])
def test_scan_on_a_hand_example_with_a_negative_initial_state(scan):
    a, b = torch.full((2, 1, 1), 0.5), torch.full((2, 1, 1), 2.0)
    h = scan(a, b, torch.full((1, 1), -4.0))
    assert h.flatten().tolist() == [0.0, 2.0]  # 0.5 * -4 + 2, then 0.5 * 0 + 2


def test_a_scan_over_zero_steps_is_an_error():
    for scan in (scan_log, scan_linear):
        with pytest.raises(ValueError, match="length 0"):
            scan(torch.zeros(0, 1, 1), torch.zeros(0, 1, 1), torch.zeros(1, 1))
    with pytest.raises(ValueError, match=r"h0 \(\*S\), got h0 \(2,\)"):
        scan_linear(torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(2))


@pytest.mark.parametrize("layer_type", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_layer_with_lengths_and_both_directions_matches_stepping_each_sequence(layer_type):
    torch.manual_seed(0)
    layer = layer_type(3, 4, bidirectional=True)
    x, lengths = torch.randn(6, 2, 3), torch.tensor([6, 4])
    h0 = torch.randn(2, 2, 4)
    out, state = layer(x, rnnkit.MinState(h0), lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        fwd, fs = stepped(layer.bound_cells()[0], x[:n, b : b + 1], h0[0, b : b + 1])
        bwd, bs = stepped(layer.bound_cells()[1], x[:n, b : b + 1].flip(0), h0[1, b : b + 1])
        torch.testing.assert_close(out[:n, b, :4], fwd[:, 0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[:n, b, 4:], bwd.flip(0)[:, 0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state.h[0, b], fs.h[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state.h[1, b], bs.h[0], atol=1e-5, rtol=1e-5)
        assert torch.equal(out[n:, b], torch.zeros(6 - n, 8))


@pytest.mark.parametrize("cell_type", CELLS)
@pytest.mark.parametrize("scan", ["linear", "log"])
def test_gradcheck_of_the_scan_float64(cell_type, scan):
    torch.manual_seed(0)
    cell = cell_type(2, 3, dtype=torch.float64)
    xs = torch.randn(5, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    w, b = (p.detach().clone().requires_grad_() for p in (cell.weight_ih, cell.bias_ih))

    def f(xs, h0, w, b):  # several chunks / blocks: the carried state is differentiated too
        x_proj = torch.nn.functional.linear(xs, w, b)
        if scan == "log":
            return scan_log(*cell.log_coefficients(x_proj), h0, chunk=2)
        return scan_gated(cell.coefficients, x_proj, h0, block=2)

    assert gradcheck(f, (xs, h0, w, b))


def test_lm_trains_with_mingru():
    from rnnkit.tasks.lm import LanguageModel, LMConfig

    lm = LanguageModel(20, LMConfig(cell="mingru", hidden=8, layers=2))
    logits, state = lm(torch.randint(0, 20, (5, 2)))
    assert logits.shape == (5, 2, 20) and state[0].h.shape == (1, 2, 8)
