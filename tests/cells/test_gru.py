"""GRUCell: both formulations by hand, gradients, torch.nn.GRUCell compatibility."""

import pytest
import torch
from torch import nn

import rnnkit


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_gradcheck(gradcheck_cell, reset_after):
    gradcheck_cell(rnnkit.GRUCell(3, 4, reset_after=reset_after, dtype=torch.float64))


def _by_hand(cell, x, h, reset_after):
    H = cell.hidden_size
    W_ir, W_iz, W_in = cell.weight_ih.split(H)
    W_hr, W_hz, W_hn = cell.weight_hh.split(H)
    b_ir, b_iz, b_in = cell.bias_ih.split(H)
    b_hr, b_hz, b_hn = cell.bias_hh.split(H)
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    if reset_after:
        n = torch.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    else:
        n = torch.tanh(x @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
    return (1 - z) * n + z * h


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_step_matches_equations(reset_after):
    torch.manual_seed(0)
    cell = rnnkit.GRUCell(3, 4, reset_after=reset_after, dtype=torch.float64)
    x, h = torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    y, state = cell(x, rnnkit.GRUState(h))
    expected = _by_hand(cell, x, h, reset_after)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(state.h, expected)
    # the two formulations really differ on the same weights
    other = _by_hand(cell, x, h, not reset_after)
    assert (other - expected).abs().max() > 1e-3


def test_torch_grucell_state_dict_loads_both_ways():
    torch.manual_seed(0)
    ref = nn.GRUCell(3, 4)
    cell = rnnkit.GRUCell(3, 4)
    cell.load_state_dict(ref.state_dict())
    x, h = torch.randn(5, 3), torch.randn(5, 4)
    y, _ = cell(x, rnnkit.GRUState(h))
    torch.testing.assert_close(y, ref(x, h), atol=1e-6, rtol=0)
    ref2 = nn.GRUCell(3, 4)
    ref2.load_state_dict(cell.state_dict())
    torch.testing.assert_close(ref2(x, h), y, atol=1e-6, rtol=0)


def test_same_init_as_torch_grucell_under_seed():
    torch.manual_seed(3)
    ref = nn.GRUCell(3, 5)
    torch.manual_seed(3)
    cell = rnnkit.GRUCell(3, 5)
    assert list(ref.state_dict()) == list(cell.state_dict())
    for p1, p2 in zip(ref.parameters(), cell.parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_gru_custom_activations():
    torch.manual_seed(0)
    cell = rnnkit.GRUCell(2, 3, activation="identity", recurrent_activation="hard_sigmoid")
    x, h = torch.randn(4, 2), torch.randn(4, 3)
    H = 3
    gi = x @ cell.weight_ih.T + cell.bias_ih
    gh = h @ cell.weight_hh.T + cell.bias_hh
    hs = torch.nn.functional.hardsigmoid
    r, z = hs(gi[:, :H] + gh[:, :H]), hs(gi[:, H : 2 * H] + gh[:, H : 2 * H])
    n = gi[:, 2 * H :] + r * gh[:, 2 * H :]
    y, _ = cell(x, rnnkit.GRUState(h))
    torch.testing.assert_close(y, (1 - z) * n + z * h)


@pytest.mark.parametrize(
    "config",
    [{}, {"bias": False}, {"activation": "relu", "recurrent_activation": "hard_sigmoid"}, {"reset_after": False}],
    ids=["default", "no-bias", "relu-hard_sigmoid", "reset-before"],
)
def test_for_steps_runs_the_step_in_one_native_call_with_the_same_numbers(config):
    """for_steps(): each step's equations after its products in one rnnkit.native call where no gradient is
    wanted (reset after the product); the same h as step within float64 rounding, and the plain step where a
    gradient is wanted or the reset comes before the product."""
    from rnnkit import native

    torch.manual_seed(0)
    cell = rnnkit.GRUCell(3, 5, dtype=torch.float64, **config)
    fast = cell.for_steps()
    built = native.load() is not None
    assert (fast is not cell) == (built and config.get("reset_after", True))
    xs = torch.randn(4, 2, 3, dtype=torch.float64)
    h0 = rnnkit.GRUState(torch.randn(2, 5, dtype=torch.float64))
    with torch.no_grad():
        want = cell.step(cell.project_inputs(xs[0]), h0)
        got = fast.step(fast.project_inputs(xs[0]), h0)
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(got[1].h, want[1].h, rtol=0, atol=1e-12)
        torch.testing.assert_close(
            fast.sequence(fast.project_inputs(xs), h0)[0],
            cell.sequence(cell.project_inputs(xs), h0)[0],
            rtol=0,
            atol=1e-12,
        )
    x = xs[0].clone().requires_grad_()
    (g_fast,) = torch.autograd.grad(fast.step(fast.project_inputs(x), h0)[0].sum(), x)
    (g_ref,) = torch.autograd.grad(cell.step(cell.project_inputs(x), h0)[0].sum(), x)
    torch.testing.assert_close(g_fast, g_ref, rtol=0, atol=1e-12)
