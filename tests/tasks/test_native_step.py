"""Generation's step in one native call (rnnkit.tasks.native_step) against the cells' own steps in Python: the
same numbers, the same state in the same form, whichever cells, layers, batch and table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit import native
from rnnkit.tasks import native_step, sampling, stepping
from rnnkit.tasks.lm import LanguageModel, LMConfig
from rnnkit.tasks.stepping import Stepper


@pytest.fixture(autouse=True)
def built(monkeypatch):
    monkeypatch.setenv("RNNKIT_NATIVE", "1")
    if native.load() is None:
        pytest.skip("rnnkit.native is not built (python -m rnnkit.native)")


def lm(cell: str = "lstm", **kw) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(40, LMConfig(cell=cell, hidden=12, layers=2, **kw)).double().eval()


def python_stepper(*args) -> Stepper:
    """The same stepper with the native step off: every cell's step() in Python."""
    stepper = Stepper(*args)
    stepper.native = None
    return stepper


def steps_agree(fast: Stepper, slow: Stepper, inputs: list[torch.Tensor], state=None) -> None:
    """Both steppers through the same steps, from ``state``: equal logits and states, the states of one type."""
    fast_state = slow_state = state
    for x in inputs:
        got, fast_state = fast(x, fast_state)
        want, slow_state = slow(x, slow_state)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        torch.testing.assert_close(fast_state, slow_state, rtol=0, atol=1e-12)  # same structure and types too
        for a, b in zip(fast_state, slow_state, strict=True):
            assert type(a) is type(b)


NATIVE_CELLS = ["lstm", "gru", "rnn", "irnn", "jordan", "scrn", "clockwork", "mingru", "minlstm"]


def test_the_native_step_runs_every_cell():
    for cell in NATIVE_CELLS:
        stepper = lm(cell).stepper()
        assert stepper.native is not None and stepper.native.table is not None
    softmax = nn.ModuleList([rnnkit.Recurrent(rnnkit.JordanCell, 6, 5, output_size=4, output_activation="softmax")])
    assert Stepper(softmax, nn.Linear(4, 3)).native is None  # an activation the kernels do not have


@pytest.mark.parametrize("cell", NATIVE_CELLS)
def test_language_model_steps_equal_the_cells_steps_with_and_without_the_table(cell, monkeypatch):
    model = lm(cell)
    args = (model.layers, model.decoder, model.embedding)
    torch.manual_seed(1)
    ids = [torch.tensor([[3, 3, 17]]), torch.tensor([[0, 39, 3]]), torch.tensor([[5, 5, 5]])]  # repeated words
    steps_agree(Stepper(*args), python_stepper(*args), ids)
    with torch.no_grad():
        _, state = model(torch.randint(0, 40, (4, 3)))  # from the model's own state, not zeros
    steps_agree(Stepper(*args), python_stepper(*args), ids, state)
    monkeypatch.setattr(native_step, "TABLE_MAX_BYTES", 0)
    untabled = Stepper(*args)
    assert untabled.native is not None and untabled.native.table is None
    steps_agree(untabled, python_stepper(*args), ids, state)


LAYERS = [
    "residual",
    "drop-in",
    "gru drop-in",
    "rnn drop-in",
    "gru, elman and lstm",
    "hard_sigmoid",
    "identity",
    "jordan",
    "scrn",
    "clockwork",
    "min cells",
]


