"""rnnkit.diagnose: per-step gradient norms against the hand-written Jacobian products, and what they show."""

import pytest
import torch

from rnnkit import Recurrent
from rnnkit.cells import CELLS, ElmanCell
from rnnkit.diagnose import (
    ProbeConfig,
    build_cells,
    cell_gradient_flow,
    gradient_flow,
    plot_gradient_flow,
    set_spectral_radius,
)
from rnnkit.errors import RnnkitError


def linear_elman(input_size: int, hidden_size: int) -> ElmanCell:
    """h_t = W h_{t-1} + U x_t: dL/dh_t is W^T applied T - t times to dL/dh_T, exactly."""
    return ElmanCell(input_size, hidden_size, nonlinearity="identity", bias=False).double()


def test_linear_elman_norms_are_powers_of_the_recurrent_matrix():
    torch.manual_seed(0)
    T, cell = 7, linear_elman(2, 3)
    v = torch.randn(3, dtype=torch.float64)
    flow = gradient_flow([cell], torch.randn(T, 1, 2, dtype=torch.float64), lambda y: y @ v)
    W = cell.weight_hh.detach()
    expected = [torch.linalg.matrix_power(W.T, T - t) @ v for t in range(1, T + 1)]
    torch.testing.assert_close(flow.norms, torch.stack(expected).norm(dim=1), rtol=1e-12, atol=0)


def test_lower_layer_of_a_linear_stack_sums_every_path_up_and_forward():
    # dL/dh1_t = sum_{s=t..T} (W1^T)^(s-t) U2^T (W2^T)^(T-s) v: up into layer 2 at step s, then forward there
    torch.manual_seed(1)
    T, bottom, top = 5, linear_elman(2, 3), linear_elman(3, 4)
    v = torch.randn(4, dtype=torch.float64)
    flow = gradient_flow([bottom, top], torch.randn(T, 1, 2, dtype=torch.float64), lambda y: y @ v, layer=0)
    W1, W2, U2 = bottom.weight_hh.detach(), top.weight_hh.detach(), top.weight_ih.detach()
    power = torch.linalg.matrix_power
    expected = [
        sum(power(W1.T, s - t) @ U2.T @ power(W2.T, T - s) @ v for s in range(t, T + 1)) for t in range(1, T + 1)
    ]
    torch.testing.assert_close(flow.norms, torch.stack(expected).norm(dim=1), rtol=1e-12, atol=0)


def test_batch_norm_is_the_root_mean_square_of_each_sequence_norm():
    torch.manual_seed(2)
    cell, xs = CELLS["gru"](3, 4).double(), torch.randn(6, 3, 3, dtype=torch.float64)
    v = torch.randn(4, dtype=torch.float64)
    batch = gradient_flow([cell], xs, lambda y: y @ v).norms
    alone = torch.stack([gradient_flow([cell], xs[:, b : b + 1], lambda y: y @ v).norms for b in range(3)])
    torch.testing.assert_close(batch, alone.pow(2).mean(0).sqrt())


def test_tanh_rnn_vanishes_where_an_lstm_with_a_forget_bias_holds():
    probe = ProbeConfig(steps=50, batch=4, hidden=32, seed=0)
    rnn = cell_gradient_flow("rnn", probe).summary()["ratio"]
    lstm = cell_gradient_flow("lstm:forget_bias=3", probe).summary()["ratio"]
    assert rnn < 1e-8  # about 0.6 per step
    assert lstm > 0.1
    assert lstm / rnn > 1e6


def test_irnn_above_radius_one_explodes_and_clipping_rescales_every_step_alike():
    flow = cell_gradient_flow("irnn:radius=1.05", steps=60, hidden=16, batch=2)
    assert flow.summary()["ratio"] > 3  # step 1 hears more than step T: exploding
    factor = flow.clip_factor(1.0)
    assert factor == pytest.approx(1.0 / (flow.grad_norm + 1e-6)) and factor < 1e-2
    torch.testing.assert_close(flow.clipped(1.0), flow.norms * factor)
    assert flow.clip_factor(10 * flow.grad_norm) == 1.0  # under the limit: untouched


