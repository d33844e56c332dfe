"""rnnkit.Recurrent: the layer against an independent per-sequence reference, padding, directions, steps,
residual connections, dropout, user cells, torch-style parameter names, and gradients."""

import subprocess
import sys
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit import state as S

# -- an independent reference: every sequence on its own, one cell call per step, no masks -------------


def reference(layer: rnnkit.Recurrent, x: torch.Tensor, lengths, state0=None):
    """Outputs (T, B, D*O) zero at padding, and the final state (fields (L*D, B, ...)), computed sequence by
    sequence with ``cell(x_t, state)`` over each one's true length; the backward direction reads the
    sequence's valid prefix reversed."""
    T, B = x.shape[:2]
    D, L = layer.num_directions, layer.num_layers
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    if state0 is None:
        state0 = layer.initial_state(B, dtype=x.dtype)
    out = torch.zeros(T, B, layer.output_size, dtype=x.dtype)
    finals = [[None] * B for _ in range(L * D)]
    for b, n in enumerate(lengths):
        inp = x[:n, b]
        for layer_index in range(L):
            ys = []
            for d in range(D):
                k = layer_index * D + d
                cell = layer.bound_cells()[k]
                st = type(state0)(*(f[k, b : b + 1] for f in state0))
                seq = inp if d == 0 else inp.flip(0)
                steps = []
                for t in range(n):
                    y, st = cell(seq[t : t + 1], st)
                    steps.append(y[0])
                y = torch.stack(steps)
                ys.append(y if d == 0 else y.flip(0))
                finals[k][b] = st
            y = torch.cat(ys, dim=-1)
            inp = y + inp if layer.residual and layer_index > 0 else y
        out[:n, b] = inp
    final = S.stack([S.map_state(lambda *fs: torch.cat(fs), *finals[k]) for k in range(L * D)])
    return out, final


def assert_state_close(a, b, **kw):
    assert type(a) is type(b)
    for fa, fb in zip(a, b, strict=True):
        torch.testing.assert_close(fa, fb, **kw)


class LeakyState(NamedTuple):
    h: torch.Tensor


class LeakyCell(rnnkit.Cell):
    """A user's cell written to the protocol: h_t = (1 - a) h_{t-1} + a tanh(W x_t + U h_{t-1})."""

    recurrent_weights = ("weight_hh",)

    def __init__(self, input_size, hidden_size, a=0.5, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.a = input_size, hidden_size, a
        self.weight_ih = nn.Parameter(torch.randn(hidden_size, input_size, dtype=dtype) * 0.5)
        self.weight_hh = nn.Parameter(torch.randn(hidden_size, hidden_size, dtype=dtype) * 0.5)

    def initial_state(self, batch_size, *, device=None, dtype=None):
        return LeakyState(self._zeros(batch_size, self.hidden_size, device, dtype))

    def project_inputs(self, x):
        return F.linear(x, self.weight_ih)

    def step(self, xw, state):
        h = (1 - self.a) * state.h + self.a * torch.tanh(xw + F.linear(state.h, self.weight_hh))
        return h, LeakyState(h)


LAYERS = {
    "lstm": lambda **kw: rnnkit.Recurrent("lstm", 3, 4, **kw),
    "lstm-proj": lambda **kw: rnnkit.Recurrent("lstm", 3, 4, proj_size=2, **kw),
    "gru": lambda **kw: rnnkit.Recurrent("gru", 3, 4, **kw),
    "gru-cho": lambda **kw: rnnkit.Recurrent(rnnkit.GRUCell, 3, 4, reset_after=False, **kw),
    "rnn-relu": lambda **kw: rnnkit.Recurrent("rnn", 3, 4, nonlinearity="relu", **kw),
    "irnn": lambda **kw: rnnkit.Recurrent("irnn", 3, 4, **kw),
    "jordan": lambda **kw: rnnkit.Jordan(3, 5, 2, **kw),
    "user": lambda **kw: rnnkit.Recurrent(LeakyCell, 3, 4, a=0.3, **kw),
}
SHAPES = {
    "1x1": {"num_layers": 1, "bidirectional": False},
    "2x1": {"num_layers": 2, "bidirectional": False},
    "1x2": {"num_layers": 1, "bidirectional": True},
    "2x2": {"num_layers": 2, "bidirectional": True},
}
LENGTHS = torch.tensor([5, 2, 4])  # T = 5, B = 3, unsorted


def _random_state(layer, B, seed=5):
    g = torch.Generator().manual_seed(seed)
    return S.map_state(lambda t: torch.randn(t.shape, generator=g), layer.initial_state(B))


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS.keys())
def test_layer_matches_hand_stepped_cells(make, shape):
    torch.manual_seed(0)
    layer = make(**shape)
    x = torch.randn(5, 3, 3)
    state0 = _random_state(layer, 3)
    out, final = layer(x, state0, lengths=LENGTHS)
    want_out, want_final = reference(layer, x, LENGTHS, state0)
    torch.testing.assert_close(out, want_out, atol=1e-6, rtol=1e-5)
    assert_state_close(final, want_final, atol=1e-6, rtol=1e-5)
    # padded positions are exactly zero
    assert not out[2:, 1].any() and not out[4:, 2].any()