@pytest.mark.parametrize("layer", LAYERS)
def test_feature_models_step_like_their_cells(layer):
    """No embedding (music's models): stacked residual layers, torch's drop-ins (their states a tuple and a bare
    h), GRU, Elman and LSTM layers in one model, and cells with other activations."""
    torch.manual_seed(0)
    if layer == "residual":
        layers = [rnnkit.Recurrent(rnnkit.LSTMCell, 6, 6, num_layers=3, residual=True)]
    elif layer == "drop-in":
        layers = [rnnkit.LSTM(6, 5, num_layers=2), rnnkit.LSTM(5, 6)]
    elif layer == "gru drop-in":
        layers = [rnnkit.GRU(6, 5, num_layers=2), rnnkit.GRU(5, 6, bias=False)]
    elif layer == "rnn drop-in":
        layers = [rnnkit.RNN(6, 5, num_layers=2, nonlinearity="relu"), rnnkit.RNN(5, 6)]
    elif layer == "gru, elman and lstm":
        gru = rnnkit.Recurrent(rnnkit.GRUCell, 6, 5, num_layers=2, residual=True)
        layers = [gru, rnnkit.Recurrent(rnnkit.ElmanCell, 5, 5, bias=False), rnnkit.LSTM(5, 6)]
    elif layer == "jordan":  # output size 4 fed back, sigmoid outputs, stacked with an LSTM
        jordan = rnnkit.Recurrent(rnnkit.JordanCell, 6, 5, num_layers=2, output_size=4, output_activation="sigmoid")
        layers = [jordan, rnnkit.LSTM(4, 6)]
    elif layer == "scrn":  # output [h; s] of 5 + 3, residual, stacked with a GRU
        layers = [rnnkit.SCRN(6, 5, num_layers=2, context_size=3, alpha=0.9, residual=True), rnnkit.GRU(8, 6)]
    elif layer == "clockwork":  # periods 1, 2, 4: the first modules tick, or all, or (periods 2, 3) out of order
        layers = [rnnkit.Clockwork(6, 6, periods=[1, 2, 4]), rnnkit.Clockwork(6, 6, num_layers=2, periods=[2, 3])]
    elif layer == "min cells":
        layers = [rnnkit.Recurrent(rnnkit.MinGRUCell, 6, 5, num_layers=2, residual=True), rnnkit.MinLSTM(5, 6)]
    elif layer == "identity":
        layers = [rnnkit.Recurrent(rnnkit.ElmanCell, 6, 6, num_layers=2, nonlinearity="identity")]
    else:
        layers = [rnnkit.Recurrent(rnnkit.LSTMCell, 6, 6, recurrent_activation="hard_sigmoid", activation="relu")]
    args = (nn.ModuleList(layers).double(), nn.Linear(6, 4).double())
    fast = Stepper(*args)
    assert fast.native is not None
    inputs = [torch.randn(1, 2, 6, dtype=torch.float64) for _ in range(7)]
    steps_agree(fast, python_stepper(*args), inputs)


def test_sequences_and_other_cells_keep_the_python_steps():
    model = lm()
    stepper = model.stepper()
    ids = torch.randint(0, 40, (5, 2))
    with torch.no_grad():
        torch.testing.assert_close(stepper(ids)[0], model(ids)[0], rtol=0, atol=1e-12)  # T > 1: the cells' loops
    torch.manual_seed(0)
    projected = nn.ModuleList([rnnkit.LSTM(6, 8, proj_size=3)])
    assert Stepper(projected, nn.Linear(3, 4)).native is None  # a projection: the cells' steps
    reset_before = nn.ModuleList([rnnkit.Recurrent(rnnkit.GRUCell, 6, 8, reset_after=False)])
    assert Stepper(reset_before, nn.Linear(8, 4)).native is None


@pytest.mark.parametrize("cell", NATIVE_CELLS)
def test_float32_samples_are_the_same_through_either_step(cell):
    torch.manual_seed(0)
    # peaked distributions; Elman and Jordan cells at 0.5 are chaotic (float32 rounding grows to O(1) in 40 steps)
    scale = 0.5 if cell in ("lstm", "gru") else 0.1
    model = LanguageModel(300, LMConfig(cell=cell, hidden=64, layers=2, init_range=scale)).eval()
    args = (model.layers, model.decoder, model.embedding)
    draws = []
    for step in (Stepper(*args), python_stepper(*args), model.step):
        g = torch.Generator().manual_seed(5)
        draws.append(sampling.generate(step, [1, 2], max_length=200, banned=[0], generator=g))
    assert draws[0] == draws[1] == draws[2]
    assert len(set(draws[0])) > 20


@pytest.mark.parametrize("cell", NATIVE_CELLS)
def test_a_state_of_the_wrong_size_is_named(cell):
    model = lm(cell)
    with torch.no_grad():
        _, (first, second) = model(torch.tensor([[1]]))
    if isinstance(second, torch.Tensor):  # torch's drop-in GRU and RNN: h alone
        wrong = (first, second[..., :-1])
    else:
        wrong = (first, type(second)(*(t[..., :-1] for t in second)))
    with pytest.raises(RuntimeError, match=r"layer 1's state must be \(1, 1, 12\), got \[1, 1, 11\]"):
        model.stepper()(torch.tensor([[1]]), wrong)


@pytest.mark.parametrize("cell", NATIVE_CELLS)
def test_column_blocks_are_multiplied_as_in_python(cell, monkeypatch):
    """Where rnnkit.tasks.stepping lays the large matrices out in column blocks (ParallelMatrix), the native step
    multiplies over the blocks as Python does, at a few rows, and over the plain matrix at more."""
    monkeypatch.setattr(stepping, "blocks_pay", lambda *shape: True)
    monkeypatch.setattr(stepping, "PARALLEL_MIN_SIZE", 1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    model = lm(cell)
    args = (model.layers, model.decoder, model.embedding)
    fast = Stepper(*args)
    assert fast.native is not None and isinstance(fast.head_weight, stepping.ParallelMatrix)
    assert all(b is not None for blocks in fast.native.blocks for b in blocks)
    for rows in (2, stepping.SMALL_BATCH + 1):
        steps_agree(fast, python_stepper(*args), [torch.randint(0, 40, (1, rows)) for _ in range(3)])
