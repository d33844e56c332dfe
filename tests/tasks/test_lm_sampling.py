"""Sampling: top-k / top-p filtering on hand examples, banned ids, temperature, seeds, stopping."""

import contextlib
import math
import warnings
from pathlib import Path

import pytest
import torch

from rnnkit import native
from rnnkit.config import build
from rnnkit.data import Vocabulary, tokenize
from rnnkit.errors import RnnkitError
from rnnkit.tasks import sampling
from rnnkit.tasks.lm import LanguageModel, LMConfig
from rnnkit.tasks.lm_run import LMDataConfig, LMRun
from rnnkit.tasks.sampling import check_sampling, draw, filter_logits, generate, sample_next
from rnnkit.train.config import TrainConfig

NEG = float("-inf")


def kept(logits: torch.Tensor) -> list[int]:
    return [i for i, v in enumerate(logits.tolist()) if v != NEG]


PROBS = torch.tensor([0.5, 0.3, 0.15, 0.05])


@pytest.mark.parametrize(
    ("top_p", "expected"),
    [
        (0.45, [0]),  # the top token alone reaches 0.45
        (0.7, [0, 1]),  # 0.5 < 0.7 <= 0.8
        (0.79, [0, 1]),
        (0.81, [0, 1, 2]),  # 0.8 < 0.81 <= 0.95
        (0.9, [0, 1, 2]),
        (0.96, [0, 1, 2, 3]),
        (1.0, [0, 1, 2, 3]),
    ],
)
def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(top_p, expected):
    logits = PROBS.log()
    out = filter_logits(logits, top_p=top_p)
    assert kept(out) == expected
    assert torch.equal(out[expected], logits[expected])  # the kept logits are unchanged


def test_top_p_works_on_unsorted_logits_and_batches():
    order = [2, 0, 3, 1]  # ids of 0.15, 0.5, 0.05, 0.3
    logits = PROBS[order].log().unsqueeze(0).repeat(2, 1)
    logits[1] = PROBS.log()
    out = filter_logits(logits, top_p=0.7)
    assert kept(out[0]) == [1, 3] and kept(out[1]) == [0, 1]


def test_top_k_and_banned_ids():
    logits = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    assert kept(filter_logits(logits, top_k=2)) == [0, 1]
    assert kept(filter_logits(logits, top_k=10)) == [0, 1, 2, 3, 4]
    assert kept(filter_logits(logits, banned=[0, 3])) == [1, 2, 4]
    assert kept(filter_logits(logits, top_k=2, banned=[0])) == [1, 2]  # the k best of what may be drawn
    both = filter_logits(torch.tensor([0.0, 3.0, 2.0, 1.0]), top_k=3, top_p=0.5)
    assert kept(both) == [1]
    original = logits.clone()
    filter_logits(logits, top_k=1, banned=[4])
    assert torch.equal(logits, original)  # the input is not modified


def test_banned_ids_are_never_drawn():
    logits = torch.tensor([[10.0, 9.0, 0.0, 0.0, -1.0]]).repeat(3000, 1)  # the banned 0 and 1 dominate
    draws = sample_next(logits, banned=[0, 1], generator=torch.Generator().manual_seed(0))
    assert draws.shape == (3000,)
    assert set(draws.tolist()) == {2, 3, 4}
    assert (draws == 4).float().mean() < (draws == 2).float().mean()  # still drawn by probability
    hot = sample_next(logits, temperature=5.0, banned=[0, 1], generator=torch.Generator().manual_seed(1))
    assert set(hot.tolist()) == {2, 3, 4}


def test_top_k_one_and_temperature_zero_are_argmax():
    torch.manual_seed(0)
    logits = torch.randn(50, 9)
    greedy = sample_next(logits, temperature=0)
    assert torch.equal(greedy, logits.argmax(-1))
    assert torch.equal(sample_next(logits, top_k=1, generator=torch.Generator().manual_seed(3)), greedy)
    row = logits[:1]
    second = row[0].topk(2).indices[1]
    assert int(sample_next(row, temperature=0, banned=[int(greedy[0])])) == int(second)