@pytest.mark.parametrize("make", [LAYERS["lstm"], LAYERS["user"], LAYERS["jordan"]], ids=["lstm", "user", "jordan"])
def test_layer_without_lengths_matches_reference(make):
    torch.manual_seed(0)
    layer = make(num_layers=2, bidirectional=True)
    x = torch.randn(4, 2, 3)
    out, final = layer(x)
    want_out, want_final = reference(layer, x, None)
    torch.testing.assert_close(out, want_out, atol=1e-6, rtol=1e-5)
    assert_state_close(final, want_final, atol=1e-6, rtol=1e-5)


def test_single_cell_instance_layer_matches_cell_steps():
    torch.manual_seed(0)
    cell = rnnkit.LSTMCell(3, 4)
    layer = rnnkit.Recurrent(cell)
    assert layer.cells[0] is cell and layer.input_size == 3 and layer.hidden_size == 4
    x = torch.randn(4, 2, 3)
    out, final = layer(x)
    st = cell.initial_state(2)
    for t in range(4):
        y, st = cell(x[t], st)
        torch.testing.assert_close(out[t], y)
    torch.testing.assert_close(final.h[0], st.h)
    torch.testing.assert_close(final.c[0], st.c)


@pytest.mark.parametrize("make", [LAYERS["gru"], LAYERS["lstm-proj"], LAYERS["user"]], ids=["gru", "lstm-proj", "user"])
def test_padding_invariance(make):
    torch.manual_seed(0)
    layer = make(num_layers=2, bidirectional=True)
    x = torch.randn(5, 3, 3)
    pad = torch.arange(5).unsqueeze(1) >= LENGTHS.unsqueeze(0)  # (T, B): true at padding
    x2 = x.clone()
    x2[pad] = 100.0 * torch.randn(int(pad.sum()), 3)
    out1, fin1 = layer(x, lengths=LENGTHS)
    out2, fin2 = layer(x2, lengths=LENGTHS)
    torch.testing.assert_close(out1, out2, atol=1e-6, rtol=0)
    assert_state_close(fin1, fin2, atol=1e-6, rtol=0)
    assert torch.equal(out2[pad], torch.zeros(int(pad.sum()), layer.output_size))
    # ... while without lengths the padding values do change the results (the test can tell)
    assert not torch.allclose(layer(x)[0], layer(x2)[0])


def test_gradient_at_padding_is_exactly_zero():
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("lstm", 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 3, 3, requires_grad=True)
    out, final = layer(x, lengths=LENGTHS)
    (out.square().sum() + final.c.sum()).backward()
    pad = torch.arange(5).unsqueeze(1) >= LENGTHS.unsqueeze(0)
    assert torch.equal(x.grad[pad], torch.zeros(int(pad.sum()), 3))
    assert (x.grad[~pad].abs().sum(-1) > 0).all()


