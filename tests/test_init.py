"""Named initialisation schemes (rnnkit.init)."""

import math

import pytest
import torch

import rnnkit
from rnnkit.init import SCHEMES, check_scheme, init_cell

GATED = {"elman": (rnnkit.ElmanCell, 1), "gru": (rnnkit.GRUCell, 3), "lstm": (rnnkit.LSTMCell, 4)}


@pytest.mark.parametrize("kind", GATED)
def test_orthogonal_recurrent_blocks(kind):
    cls, gates = GATED[kind]
    torch.manual_seed(0)
    cell = cls(3, 5, init="orthogonal")
    blocks = cell.weight_hh.split(5)
    assert len(blocks) == gates
    for block in blocks:
        torch.testing.assert_close(block.T @ block, torch.eye(5), atol=1e-5, rtol=0)
        torch.testing.assert_close(block @ block.T, torch.eye(5), atol=1e-5, rtol=0)
    if gates > 1:  # one orthogonal matrix per gate, not one for the stack
        assert not torch.allclose(blocks[0], blocks[1])
    assert not cell.bias_ih.any() and not cell.bias_hh.any()


def test_orthogonal_jordan_feedback_has_orthonormal_columns():
    torch.manual_seed(0)
    cell = rnnkit.JordanCell(3, 6, output_size=2, init="orthogonal")
    W = cell.weight_yh  # (6, 2)
    torch.testing.assert_close(W.T @ W, torch.eye(2), atol=1e-5, rtol=0)
    assert not cell.bias_ih.any() and not cell.bias_hy.any()


@pytest.mark.parametrize("kind", GATED)
def test_identity_blocks_and_zero_biases(kind):
    cls, gates = GATED[kind]
    torch.manual_seed(0)
    cell = cls(3, 4, init="identity")
    assert torch.equal(cell.weight_hh, torch.eye(4).repeat(gates, 1))
    assert not cell.bias_ih.any() and not cell.bias_hh.any()
    assert 0 < cell.weight_ih.abs().max() < 0.01  # N(0, 0.001^2)


def test_identity_blocks_with_projection_are_rectangular_eyes():
    cell = rnnkit.LSTMCell(3, 4, proj_size=2, init="identity")
    assert torch.equal(cell.weight_hh, torch.eye(4, 2).repeat(4, 1))


def test_normal_std_is_about_001():
    torch.manual_seed(0)
    cell = rnnkit.LSTMCell(50, 50, init="normal")
    for w in (cell.weight_ih, cell.weight_hh):  # 10,000 draws each
        assert 0.0095 < w.std().item() < 0.0105
        assert abs(w.mean().item()) < 0.0005
    assert not cell.bias_ih.any() and not cell.bias_hh.any()


def test_xavier_std_is_one_over_sqrt_fan_in():
    torch.manual_seed(0)
    cell = rnnkit.ElmanCell(400, 50, init="xavier")
    assert cell.weight_ih.std().item() == pytest.approx(math.sqrt(1 / 400), rel=0.03)
    assert cell.weight_hh.std().item() == pytest.approx(math.sqrt(1 / 50), rel=0.05)
    assert not cell.bias_ih.any()


def test_uniform_bound_is_one_over_sqrt_hidden():
    torch.manual_seed(0)
    cell = rnnkit.GRUCell(20, 25, init="uniform")
    k = 1 / math.sqrt(25)
    for p in cell.parameters():
        assert p.abs().max().item() <= k
    assert cell.weight_ih.abs().max().item() > 0.95 * k
    assert cell.bias_ih.abs().min().item() < 0.1 * k  # biases drawn too, not zero
    assert cell.bias_ih.any()


def test_lstm_forget_bias_on_a_layer():
    layer = rnnkit.LSTM(3, 4, 2, bidirectional=True, forget_bias=1.0, init="orthogonal")
    for layer_index in (0, 1):
        for sfx in ("", "_reverse"):
            b_ih = getattr(layer, f"bias_ih_l{layer_index}{sfx}")
            b_hh = getattr(layer, f"bias_hh_l{layer_index}{sfx}")
            assert torch.equal(b_ih[4:8], torch.ones(4))
            assert not b_ih[:4].any() and not b_ih[8:].any()
            assert not b_hh.any()


def test_layer_init_reaches_every_cell():
    layer = rnnkit.Recurrent("gru", 3, 4, num_layers=2, bidirectional=True, init="identity")
    for cell in layer.bound_cells():
        assert torch.equal(cell.weight_hh, torch.eye(4).repeat(3, 1))
        assert cell.init == "identity"


