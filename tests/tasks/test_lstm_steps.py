"""Generation's LSTM step in one native call (rnnkit.tasks.lstm_steps) against the cells' own steps in Python:
the same numbers, the same state in the same form, whichever layers, batch and table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit import native
from rnnkit.tasks import lstm_steps, sampling
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


def test_the_native_step_runs_lstm_models_only():
    model = lm()
    assert model.stepper().native is not None and model.stepper().native.table is not None
    assert lm(cell="gru").stepper().native is None
    assert lm(cell="elman").stepper().native is None


def test_language_model_steps_equal_the_cells_steps_with_and_without_the_table(monkeypatch):
    model = lm()
    args = (model.layers, model.decoder, model.embedding)
    torch.manual_seed(1)
    ids = [torch.tensor([[3, 3, 17]]), torch.tensor([[0, 39, 3]]), torch.tensor([[5, 5, 5]])]  # repeated words
    steps_agree(Stepper(*args), python_stepper(*args), ids)
    with torch.no_grad():
        _, state = model(torch.randint(0, 40, (4, 3)))  # from the model's own state, not zeros
    steps_agree(Stepper(*args), python_stepper(*args), ids, state)
    monkeypatch.setattr(lstm_steps, "TABLE_MAX_BYTES", 0)
    untabled = Stepper(*args)
    assert untabled.native is not None and untabled.native.table is None
    steps_agree(untabled, python_stepper(*args), ids, state)


@pytest.mark.parametrize("layer", ["residual", "drop-in", "hard_sigmoid"])
def test_feature_models_step_like_their_cells(layer):
    """No embedding (music's models): stacked residual layers, torch's drop-in (its state a plain tuple), and an
    LSTM with other activations."""
    torch.manual_seed(0)
    if layer == "residual":
        layers = [rnnkit.Recurrent(rnnkit.LSTMCell, 6, 6, num_layers=3, residual=True)]
    elif layer == "drop-in":
        layers = [rnnkit.LSTM(6, 5, num_layers=2), rnnkit.LSTM(5, 6)]
    else:
        layers = [rnnkit.Recurrent(rnnkit.LSTMCell, 6, 6, recurrent_activation="hard_sigmoid", activation="relu")]
    args = (nn.ModuleList(layers).double(), nn.Linear(6, 4).double())
    fast = Stepper(*args)
    assert fast.native is not None
    inputs = [torch.randn(1, 2, 6, dtype=torch.float64) for _ in range(4)]
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


def test_float32_samples_are_the_same_through_either_step():
    torch.manual_seed(0)
    model = LanguageModel(300, LMConfig(cell="lstm", hidden=64, layers=2, init_range=0.5)).eval()
    args = (model.layers, model.decoder, model.embedding)
    draws = []
    for step in (Stepper(*args), python_stepper(*args), model.step):
        g = torch.Generator().manual_seed(5)
        draws.append(sampling.generate(step, [1, 2], max_length=200, banned=[0], generator=g))
    assert draws[0] == draws[1] == draws[2]
    assert len(set(draws[0])) > 20


def test_a_state_of_the_wrong_size_is_named():
    model = lm()
    with torch.no_grad():
        _, (first, second) = model(torch.tensor([[1]]))
    wrong = (first, type(second)(*(t[..., :-1] for t in second)))
    with pytest.raises(RuntimeError, match=r"layer 1's state must be \(1, 1, 12\), got \[1, 1, 11\]"):
        model.stepper()(torch.tensor([[1]]), wrong)