def test_full_lengths_equal_no_lengths_and_list_lengths_equal_tensor():
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("gru", 3, 4, bidirectional=True)
    x = torch.randn(4, 3, 3)
    a, fa = layer(x)
    b, fb = layer(x, lengths=[4, 4, 4])
    assert torch.equal(a, b) and torch.equal(fa.h, fb.h)
    c, fc = layer(x, lengths=[4, 2, 3])
    d, fd = layer(x, lengths=torch.tensor([4, 2, 3], dtype=torch.int32))
    assert torch.equal(c, d) and torch.equal(fc.h, fd.h)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("make", [LAYERS["lstm"], LAYERS["jordan"], LAYERS["user"]], ids=["lstm", "jordan", "user"])
def test_bidirectional_is_forward_plus_reversed_run(make):
    torch.manual_seed(0)
    layer = make(bidirectional=True)
    fwd, bwd = rnnkit.Recurrent(layer.bound_cells()[0]), rnnkit.Recurrent(layer.bound_cells()[1])
    x = torch.randn(5, 3, 3)
    out, final = layer(x, lengths=LENGTHS)
    out_f, fin_f = fwd(x, lengths=LENGTHS)
    out_b, fin_b = bwd(rnnkit.flip_padded(x, LENGTHS), lengths=LENGTHS)
    out_b = rnnkit.flip_padded(out_b, LENGTHS)
    torch.testing.assert_close(out, torch.cat([out_f, out_b], dim=-1))
    assert_state_close(final, S.map_state(lambda a, b: torch.cat([a, b]), fin_f, fin_b))


def test_flip_padded_literals():
    x = torch.tensor([[1, 1], [2, 2], [3, 0]])
    assert rnnkit.flip_padded(x, torch.tensor([3, 2])).tolist() == [[3, 2], [2, 1], [1, 0]]
    assert rnnkit.flip_padded(x, None).tolist() == [[3, 0], [2, 2], [1, 1]]
    # (T=4, B=3, F=2): lengths 4, 1, 3; features travel together, padding stays put
    x = torch.tensor(
        [
            [[1, -1], [5, -5], [8, -8]],
            [[2, -2], [0, 0], [9, -9]],
            [[3, -3], [0, 0], [10, -10]],
            [[4, -4], [0, 0], [0, 0]],
        ]
    )
    got = rnnkit.flip_padded(x, torch.tensor([4, 1, 3]))
    assert got.tolist() == [
        [[4, -4], [5, -5], [10, -10]],
        [[3, -3], [0, 0], [9, -9]],
        [[2, -2], [0, 0], [8, -8]],
        [[1, -1], [0, 0], [0, 0]],
    ]
    # flipping twice is the identity
    assert torch.equal(rnnkit.flip_padded(got, torch.tensor([4, 1, 3])), x)


def test_flip_padded_keeps_padding_values_in_place():
    x = torch.tensor([[1.0], [2.0], [7.0], [9.0]])  # (T=4, B=1) with two padding steps holding 7 and 9
    assert rnnkit.flip_padded(x, torch.tensor([2])).flatten().tolist() == [2.0, 1.0, 7.0, 9.0]


# -- return_steps -------------------------------------------------------------------------------------


def test_return_steps_values_time_major():
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("lstm", 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 3, 3)
    out, final, steps = layer(x, lengths=LENGTHS, return_steps=True)
    out0, final0 = layer(x, lengths=LENGTHS)  # without steps: rnnkit.bptt's loop, which rounds its own way
    torch.testing.assert_close(out, out0)
    assert_state_close(final, final0)
    with rnnkit.bptt.reference_loop():
        assert torch.equal(out, layer(x, lengths=LENGTHS)[0])
    assert isinstance(steps, rnnkit.LSTMState)
    assert steps.h.shape == (4, 5, 3, 4) and steps.c.shape == (4, 5, 3, 4)
    for b, n in enumerate(LENGTHS.tolist()):
        for k in (0, 2):  # forward directions: final state at the sequence's last valid step
            assert torch.equal(steps.c[k, n - 1, b], final.c[k, b])
            assert torch.equal(steps.h[k, n - 1, b], final.h[k, b])
        for k in (1, 3):  # backward directions: their last step is position 0
            assert torch.equal(steps.c[k, 0, b], final.c[k, b])
            assert torch.equal(steps.h[k, 0, b], final.h[k, b])
        assert not steps.c[:, n:, b].any() and not steps.h[:, n:, b].any()
    # the last layer's h at every step is the output (forward half, then backward half)
    torch.testing.assert_close(torch.cat([steps.h[2], steps.h[3]], dim=-1), out)
    assert steps.c[:, :1].abs().min() > 0  # real positions hold real values