def test_reset_parameters_redraws():
    torch.manual_seed(0)
    cell = rnnkit.LSTMCell(3, 4, init="identity")
    cell.reset_parameters("uniform")
    assert not torch.equal(cell.weight_hh, torch.eye(4).repeat(4, 1))
    assert cell.bias_ih.any()
    init_cell(cell, "identity")
    assert torch.equal(cell.weight_hh, torch.eye(4).repeat(4, 1))


def test_check_scheme():
    assert SCHEMES == ("uniform", "normal", "xavier", "orthogonal", "identity")
    for s in SCHEMES:
        assert check_scheme(s) == s
    with pytest.raises(ValueError, match="unknown init scheme 'Orthogonal'"):
        check_scheme("Orthogonal")


# -- forget-gate biases: a constant (Jozefowicz et al. 2015) or chrono (Tallec and Ollivier 2018) ----------


def test_chrono_lstm_forget_bias_is_log_uniform_and_input_gate_its_negative():
    torch.manual_seed(0)
    H, t_max = 4000, 200
    cell = rnnkit.LSTMCell(3, H, forget_bias="chrono", t_max=t_max)
    b_i, b_f = cell.bias_ih[:H], cell.bias_ih[H : 2 * H]
    assert float(b_f.min()) >= 0 and float(b_f.max()) <= math.log(t_max - 1)
    # exp(b_f) ~ U(1, t_max - 1): mean t_max / 2, and a quarter of the units below 1 + (t_max - 2) / 4
    assert float(b_f.exp().mean()) == pytest.approx(t_max / 2, rel=0.03)
    assert float((b_f.exp() < 1 + (t_max - 2) / 4).float().mean()) == pytest.approx(0.25, abs=0.03)
    torch.testing.assert_close(b_i, -b_f)
    assert not cell.bias_hh[: 2 * H].any()  # b_hh of both gates zero, so b_ih is the whole bias
    assert cell.bias_hh[2 * H :].abs().max() > 0  # the other gates keep the default draw


def test_chrono_gru_sets_the_update_gate_only():
    torch.manual_seed(0)
    H = 1000
    cell = rnnkit.GRUCell(3, H, forget_bias="chrono", t_max=50)
    b_z = cell.bias_ih[H : 2 * H]
    assert float(b_z.min()) >= 0 and float(b_z.max()) <= math.log(49) and not cell.bias_hh[H : 2 * H].any()
    k = 1 / math.sqrt(H)
    for rows in (slice(0, H), slice(2 * H, 3 * H)):  # r and n: torch's uniform draw
        assert float(cell.bias_ih[rows].abs().max()) <= k and float(cell.bias_ih[rows].abs().max()) > k / 2
    constant = rnnkit.GRUCell(3, 4, forget_bias=1.0)
    assert constant.bias_ih[4:8].tolist() == [1.0] * 4 and not constant.bias_hh[4:8].any()


def test_chrono_through_the_torch_dropins_and_reset_parameters():
    torch.manual_seed(0)
    lstm = rnnkit.LSTM(3, 50, num_layers=2, bidirectional=True, forget_bias="chrono", t_max=100)
    for name in ("bias_ih_l0", "bias_ih_l1_reverse"):
        b = getattr(lstm, name)
        torch.testing.assert_close(b[:50], -b[50:100])
    before = lstm.bias_ih_l1.detach().clone()
    lstm.reset_parameters()
    after = lstm.bias_ih_l1
    assert not torch.equal(before, after)  # a new draw ...
    torch.testing.assert_close(after[:50], -after[50:100])  # ... with the same scheme
    assert repr(lstm).endswith("forget_bias='chrono', t_max=100)")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"forget_bias": "chrono"}, r"forget_bias='chrono' needs t_max=.* got None"),
        ({"forget_bias": "chrono", "t_max": 2}, r"forget_bias=.chrono. needs t_max=.*an integer > 2.* got 2"),
        ({"t_max": 50}, r"t_max is for forget_bias='chrono', got forget_bias=None"),
        ({"forget_bias": "one"}, r"forget_bias must be a number, 'chrono' or None, got 'one'"),
    ],
)
@pytest.mark.parametrize("cls", [rnnkit.LSTMCell, rnnkit.GRUCell])
def test_forget_bias_errors(cls, kwargs, message):
    with pytest.raises(ValueError, match=f"^{cls.__name__}: {message}"):
        cls(3, 4, **kwargs)
