"""LSTMCell: equations by hand, projections, Keras activations, forget_bias, torch.nn.LSTMCell compatibility."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rnnkit

CONFIGS = {
    "default": {},
    "proj": {"proj_size": 2},
    "identity-hard_sigmoid": {"activation": "identity", "recurrent_activation": "hard_sigmoid"},
    "proj-identity-hard_sigmoid": {"proj_size": 3, "activation": "identity", "recurrent_activation": "hard_sigmoid"},
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_lstm_gradcheck(gradcheck_cell, config):
    gradcheck_cell(rnnkit.LSTMCell(3, 4, dtype=torch.float64, **config))


def _by_hand(cell, x, h, c, act, gate):
    i, f, g, o = (x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh).chunk(4, dim=-1)
    c = gate(f) * c + gate(i) * act(g)
    h = gate(o) * act(c)
    if cell.weight_hr is not None:
        h = h @ cell.weight_hr.T
    return h, c


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_lstm_step_matches_equations(config):
    torch.manual_seed(0)
    cell = rnnkit.LSTMCell(3, 4, dtype=torch.float64, **config)
    P = config.get("proj_size", 0) or 4
    x = torch.randn(2, 3, dtype=torch.float64)
    h, c = torch.randn(2, P, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    act = torch.tanh if config.get("activation", "tanh") == "tanh" else (lambda a: a)
    gate = torch.sigmoid if config.get("recurrent_activation", "sigmoid") == "sigmoid" else F.hardsigmoid
    y, state = cell(x, rnnkit.LSTMState(h, c))
    h_want, c_want = _by_hand(cell, x, h, c, act, gate)
    torch.testing.assert_close(y, h_want)
    torch.testing.assert_close(state.h, h_want)
    torch.testing.assert_close(state.c, c_want)
    assert y.shape == (2, P) and state.c.shape == (2, 4)
    assert cell.output_size == P


def test_hard_sigmoid_is_relu6_over_6():
    cell = rnnkit.LSTMCell(1, 1, recurrent_activation="hard_sigmoid", activation="identity")
    v = torch.tensor([-4.0, -3.0, 0.0, 1.5, 3.0, 5.0])
    assert torch.equal(cell.gate(v), torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0, 1.0]))


def test_torch_lstmcell_state_dict_loads_both_ways():
    torch.manual_seed(0)
    ref = nn.LSTMCell(3, 4)
    cell = rnnkit.LSTMCell(3, 4)
    cell.load_state_dict(ref.state_dict())
    x, h, c = torch.randn(5, 3), torch.randn(5, 4), torch.randn(5, 4)
    y, state = cell(x, rnnkit.LSTMState(h, c))
    h_ref, c_ref = ref(x, (h, c))
    torch.testing.assert_close(y, h_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(state.c, c_ref, atol=1e-6, rtol=0)
    ref2 = nn.LSTMCell(3, 4)
    ref2.load_state_dict(cell.state_dict())
    torch.testing.assert_close(ref2(x, (h, c))[1], state.c, atol=1e-6, rtol=0)


def test_same_init_as_torch_lstmcell_under_seed():
    torch.manual_seed(11)
    ref = nn.LSTMCell(3, 5)
    torch.manual_seed(11)
    cell = rnnkit.LSTMCell(3, 5)
    assert list(ref.state_dict()) == list(cell.state_dict())
    for p1, p2 in zip(ref.parameters(), cell.parameters(), strict=True):
        assert torch.equal(p1, p2)


@pytest.mark.parametrize("init", ["uniform", "orthogonal", "normal"])
def test_forget_bias(init):
    cell = rnnkit.LSTMCell(3, 4, forget_bias=1.0, init=init)
    assert torch.equal(cell.bias_ih[4:8], torch.ones(4))
    assert torch.equal(cell.bias_hh[4:8], torch.zeros(4))
    # the other gates' biases follow the scheme (uniform: not all zero; the others: zero)
    others = torch.cat([cell.bias_ih[:4], cell.bias_ih[8:]])
    assert bool((others != 0).any()) == (init == "uniform")
    # re-initialising keeps the forget bias
    cell.reset_parameters("xavier")
    assert torch.equal(cell.bias_ih[4:8], torch.ones(4))
    assert torch.equal(cell.bias_hh, torch.zeros(16))


def test_forget_bias_without_bias_is_ignored():
    cell = rnnkit.LSTMCell(3, 4, bias=False, forget_bias=1.0)
    assert cell.bias_ih is None and cell.bias_hh is None


def test_proj_parameters_follow_torch():
    cell = rnnkit.LSTMCell(3, 5, proj_size=2)
    assert list(cell.state_dict()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"]
    assert cell.weight_hh.shape == (20, 2) and cell.weight_hr.shape == (2, 5)
    state = cell.initial_state(3)
    assert state.h.shape == (3, 2) and state.c.shape == (3, 5)
    assert not state.h.any() and not state.c.any()


@pytest.mark.parametrize("native_on", [True, False], ids=["native", "python"])
@pytest.mark.parametrize(
    "config",
    [*CONFIGS.values(), {"bias": False}, {"activation": "relu", "recurrent_activation": "sigmoid"}],
    ids=[*CONFIGS.keys(), "no-bias", "relu"],
)
def test_for_steps_merges_the_products_and_equals_the_step(config, native_on):
    """for_steps(): one product of [W_ih W_hh] and [x; h] a step (rnnkit.native's kernel after it where built and
    no gradient is wanted): the same h and c as step, and sequence, within float64 rounding."""
    from rnnkit import native

    torch.manual_seed(0)
    cell = rnnkit.LSTMCell(3, 5, dtype=torch.float64, **config)
    with native.disabled() if not native_on else torch.no_grad():
        fast = cell.for_steps()
    assert fast._merged and not cell._merged and fast is not cell
    assert set(fast._parameters) == {"weight_xh", "bias_xh", "weight_hr"}
    assert fast.weight_xh.shape == (20, 3 + cell.output_size)
    assert (fast._kernels is not None) == (native_on and native.load() is not None)
    xs = torch.randn(6, 2, 3, dtype=torch.float64)
    state = cell.initial_state(2, dtype=torch.float64)
    state = type(state)(*(torch.randn_like(t) for t in state))
    with torch.no_grad():
        want_y, want = cell.step(cell.project_inputs(xs[0]), state)
        got_y, got = fast.step(fast.project_inputs(xs[0]), state)
        torch.testing.assert_close(got_y, want_y, rtol=0, atol=1e-12)
        torch.testing.assert_close(tuple(got), tuple(want), rtol=0, atol=1e-12)
        want_ys, want_final, _ = cell.sequence(cell.project_inputs(xs), state)
        got_ys, got_final, _ = fast.sequence(fast.project_inputs(xs), state)
        torch.testing.assert_close(got_ys, want_ys, rtol=0, atol=1e-12)
        torch.testing.assert_close(tuple(got_final), tuple(want_final), rtol=0, atol=1e-12)


def test_for_steps_with_a_gradient_runs_the_equations_and_reaches_the_weights():
    """Where a gradient is wanted the merged step runs its equations in torch (not the kernel), and the weights'
    gradients through the concatenated matrix equal those of the plain step."""
    torch.manual_seed(0)
    cell = rnnkit.LSTMCell(3, 4, dtype=torch.float64)
    x, state = torch.randn(2, 3, dtype=torch.float64), cell.initial_state(2, dtype=torch.float64)
    grads = []
    for prepared in (cell, cell.for_steps()):
        h, new = prepared.step(prepared.project_inputs(x), state)
        grads.append(torch.autograd.grad((h.sum() + new.c.square().sum()), [cell.weight_ih, cell.weight_hh]))
    for got, want in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