def test_return_steps_memory_matches_hand_stepped_cell():
    torch.manual_seed(0)
    cell = rnnkit.LSTMCell(3, 4)
    x = torch.randn(4, 2, 3)
    _, _, steps = rnnkit.Recurrent(cell)(x, return_steps=True)
    st = cell.initial_state(2)
    for t in range(4):
        _, st = cell(x[t], st)
        torch.testing.assert_close(steps.c[0, t], st.c)
        torch.testing.assert_close(steps.h[0, t], st.h)


def test_return_steps_batch_first_layout():
    torch.manual_seed(0)
    tm = rnnkit.Recurrent("gru", 3, 4, num_layers=2, bidirectional=True)
    bf = rnnkit.Recurrent("gru", 3, 4, num_layers=2, bidirectional=True, batch_first=True)
    bf.load_state_dict(tm.state_dict())
    x = torch.randn(5, 3, 3)
    out_t, fin_t, steps_t = tm(x, lengths=LENGTHS, return_steps=True)
    out_b, fin_b, steps_b = bf(x.transpose(0, 1), lengths=LENGTHS, return_steps=True)
    assert steps_b.h.shape == (4, 3, 5, 4)  # (L*D, B, T, H)
    assert torch.equal(steps_b.h, steps_t.h.transpose(1, 2))
    assert torch.equal(out_b, out_t.transpose(0, 1))
    assert torch.equal(fin_b.h, fin_t.h)  # the state stays (L*D, B, H) with batch_first, as torch's


def test_return_steps_unbatched():
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("lstm", 3, 4, bidirectional=True)
    x = torch.randn(5, 3)
    out, final, steps = layer(x, return_steps=True)
    assert out.shape == (5, 8) and final.c.shape == (2, 4) and steps.c.shape == (2, 5, 4)
    out1, final1, steps1 = layer(x.unsqueeze(1), return_steps=True)
    assert torch.equal(steps.c, steps1.c[:, :, 0])
    assert torch.equal(out, out1[:, 0])
    assert torch.equal(final.c, final1.c[:, 0])


# -- residual, dropout --------------------------------------------------------------------------------


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_residual_adds_layer_input(lengths):
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("gru", 3, 4, num_layers=3, residual=True)
    x = torch.randn(5, 3, 3)
    out, final = layer(x, lengths=lengths)
    y0, f0 = rnnkit.Recurrent(layer.bound_cells()[0])(x, lengths=lengths)  # the first layer: no residual (3 != 4)
    y1, f1 = rnnkit.Recurrent(layer.bound_cells()[1])(y0, lengths=lengths)
    y1 = y1 + y0
    y2, f2 = rnnkit.Recurrent(layer.bound_cells()[2])(y1, lengths=lengths)
    torch.testing.assert_close(out, y2 + y1)
    torch.testing.assert_close(final.h, torch.cat([f0.h, f1.h, f2.h]))
    plain = rnnkit.Recurrent("gru", 3, 4, num_layers=3)
    plain.load_state_dict(layer.state_dict())
    assert not torch.allclose(plain(x, lengths=lengths)[0], out)
    if lengths is not None:
        assert not out[2:, 1].any()


def test_residual_bidirectional_matches_reference():
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("lstm", 3, 4, num_layers=2, bidirectional=True, residual=True)
    x = torch.randn(5, 3, 3)
    out, final = layer(x, lengths=LENGTHS)
    want_out, want_final = reference(layer, x, LENGTHS)
    torch.testing.assert_close(out, want_out, atol=1e-6, rtol=1e-5)
    assert_state_close(final, want_final, atol=1e-6, rtol=1e-5)


def test_dropout_eval_is_deterministic_and_train_is_not():
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("lstm", 3, 4, num_layers=3, dropout=0.5)
    plain = rnnkit.Recurrent("lstm", 3, 4, num_layers=3)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(5, 2, 3)
    layer.eval()
    a, b = layer(x)[0], layer(x)[0]
    assert torch.equal(a, b)
    assert torch.equal(a, plain(x)[0])
    layer.train()
    torch.manual_seed(1)
    c = layer(x)[0]
    torch.manual_seed(2)
    d = layer(x)[0]
    assert not torch.allclose(c, a) and not torch.allclose(c, d)
    # dropout acts between layers only: the first layer's final state is untouched by it
    torch.manual_seed(1)
    assert torch.equal(layer(x)[1].h[0], plain(x)[1].h[0])


