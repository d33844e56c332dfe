"""Bad input raises ValueError naming what was expected and what came."""

import re

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from rnnkit.errors import RnnkitError


@pytest.fixture
def lstm():
    return rnnkit.Recurrent("lstm", 3, 4, num_layers=2)


@pytest.fixture(params=["recurrent", "compat-auto", "compat-loop"])
def any_layer(request):
    if request.param == "recurrent":
        return rnnkit.Recurrent("gru", 3, 4)
    return rnnkit.GRU(3, 4, fused="auto" if request.param == "compat-auto" else False)


def test_wrong_feature_size(any_layer):
    name = type(any_layer).__name__
    want = rf"^{name}: input.size\(-1\) must be equal to input_size. Expected 3, got 5 \(input \(6, 2, 5\)\)$"
    with pytest.raises(RuntimeError, match=want) as caught:  # torch's class and wording, and a ValueError
        any_layer(torch.randn(6, 2, 5))
    assert isinstance(caught.value, ValueError)


def test_wrong_feature_size_batch_first_and_packed():
    layer = rnnkit.Recurrent("gru", 3, 4, batch_first=True)
    with pytest.raises(ValueError, match=r"Expected 3, got 2 \(input \(2, 6, 2\)\)"):
        layer(torch.randn(2, 6, 2))
    packed = pack_padded_sequence(torch.randn(6, 2, 5), [6, 3])
    with pytest.raises(ValueError, match=r"Expected 3, got 5 \(input \(9, 5\)\)"):
        layer(packed)


@pytest.mark.parametrize("shape", [(3,), (2, 2, 2, 3)])
def test_wrong_input_rank(shape):
    layer = rnnkit.Recurrent("gru", 3, 4)
    want = f"Recurrent: Expected input to be 2D or 3D, got {len(shape)}D {shape} instead: "
    want = re.escape(want + "pass (T, B, input_size) or (T, input_size)")
    with pytest.raises(ValueError, match=f"^{want}$"):
        layer(torch.randn(*shape))


def test_non_tensor_input():
    layer = rnnkit.Recurrent("gru", 3, 4, batch_first=True)
    with pytest.raises(
        ValueError, match=r"Expected input to be 2D or 3D, got list instead: pass \(B, T, input_size\) or \(T, input_"
    ):
        layer([[1.0, 2.0, 3.0]])


def test_wrong_state_shape(lstm):
    x = torch.randn(5, 2, 3)
    h, c = torch.zeros(2, 2, 4), torch.zeros(2, 2, 4)
    with pytest.raises(
        ValueError,
        match=r"^Recurrent: Expected hidden\[0\] size \(2, 2, 4\), got \[1, 2, 4\]: state h is \(num_layers \* num_dir",
    ):
        lstm(x, rnnkit.LSTMState(torch.zeros(1, 2, 4), c))
    with pytest.raises(ValueError, match=r"Expected hidden\[1\] size \(2, 2, 4\), got \[2, 3, 4\]: state c is"):
        lstm(x, (h, torch.zeros(2, 3, 4)))
    with pytest.raises(ValueError, match=r"Expected hidden\[1\] size \(2, 2, 4\), got list: state c is"):
        lstm(x, (h, [0.0]))


def test_wrong_number_of_state_fields(lstm):
    x = torch.randn(5, 2, 3)
    h = torch.zeros(2, 2, 4)
    with pytest.raises(ValueError, match=r"expected a state with fields \('h', 'c'\), got a tuple of 1"):
        lstm(x, (h,))
    with pytest.raises(ValueError, match=r"expected a state with fields \('h', 'c'\), got a tuple of 3"):
        lstm(x, (h, h, h))
    with pytest.raises(ValueError, match=r"expected a state with fields \('h', 'c'\), got a tuple of 1"):
        lstm(x, h)  # a bare tensor counts as a one-field state
    with pytest.raises(ValueError, match=r"expected a state with fields \('h', 'c'\), got dict"):
        lstm(x, {"h": h, "c": h})


