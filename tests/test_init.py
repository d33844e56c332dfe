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