def test_dropout_one_feeds_zeros_to_the_upper_layers():
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("gru", 3, 4, num_layers=2, dropout=1.0)
    x = torch.randn(5, 2, 3)
    out, _ = layer(x)
    top = rnnkit.Recurrent(layer.bound_cells()[1])
    torch.testing.assert_close(out, top(torch.zeros(5, 2, 4))[0])


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="no effect"):
        rnnkit.Recurrent("gru", 3, 4, dropout=0.3)


# -- inputs in other forms ----------------------------------------------------------------------------


def test_batch_first_and_unbatched_agree_with_time_major():
    torch.manual_seed(0)
    tm = rnnkit.Recurrent("lstm", 3, 4, num_layers=2, bidirectional=True)
    bf = rnnkit.Recurrent("lstm", 3, 4, num_layers=2, bidirectional=True, batch_first=True)
    bf.load_state_dict(tm.state_dict())
    x = torch.randn(5, 3, 3)
    state0 = _random_state(tm, 3)
    out, final = tm(x, state0, lengths=LENGTHS)
    out_b, final_b = bf(x.transpose(0, 1).contiguous(), state0, lengths=LENGTHS)
    torch.testing.assert_close(out_b, out.transpose(0, 1))
    assert_state_close(final_b, final)
    # unbatched (T, F) with a state (L*D, H) is batch entry 0 on its own
    out_u, final_u = tm(x[:, 0], S.map_state(lambda t: t[:, 0], state0))
    assert out_u.shape == (5, 8) and final_u.h.shape == (4, 4)
    torch.testing.assert_close(out_u, out[:, 0])
    assert_state_close(final_u, S.map_state(lambda t: t[:, 0], final))


@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_packed_input_matches_lengths(enforce_sorted):
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("gru", 3, 4, num_layers=2, bidirectional=True)
    lengths = torch.tensor([5, 4, 2]) if enforce_sorted else LENGTHS
    x = torch.randn(5, 3, 3)
    state0 = _random_state(layer, 3)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    out_p, final_p = layer(packed, state0)
    out, final = layer(x, state0, lengths=lengths)
    assert isinstance(out_p, nn.utils.rnn.PackedSequence)
    assert torch.equal(out_p.batch_sizes, packed.batch_sizes)
    padded, got_lengths = pad_packed_sequence(out_p, total_length=5)
    assert got_lengths.tolist() == lengths.tolist()
    torch.testing.assert_close(padded, out)
    assert_state_close(final_p, final)


def test_initial_state_is_used():
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("rnn", 2, 3, nonlinearity="identity", bias=False)
    with torch.no_grad():
        layer.bound_cells()[0].weight_ih.zero_()
        layer.bound_cells()[0].weight_hh.copy_(2 * torch.eye(3))
    h0 = torch.tensor([[[1.0, -1.0, 0.5]]])  # (1, B=1, 3)
    out, final = layer(torch.randn(3, 1, 2), rnnkit.ElmanState(h0))
    # h_t = 2 h_{t-1}: 2, 4, 8 times h0
    assert out[:, 0].tolist() == [[2.0, -2.0, 1.0], [4.0, -4.0, 2.0], [8.0, -8.0, 4.0]]
    assert final.h.tolist() == [[[8.0, -8.0, 4.0]]]
    # a bare tensor is accepted for a one-field state
    assert torch.equal(layer(torch.randn(3, 1, 2), h0)[1].h, final.h)


# -- Jordan -------------------------------------------------------------------------------------------