def test_sampling_frequencies_follow_the_temperature():
    logits = torch.tensor([[math.log(0.75), math.log(0.25)]]).repeat(20000, 1)
    g = torch.Generator().manual_seed(0)
    ones = sample_next(logits, generator=g).float().mean()
    assert ones == pytest.approx(0.25, abs=0.015)
    sharp = sample_next(logits, temperature=0.5, generator=g).float().mean()  # p ∝ p^2: 1/(9+1)
    assert sharp == pytest.approx(0.1, abs=0.015)


def test_check_sampling():
    check_sampling(0.0, 1, 1.0)
    for args, message in [
        ((-1.0, None, None), "temperature must be >= 0"),
        ((1.0, 0, None), "top-k must be at least 1"),
        ((1.0, None, 0.0), r"top-p must lie in \(0, 1\]"),
        ((1.0, None, 1.5), r"top-p must lie in \(0, 1\]"),
    ]:
        with pytest.raises(RnnkitError, match=message):
            check_sampling(*args)


def counting_step(vocab_size: int):
    """A step function whose most likely next id is (last id + 1) mod V; counts the ids it was fed."""
    fed: list[int] = []

    def step(ids, state):
        fed.extend(ids.flatten().tolist())
        logits = torch.full((ids.shape[0], ids.shape[1], vocab_size), -5.0)
        for t in range(ids.shape[0]):
            logits[t, 0, (int(ids[t, 0]) + 1) % vocab_size] = 5.0
        return logits, (state or 0) + ids.shape[0]

    return step, fed


def test_generate_stops_at_the_stop_id_and_at_max_length():
    step, fed = counting_step(8)
    assert generate(step, [0, 1], max_length=10, stop_id=5, temperature=0) == [2, 3, 4]
    assert fed == [0, 1, 2, 3, 4]  # the prime in one pass, then each drawn id; the stop id is not fed
    step, _ = counting_step(8)
    assert generate(step, [1], max_length=3, stop_id=7, temperature=0) == [2, 3, 4]
    assert generate(step, [1], max_length=0, temperature=0) == []
    assert generate(step, [6], max_length=4, temperature=0) == [7, 0, 1, 2]  # no stop id: wraps around
    with pytest.raises(RnnkitError, match="at least one priming token"):
        generate(step, [], max_length=3)


CORPUS = "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n"


def make_run(level: str) -> LMRun:
    torch.manual_seed(0)
    vocab = Vocabulary.build(tokenize(CORPUS, level))
    data = build(LMDataConfig, ({"level": level, "train": "unused.txt"}, "test"))
    model_cfg = LMConfig(hidden=8, layers=1)
    model = LanguageModel(len(vocab), model_cfg, pad_id=vocab.pad_id, level=level).eval()
    return LMRun(Path("unused"), data, model_cfg, TrainConfig(), vocab, model)


@pytest.mark.parametrize("level", ["word", "char"])
def test_sample_with_seed_and_temperature(level):
    run = make_run(level)
    prime = "the cat" if level == "word" else "the "
    a = run.sample(prime, length=30, seed=3)
    assert a == run.sample(prime, length=30, seed=3)  # same seed, same sample
    assert a != run.sample(prime, length=30, seed=4)
    assert a.startswith(prime)
    greedy = run.sample(prime, length=30, temperature=0, seed=1)
    assert greedy == run.sample(prime, length=30, temperature=0, seed=2)  # greedy ignores the seed
    assert run.sample(prime, length=0) == prime


def test_sample_never_draws_specials():
    run = make_run("word")
    with torch.no_grad():  # make <unk>, <pad> and <bos> by far the most likely tokens
        run.model.decoder.bias[:3] = 50.0
    text = run.sample("the", length=40, seed=0)
    assert not any(s in text for s in ("<unk>", "<pad>", "<bos>"))
    assert len(text.split()) > 1
    assert "<unk>" in run.sample("the", length=5, seed=0, allow_unk=True)


def test_sample_warns_about_unknown_priming_words_and_still_samples():
    run = make_run("word")
    with pytest.warns(UserWarning, match=r"2 priming token\(s\) not in the vocabulary are read as <unk>"):
        text = run.sample("the zebra quagga", length=10, seed=0)
    assert text.startswith("the zebra quagga") and len(text) > len("the zebra quagga")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.sample("the cat", length=3)  # known words: no warning


