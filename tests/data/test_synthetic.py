"""The adding problem and the copy-memory task: layout, targets, baselines and seeding."""

import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.data.synthetic import ADDING_BASELINE_MSE, adding_problem, copy_memory, copy_memory_baseline
from rnnkit.errors import RnnkitError


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_adding_shapes_and_value_range():
    x, y = adding_problem(100, 16, generator=seeded(0))
    assert x.shape == (100, 16, 2) and y.shape == (16,)
    assert x.dtype == y.dtype == torch.float32
    values = x[..., 0]
    assert bool((values >= 0).all()) and bool((values < 1).all())


@pytest.mark.parametrize("T", [2, 3, 10, 101])
def test_adding_has_exactly_two_markers_one_in_each_half(T):
    x, _ = adding_problem(T, 500, generator=seeded(T))
    markers = x[..., 1]
    assert set(markers.unique().tolist()) <= {0.0, 1.0}
    assert markers.sum(0).tolist() == [2.0] * 500
    half = T // 2
    assert markers[:half].sum(0).tolist() == [1.0] * 500  # one in steps 0 .. T//2 - 1
    assert markers[half:].sum(0).tolist() == [1.0] * 500  # one in steps T//2 .. T-1


def test_adding_marker_positions_cover_each_half():
    T, B = 20, 4000
    x, _ = adding_problem(T, B, generator=seeded(1))
    t, _ = x[..., 1].nonzero(as_tuple=True)
    counts = torch.bincount(t, minlength=T)
    assert bool((counts > 0).all())  # every step can hold a marker
    assert counts[:10].sum() == counts[10:].sum() == B


def test_adding_target_is_the_sum_of_the_two_marked_values():
    x, y = adding_problem(50, 64, generator=seeded(2))
    for b in range(64):
        (t,) = x[:, b, 1].nonzero(as_tuple=True)
        assert len(t) == 2
        assert y[b].item() == pytest.approx(x[t[0], b, 0].item() + x[t[1], b, 0].item(), abs=1e-6)


def test_adding_baseline_mse_of_answering_one():
    _, y = adding_problem(10, 100_000, generator=seeded(3))
    assert F.mse_loss(torch.ones_like(y), y).item() == pytest.approx(ADDING_BASELINE_MSE, abs=0.005)
    assert pytest.approx(1 / 6) == ADDING_BASELINE_MSE


def test_seeded_batches_repeat_and_differ_between_seeds():
    a, b, c = (adding_problem(30, 8, generator=seeded(s)) for s in (7, 7, 8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    d, e, f = (copy_memory(30, 8, generator=seeded(s)) for s in (7, 7, 8))
    assert torch.equal(d[0], e[0]) and torch.equal(d[1], e[1])
    assert not torch.equal(d[0], f[0])


def test_copy_memory_layout_by_hand():
    T, B = 5, 3
    x, y = copy_memory(T, B, generator=seeded(4))
    assert x.shape == y.shape == (T + 20, B) and x.dtype == y.dtype == torch.long
    data = x[:10]
    assert bool((data >= 1).all()) and bool((data <= 8).all())
    assert x[10 : T + 9].eq(0).all() and x[T + 9].eq(9).all() and x[T + 10 :].eq(0).all()
    assert y[: T + 10].eq(0).all()
    assert torch.equal(y[T + 10 :], data)  # the 10 symbols, in order, after the delimiter


def test_copy_memory_symbol_counts():
    x, y = copy_memory(40, 200, num_symbols=4, num_categories=3, generator=seeded(5))
    assert x.shape == (48, 200)
    assert set(x[:4].unique().tolist()) == {1, 2, 3}
    assert x.eq(4).sum(0).tolist() == [1] * 200  # one delimiter, at step T + num_symbols - 1
    assert x[43].eq(4).all()
    assert torch.equal(y[44:], x[:4])


def test_copy_memory_baseline_is_the_memoryless_cross_entropy():
    T = 50
    _, y = copy_memory(T, 8, generator=seeded(6))
    logits = torch.full((T + 20, 8, 9), -math.inf)
    logits[: T + 10, :, 0] = 0.0  # blank, certainly, until the recall
    logits[T + 10 :, :, 1:] = 0.0  # then uniform over the 8 data symbols
    ce = F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()
    assert ce == pytest.approx(copy_memory_baseline(T), rel=1e-6)
    assert copy_memory_baseline(T) == pytest.approx(10 * math.log(8) / 70)


@pytest.mark.parametrize(
    "call",
    [
        lambda: adding_problem(1, 4),
        lambda: adding_problem(10, 0),
        lambda: copy_memory(0, 4),
        lambda: copy_memory(5, 4, num_symbols=0),
    ],
)
def test_bad_sizes_raise(call):
    with pytest.raises(RnnkitError):
        call()