def test_jordan_layer_state_is_previous_output():
    torch.manual_seed(0)
    layer = rnnkit.Jordan(3, 5, 2)
    cell = layer.bound_cells()[0]
    x = torch.randn(3, 2, 3)
    y0 = torch.randn(1, 2, 2)
    out, final = layer(x, rnnkit.JordanState(y0))
    assert out.shape == (3, 2, 2) and final.y.shape == (1, 2, 2)
    # step 1 by hand from y0
    h1 = torch.tanh(x[0] @ cell.weight_ih.T + cell.bias_ih + y0[0] @ cell.weight_yh.T)
    y1 = torch.tanh(h1 @ cell.weight_hy.T + cell.bias_hy)
    torch.testing.assert_close(out[0], y1)
    # step 2 reads step 1's output
    h2 = torch.tanh(x[1] @ cell.weight_ih.T + cell.bias_ih + out[0] @ cell.weight_yh.T)
    torch.testing.assert_close(out[1], torch.tanh(h2 @ cell.weight_hy.T + cell.bias_hy))
    assert torch.equal(final.y[0], out[-1])


def test_jordan_stacked_sizes():
    layer = rnnkit.Jordan(3, 5, 2, num_layers=2, bidirectional=True)
    assert layer.cells[2].input_size == 4  # 2 directions x output_size 2
    assert layer.output_size == 4
    out, final = layer(torch.randn(4, 2, 3))
    assert out.shape == (4, 2, 4) and final.y.shape == (4, 2, 2)


# -- torch-style parameter names ----------------------------------------------------------------------


TORCH_LSTM_KEYS = [
    f"{w}_l{layer}{sfx}"
    for layer in (0, 1)
    for sfx in ("", "_reverse")
    for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
]


def test_state_dict_uses_torch_names_in_torch_order():
    layer = rnnkit.Recurrent("lstm", 3, 4, num_layers=2, bidirectional=True, proj_size=2)
    ref = nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2)
    assert list(layer.state_dict()) == list(ref.state_dict()) == TORCH_LSTM_KEYS
    for key, value in ref.state_dict().items():
        assert layer.state_dict()[key].shape == value.shape
    layer.load_state_dict(ref.state_dict())
    assert torch.equal(layer.weight_hr_l1_reverse, ref.weight_hr_l1_reverse)


def test_torch_name_attributes():
    layer = rnnkit.Recurrent("gru", 3, 4, num_layers=2, bidirectional=True)
    assert layer.weight_hh_l1_reverse is layer.bound_cells()[3].weight_hh
    assert layer.bias_ih_l0 is layer.bound_cells()[0].bias_ih
    assert layer.weight_ih_l1.shape == (12, 8)
    assert [len(w) for w in layer.all_weights] == [4, 4, 4, 4]
    assert layer.all_weights[1][1] is layer.weight_hh_l0_reverse
    with pytest.raises(AttributeError):
        layer.weight_hh_l2
    one_way = rnnkit.Recurrent("gru", 3, 4)
    with pytest.raises(AttributeError):
        one_way.weight_hh_l0_reverse
    layer.flatten_parameters()  # accepted, does nothing


def test_state_dict_round_trip_in_a_parent_module():
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rnnkit.Recurrent("lstm", 3, 4, bidirectional=True)
            self.head = nn.Linear(8, 2)

    torch.manual_seed(0)
    a, b = Model(), Model()
    keys = list(a.state_dict())
    assert keys[:2] == ["rnn.weight_ih_l0", "rnn.weight_hh_l0"] and keys[-2:] == ["head.weight", "head.bias"]
    b.load_state_dict(a.state_dict())
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_user_cell_state_dict_round_trip():
    torch.manual_seed(0)
    a = rnnkit.Recurrent(LeakyCell, 3, 4, num_layers=2, bidirectional=True)
    b = rnnkit.Recurrent(LeakyCell, 3, 4, num_layers=2, bidirectional=True)
    assert list(a.state_dict()) == [
        "weight_ih_l0",
        "weight_hh_l0",
        "weight_ih_l0_reverse",
        "weight_hh_l0_reverse",
        "weight_ih_l1",
        "weight_hh_l1",
        "weight_ih_l1_reverse",
        "weight_hh_l1_reverse",
    ]
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 2, 3)
    assert torch.equal(a(x)[0], b(x)[0])