def test_compat_lstm_hx_errors():
    lstm = rnnkit.LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    want = (
        r"For batched 3-D input, hx should also be 3-D but got 2-D tensor: expected state h of shape \(1, 2, 4\), got"
    )
    with pytest.raises(RuntimeError, match=want + r" \(1, 4\)"):
        lstm(x, (torch.zeros(1, 4), torch.zeros(1, 2, 4)))
    gru = rnnkit.GRU(3, 4)
    with pytest.raises(RuntimeError, match=r"^GRU: Expected hidden size \(1, 2, 4\), got \[2, 2, 4\]: state h is"):
        gru(x, torch.zeros(2, 2, 4))


def test_unbatched_state_shape():
    layer = rnnkit.Recurrent("gru", 3, 4)
    with pytest.raises(ValueError, match=r"Expected hidden size \(1, 1, 4\), got \[1, 1, 5\]"):
        layer(torch.randn(5, 3), torch.zeros(1, 5))


@pytest.mark.parametrize(("lengths", "low", "high"), [([5, 0], 0, 5), ([6, 2], 2, 6), ([-1, 3], -1, 3)])
def test_lengths_outside_range(any_layer, lengths, low, high):
    with pytest.raises(
        ValueError, match=rf"expected lengths in 1\.\.5 \(the padded length\), got values from {low} to {high}"
    ):
        any_layer(torch.randn(5, 2, 3), lengths=lengths)


def test_lengths_count_mismatch(any_layer):
    with pytest.raises(ValueError, match=r"got 3 lengths for a batch of 2 sequences"):
        any_layer(torch.randn(5, 2, 3), lengths=[5, 4, 3])
    with pytest.raises(ValueError, match=r"got 0 lengths for a batch of 2 sequences"):
        any_layer(torch.randn(5, 2, 3), lengths=torch.tensor([], dtype=torch.long))


@pytest.mark.parametrize(
    ("lengths", "described"),
    [
        ([2.5, 3.0], r"a tensor of shape \(2,\) and dtype torch.float32"),
        (torch.tensor([True, True]), r"a tensor of shape \(2,\) and dtype torch.bool"),
        (torch.tensor(3), r"a tensor of shape \(\) and dtype torch.int64"),
        (torch.tensor([[3, 2]]), r"a tensor of shape \(1, 2\)"),
    ],
    ids=["float", "bool", "scalar", "2-d"],
)
def test_non_integer_lengths(any_layer, lengths, described):
    with pytest.raises(ValueError, match=rf"expected lengths as a 1-D integer tensor of size 2, got {described}"):
        any_layer(torch.randn(5, 2, 3), lengths=lengths)


def test_empty_batch_gives_empty_output_as_torch(any_layer):
    x = torch.randn(5, 0, 3, requires_grad=True)
    out, h = any_layer(x)
    h = h if isinstance(h, torch.Tensor) else h.h  # Recurrent returns the cell's state, GRU torch's tensor
    assert out.shape == (5, 0, 4) and h.shape == (1, 0, 4)
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_zero_length_sequences(any_layer):
    with pytest.raises(
        RuntimeError, match=r"Expected sequence length to be larger than 0 in RNN \(input \(0, 2, 3\)\)"
    ):
        any_layer(torch.randn(0, 2, 3))
    with pytest.raises(ValueError, match=r"Expected sequence length to be larger than 0 in RNN \(input \(0, 3\)\)"):
        any_layer(torch.randn(0, 3))


def test_zero_length_batch_first():
    layer = rnnkit.Recurrent("gru", 3, 4, batch_first=True)
    with pytest.raises(ValueError, match=r"larger than 0 in RNN \(input \(2, 0, 3\)\)"):
        layer(torch.randn(2, 0, 3))


def test_lengths_with_packed_sequence(any_layer):
    packed = pack_padded_sequence(torch.randn(5, 2, 3), [5, 3])
    with pytest.raises(ValueError, match=r"pass either a PackedSequence or lengths=, not both"):
        any_layer(packed, lengths=[5, 3])