def test_sample_stops_at_eos_at_word_level():
    run = make_run("word")
    with torch.no_grad():
        run.model.decoder.bias[run.vocab.eos_id] = 50.0
    assert run.sample("the cat", length=20, seed=0) == "the cat"


def test_draw_follows_the_probabilities_and_never_draws_a_zero():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2, 0.0]], dtype=torch.float64).repeat(40000, 1)
    ids = draw(probs, torch.Generator().manual_seed(0))
    counts = torch.bincount(ids, minlength=5).double() / len(ids)
    torch.testing.assert_close(counts, probs[0], rtol=0, atol=0.01)
    assert counts[1] == 0 and counts[4] == 0


def test_draw_at_a_uniform_number_rounded_up_to_the_total_takes_the_last_drawable_id(monkeypatch):
    probs = torch.tensor([[0.25, 0.75, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.ones(shape, dtype=kw["dtype"]))
    assert draw(probs).tolist() == [1, 0]


@pytest.fixture
def native_draw(monkeypatch):
    monkeypatch.setenv("RNNKIT_NATIVE", "1")
    if native.load() is None:
        pytest.skip("rnnkit.native is not built (python -m rnnkit.native)")


def both_draws(logits: torch.Tensor, **options) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """sample_next through rnnkit.native and through Python (native off), each from a generator seeded alike:
    the ids, and the generator's next number (so both used it alike)."""
    out = []
    for path in (contextlib.nullcontext, native.disabled):
        g = torch.Generator().manual_seed(11)
        with path():
            taken = sampling._native_draw(logits, options.get("temperature", 1.0), None, None, [], g) is not None
            assert taken == (path is contextlib.nullcontext)
            out.append((sample_next(logits, generator=g, **options), torch.rand(1, generator=g)))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("temperature", [1.0, 0.6, 3.0])
def test_the_native_draw_draws_what_python_draws(native_draw, dtype, temperature):
    torch.manual_seed(0)
    logits = (torch.randn(4000, 37) * 3).to(dtype)
    logits[::7, 3] = float("-inf")  # a masked id
    (fast, fast_next), (slow, slow_next) = both_draws(logits, temperature=temperature, banned=[0, 36])
    assert torch.equal(fast, slow) and torch.equal(fast_next, slow_next)
    assert not {0, 36} & set(fast.tolist()) and len(set(fast.tolist())) > 20


def test_the_native_draw_at_a_vocabulary_of_ten_thousand(native_draw):
    torch.manual_seed(1)
    logits = (torch.randn(1, 10_000) * 4).repeat(300, 1)  # one peaked row, 300 draws of it
    (fast, _), (slow, _) = both_draws(logits, banned=[0])
    assert torch.equal(fast, slow) and len(set(fast.tolist())) > 50


def test_the_draw_by_hand(native_draw):
    """p = (0.2, 0.5, 0.3): id 0 below u = 0.2, id 1 up to 0.7, id 2 above, with u the generator's next number."""
    logits = torch.tensor([[0.2, 0.5, 0.3]]).log().repeat(500, 1)
    u = torch.rand((500, 1), dtype=torch.float64, generator=torch.Generator().manual_seed(4)).squeeze(1)
    want = (u >= 0.2).long() + (u >= 0.7).long()
    for path in (contextlib.nullcontext, native.disabled):
        with path():
            assert torch.equal(sample_next(logits, generator=torch.Generator().manual_seed(4)), want)


@pytest.mark.parametrize("case", ["nan", "inf", "all banned"])
def test_nothing_to_draw_is_one_error_either_way(native_draw, case):
    logits = torch.tensor([[0.0, 1.0, 2.0]])
    banned = []
    if case == "nan":
        logits[0, 1] = float("nan")
    elif case == "inf":
        logits[0, 2] = float("inf")
    else:
        banned = [0, 1, 2]
    for path in (contextlib.nullcontext, native.disabled):
        with path(), pytest.raises(RnnkitError, match="no token a probability to sample from"):
            sample_next(logits, banned=banned)
