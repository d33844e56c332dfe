"""The generation step (rnnkit.tasks.stepping) against the models' own forward: same numbers, same state,
same samples, for every cell."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rnnkit
from rnnkit.cells import CELLS
from rnnkit.errors import RnnkitError
from rnnkit.tasks import sampling, stepping
from rnnkit.tasks.lm import LanguageModel, LMConfig
from rnnkit.tasks.music import MusicConfig, MusicModel
from rnnkit.tasks.stepping import ParallelMatrix, Stepper, fast_layout, transposed_layout


def lm(cell: str, **kw) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(40, LMConfig(cell=cell, hidden=12, layers=2, **kw))


@pytest.mark.parametrize("cell", list(CELLS))
def test_stepper_equals_the_models_forward_and_shares_its_state(cell):
    model = lm(cell).double().eval()
    stepper = model.stepper()
    ids = torch.randint(0, 40, (6, 3))
    with torch.no_grad():
        want, want_state = model(ids)
        got, got_state = stepper(ids)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        torch.testing.assert_close(got_state, want_state, rtol=0, atol=1e-12)
        # either path continues the other's state
        more = torch.randint(0, 40, (1, 3))
        torch.testing.assert_close(stepper(more, want_state)[0], model(more, got_state)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", list(CELLS))
def test_sampling_draws_the_same_tokens_through_either_path(cell):
    model = lm(cell, init_range=0.5).eval()  # large weights: peaked distributions, so a wrong logit shows
    draws = []
    for step in (model.step, model.stepper()):
        g = torch.Generator().manual_seed(3)
        draws.append(sampling.generate(step, [1, 5, 7], max_length=40, banned=[0], generator=g))
    assert draws[0] == draws[1]
    assert len(set(draws[0])) > 3  # a real sample, not one token repeated


def test_stepper_computes_eval_mode_even_on_a_training_model():
    model = lm("lstm", dropout=0.5, weight_drop=0.5, embed_dropout=0.3, variational=True).double()
    ids = torch.randint(0, 40, (4, 2))
    got, _ = model.stepper()(ids)
    with torch.no_grad():
        want, _ = model.eval()(ids)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_stepper_is_kept_until_a_weight_changes():
    model = lm("gru").eval()
    first = model.stepper()
    assert model.stepper() is first
    ids = torch.tensor([[3]])
    before = first(ids)[0]
    with torch.no_grad():
        model.layers[0].weight_ih_l0.add_(0.5)  # in place, as an optimizer step or dynamic evaluation
    second = model.stepper()
    assert second is not first
    assert not torch.allclose(second(ids)[0], before)
    with torch.no_grad():
        torch.testing.assert_close(second(ids)[0], model(ids)[0], rtol=0, atol=1e-6)
    model.load_state_dict(lm("gru").state_dict())  # new tensors' values copied in place: a new version
    with torch.no_grad():
        torch.testing.assert_close(model.stepper()(ids)[0], model(ids)[0], rtol=0, atol=1e-6)


def test_stacked_residual_layer_steps_like_its_reference_loop():
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(rnnkit.LSTMCell, 8, 8, num_layers=3, residual=True).double()
    head = nn.Linear(8, 5).double()
    x = torch.randn(7, 2, 8, dtype=torch.float64)
    with torch.no_grad():
        out, state = layer(x)
        want = head(out)
    got, (got_state,) = Stepper(nn.ModuleList([layer]), head)(x)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    torch.testing.assert_close(got_state, state, rtol=0, atol=1e-12)


def test_bidirectional_layer_cannot_step():
    layer = rnnkit.GRU(4, 4, bidirectional=True)
    with pytest.raises(RnnkitError, match="bidirectional layer cannot generate one step at a time"):
        Stepper(nn.ModuleList([layer]), nn.Linear(8, 3))


@pytest.mark.parametrize("cell", ["lstm", "clockwork"])
def test_music_generation_follows_the_models_forward(cell):
    torch.manual_seed(0)
    model = MusicModel(MusicConfig(cell=cell, hidden=16, layers=2)).eval()
    seed = (torch.rand(5, 88) < 0.1).float()
    got = model.generate(seed, 12, temperature=0)
    rows, state = [seed], None
    with torch.no_grad():  # the reference: the model's own forward, one step at a time
        logits, state = model(seed.unsqueeze(1))
        for _ in range(12):
            step = (logits[-1, 0] > 0).float()
            rows.append(step.unsqueeze(0))
            logits, state = model(step.view(1, 1, 88), state)
    torch.testing.assert_close(got, torch.cat(rows))


def test_transposed_layout_keeps_values_and_changes_strides():
    w = torch.randn(5, 3)
    v = transposed_layout(w)
    assert torch.equal(v, w) and v.stride() == (1, 5)
    b = torch.randn(5)
    assert transposed_layout(b) is b


@pytest.fixture
def two_threads(monkeypatch):
    """Two torch threads, and the column blocks taken wherever they may be (not only where they are faster)."""
    monkeypatch.setattr(stepping, "blocks_pay", lambda *shape: True)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_the_blocks_are_taken_where_measured_faster(monkeypatch):
    """fast_layout asks blocks_pay, which measures once per shape, dtype and thread count and caches the answer."""
    assert stepping.blocks_pay(256, 512, torch.float32, 2) in (True, False)
    before = stepping.blocks_pay.cache_info()
    stepping.blocks_pay(256, 512, torch.float32, 2)
    assert stepping.blocks_pay.cache_info().hits == before.hits + 1 and stepping.blocks_pay.cache_info().misses == (
        before.misses
    )
    w = torch.randn(1000, 300)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    for pays in (True, False):
        monkeypatch.setattr(stepping, "blocks_pay", lambda *shape, pays=pays: pays)
        assert (type(fast_layout(w)) is ParallelMatrix) == pays
        assert fast_layout(w).stride() == (1, 1000)  # transposed either way


def test_parallel_matrix_products_equal_plain_ones_and_other_ops_see_the_matrix(two_threads):
    torch.manual_seed(0)
    w, b = torch.randn(1001, 300, dtype=torch.float64), torch.randn(1001, dtype=torch.float64)  # 1001: uneven blocks
    p = ParallelMatrix(w, 3)
    assert p.blocks.shape == (3, 300, 334)
    for rows in [(1, 300), (4, 300), (1, 2, 300), (40, 300)]:  # 40 rows: the plain product
        x = torch.randn(*rows, dtype=torch.float64)
        torch.testing.assert_close(F.linear(x, p, b), F.linear(x, w, b), rtol=0, atol=1e-12)
        torch.testing.assert_close(F.linear(x, p), F.linear(x, w), rtol=0, atol=1e-12)
    doubled = p * 2  # any other operation: the plain matrix, a plain result
    assert type(doubled) is torch.Tensor and torch.equal(doubled, w * 2)
    assert type(fast_layout(w)) is ParallelMatrix and type(fast_layout(w[:10, :10])) is torch.Tensor


@pytest.mark.parametrize("cell", ["lstm", "gru", "clockwork", "scrn"])
def test_stepper_with_parallel_matrices_equals_the_models_forward(cell, two_threads):
    torch.manual_seed(0)
    model = LanguageModel(600, LMConfig(cell=cell, hidden=256, layers=2)).double().eval()
    stepper = model.stepper()
    assert isinstance(stepper.head_weight, ParallelMatrix)
    ids = torch.randint(0, 600, (3, 2))
    with torch.no_grad():
        want, state = model(ids)
        got, got_state = stepper(ids)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
        more = torch.randint(0, 600, (1, 2))
        torch.testing.assert_close(stepper(more, state)[0], model(more, got_state)[0], rtol=0, atol=1e-10)