# -- constructors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("num_layers", "error", "message"),
    [
        (0, ValueError, "num_layers must be greater than zero, got 0"),
        (-1, ValueError, "num_layers must be greater than zero, got -1"),
        (1.5, TypeError, "num_layers should be of type int, got: float"),
        (True, TypeError, "num_layers should be of type int, got: bool"),
    ],
)
def test_bad_num_layers(num_layers, error, message):
    with pytest.raises(error, match=f"^Recurrent: {message}$"):
        rnnkit.Recurrent("lstm", 3, 4, num_layers)
    with pytest.raises(error, match=f"^LSTM: {message}$"):
        rnnkit.LSTM(3, 4, num_layers)


@pytest.mark.parametrize("dropout", [1.5, -0.1, "0.5", True])
def test_bad_dropout(dropout):
    torch_words = (
        r"dropout should be a number in range \[0, 1\] representing the probability of an element being zeroed"
    )
    with pytest.raises(ValueError, match=rf"{torch_words}, got {dropout!r}"):
        rnnkit.Recurrent("lstm", 3, 4, 2, dropout=dropout)
    with pytest.raises(ValueError, match=rf"GRU: {torch_words}, got {dropout!r}"):
        rnnkit.GRU(3, 4, 2, dropout=dropout)


def test_unknown_cell_name():
    with pytest.raises(ValueError, match=r"unknown cell 'lstmm': choose one of rnn, elman, irnn, jordan, gru, lstm"):
        rnnkit.Recurrent("lstmm", 3, 4)
    with pytest.raises(ValueError, match=r"unknown cell 42"):
        rnnkit.Recurrent(42, 3, 4)


def test_missing_sizes_with_a_cell_name():
    with pytest.raises(ValueError, match=r"input_size and hidden_size are required"):
        rnnkit.Recurrent("gru", 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.Recurrent("lstm", 3, 4, activation="sigmoidd"),
        lambda: rnnkit.Recurrent("rnn", 3, 4, nonlinearity="sigmoidd"),
        lambda: rnnkit.GRU(3, 4, recurrent_activation="sigmoidd"),
        lambda: rnnkit.JordanCell(3, 4, output_size=2, output_activation="sigmoidd"),
    ],
    ids=["lstm", "rnn", "gru", "jordan"],
)
def test_unknown_activation(make):
    with pytest.raises(ValueError, match=r"unknown activation 'sigmoidd': choose one of .*hard_sigmoid.*tanh"):
        make()


def test_unknown_nonlinearity_of_the_torch_dropin():
    """torch.nn.RNN's wording ("Unknown nonlinearity 'x'. Select from 'tanh' or 'relu'"), then rnnkit's others."""
    want = (
        r"^RNN: Unknown nonlinearity 'sigmoidd'. Select from 'tanh' or 'relu' \(torch's fused kernels\) or .*identity"
    )
    with pytest.raises(ValueError, match=want):
        rnnkit.RNN(3, 4, nonlinearity="sigmoidd")


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.Recurrent("gru", 3, 4, init="he"),
        lambda: rnnkit.LSTM(3, 4, init="he"),
        lambda: rnnkit.ElmanCell(3, 4, init="he"),
        lambda: rnnkit.LSTMCell(3, 4).reset_parameters("he"),
    ],
)
def test_unknown_init_scheme(make):
    with pytest.raises(
        ValueError, match=r"unknown init scheme 'he': choose one of uniform, normal, xavier, orthogonal"
    ):
        make()


@pytest.mark.parametrize("kwargs", [{"num_layers": 2}, {"bidirectional": True}, {"nonlinearity": "relu"}])
def test_cell_instance_makes_one_one_way_layer(kwargs):
    cell = rnnkit.ElmanCell(3, 4)
    with pytest.raises(ValueError, match=r"a cell instance makes a single one-way layer.*pass the cell class"):
        rnnkit.Recurrent(cell, **kwargs)


def test_rnnkit_error_is_a_value_error():
    assert issubclass(RnnkitError, ValueError)