def test_grad_norm_and_clip_factor_match_clip_grad_norm_on_the_mean_loss():
    torch.manual_seed(3)
    cell = CELLS["lstm"](3, 5).double()
    xs, v = torch.randn(8, 4, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    flow = gradient_flow([cell], xs, lambda y: y @ v)
    out, _ = Recurrent(cell)(xs)
    (out[-1] @ v).mean().backward()  # what a trainer would backpropagate
    before = [p.grad.clone() for p in cell.parameters()]
    total = torch.nn.utils.clip_grad_norm_(cell.parameters(), 0.1)
    assert float(total) == pytest.approx(flow.grad_norm, rel=1e-9)
    for p, g in zip(cell.parameters(), before, strict=True):
        torch.testing.assert_close(p.grad, g * flow.clip_factor(0.1))


@pytest.mark.parametrize("name", sorted(set(CELLS) - {"elman"}))
def test_every_cell_and_a_chosen_layer(name):
    flow = cell_gradient_flow(name, steps=12, hidden=8, batch=2, layers=2, input_size=3, layer=0)
    assert flow.norms.shape == (12,) and bool(torch.isfinite(flow.norms).all()) and flow.norms[-1] > 0
    assert set(flow.summary()) == {"T", "T-10", "T/2", "1", "ratio"}


def test_spectral_radius_is_set_per_block_and_on_the_masked_clockwork_matrix():
    torch.manual_seed(4)
    cell = CELLS["gru"](2, 6)
    set_spectral_radius(cell, 1.3)
    for block in cell.weight_hh.detach().split(6):
        assert float(torch.linalg.eigvals(block.double()).abs().max()) == pytest.approx(1.3, rel=1e-5)
    clockwork = CELLS["clockwork"](2, 8, periods=[1, 2, 4, 8])
    set_spectral_radius(clockwork, 0.9)
    effective = (clockwork.weight_hh * clockwork.recurrent_mask).detach().double()
    assert float(torch.linalg.eigvals(effective).abs().max()) == pytest.approx(0.9, rel=1e-5)


def test_cell_specs_and_their_errors():
    probe = ProbeConfig(hidden=8, layers=2, input_size=3)
    cells = build_cells("rnn:nonlinearity=relu,init=orthogonal", probe)
    assert len(cells) == 2 and cells[0].nonlinearity == "relu" and cells[1].init == "orthogonal"
    assert build_cells("clockwork:periods=1/4", probe)[0].periods == [1, 4]
    with pytest.raises(RnnkitError, match="unknown cell 'tanh'"):
        build_cells("tanh", probe)
    with pytest.raises(RnnkitError, match="expected NAME:key=value"):
        build_cells("lstm:forget_bias", probe)
    with pytest.raises(RnnkitError, match=r"cell 'lstm:colour=1'.*colour"):
        build_cells("lstm:colour=1", probe)
    with pytest.raises(RnnkitError, match="no recurrent matrix"):
        build_cells("mingru:radius=2", probe)
    with pytest.raises(RnnkitError, match="--steps must be at least 1"):
        ProbeConfig(steps=0)


def test_gradient_flow_input_errors():
    cell = linear_elman(2, 3)
    with pytest.raises(RnnkitError, match=r"expected input of shape \(T, B, 2\), got \(4, 1, 3\)"):
        gradient_flow([cell], torch.zeros(4, 1, 3, dtype=torch.float64), lambda y: y.sum(-1))
    with pytest.raises(RnnkitError, match="--layer 2 is out of range for a stack of 1"):
        gradient_flow([cell], torch.zeros(4, 1, 2, dtype=torch.float64), lambda y: y.sum(-1), layer=2)


def test_plot_writes_a_png(tmp_path):
    flows = [cell_gradient_flow(s, steps=15, hidden=8) for s in ("rnn", "irnn:radius=1.1")]
    path = plot_gradient_flow(flows, tmp_path / "flow.png", clip=1.0)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