class TwoMatrixCell(rnnkit.Cell):
    """A user's cell whose parameter names hold digits (w1, w2): legal names in PyTorch."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.w1 = nn.Parameter(torch.randn(hidden_size, input_size))
        self.w2 = nn.Parameter(torch.randn(hidden_size, hidden_size))

    def initial_state(self, batch_size, *, device=None, dtype=None):
        return LeakyState(self._zeros(batch_size, self.hidden_size, device, dtype))

    def project_inputs(self, x):
        return F.linear(x, self.w1)

    def step(self, xw, state):
        h = torch.tanh(xw + F.linear(state.h, self.w2))
        return h, LeakyState(h)


def test_user_cell_with_digits_in_parameter_names_round_trips():
    """state_dict() saves ``cells.0.w1`` as ``w1_l0``; load_state_dict must map it back (and ``layer.w1_l0``
    must resolve like ``layer.weight_ih_l0`` does)."""
    torch.manual_seed(0)
    a = rnnkit.Recurrent(TwoMatrixCell, 3, 4, num_layers=2, bidirectional=True)
    b = rnnkit.Recurrent(TwoMatrixCell, 3, 4, num_layers=2, bidirectional=True)
    assert list(a.state_dict())[:2] == ["w1_l0", "w2_l0"]
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 2, 3)
    assert torch.equal(a(x)[0], b(x)[0])
    assert a.w2_l1_reverse is a.bound_cells()[3].w2


# -- gradients ----------------------------------------------------------------------------------------

GRAD_LAYERS = {
    "lstm-2x2": lambda: rnnkit.Recurrent("lstm", 2, 3, num_layers=2, bidirectional=True, dtype=torch.float64),
    "lstm-proj-bidir": lambda: rnnkit.Recurrent("lstm", 2, 3, bidirectional=True, proj_size=2, dtype=torch.float64),
    "gru-cho-2x1": lambda: rnnkit.Recurrent("gru", 2, 3, num_layers=2, reset_after=False, dtype=torch.float64),
    "rnn-bidir": lambda: rnnkit.Recurrent("rnn", 2, 3, bidirectional=True, dtype=torch.float64),
    "jordan-2x2": lambda: rnnkit.Jordan(2, 3, 2, num_layers=2, bidirectional=True, dtype=torch.float64),
    "user-2x2": lambda: rnnkit.Recurrent(LeakyCell, 2, 3, num_layers=2, bidirectional=True, dtype=torch.float64),
    "residual": lambda: rnnkit.Recurrent("gru", 2, 3, num_layers=2, residual=True, dtype=torch.float64),
}


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("make", GRAD_LAYERS.values(), ids=GRAD_LAYERS.keys())
def test_layer_gradcheck(gradcheck_layer, make, with_lengths):
    torch.manual_seed(0)
    layer = make()
    x = torch.randn(4, 3, 2, dtype=torch.float64)
    state0 = S.map_state(torch.randn_like, layer.initial_state(3, dtype=torch.float64))
    lengths = torch.tensor([4, 1, 3]) if with_lengths else None
    gradcheck_layer(layer, x, state0, lengths=lengths)


def test_layer_gradcheck_packed_input(gradcheck_layer):
    torch.manual_seed(0)
    layer = rnnkit.Recurrent("lstm", 2, 3, bidirectional=True, dtype=torch.float64)
    x = torch.randn(4, 3, 2, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor([2, 4, 3]), enforce_sorted=False)
    # the check perturbs packed.data, so wrap it in the function by building the PackedSequence from data
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def f(data, *ps):
        inp = nn.utils.rnn.PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        out, final = torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (inp,))
        return out.data, final.h, final.c

    inputs = (packed.data.clone().requires_grad_(), *params)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, fast_mode=True)


def test_a_forward_never_imports_torch_dynamo():
    """Checking the state once built it on the meta device with torch.stack, whose Python reference imports
    torch._dynamo: 2.5 s added to the first forward of every process (`rnnkit tag predict`, `lm sample`)."""
    code = (
        "import sys, torch, rnnkit\n"
        "lstm = rnnkit.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)\n"
        "x = torch.zeros(2, 5, 3)\n"
        "lstm(x)\n"
        "lstm(x, (torch.zeros(4, 2, 4), torch.zeros(4, 2, 4)))\n"
        "rnnkit.Recurrent(rnnkit.GRUCell(3, 4))(torch.zeros(5, 2, 3), lengths=torch.tensor([5, 3]))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
