"""The hierarchical paragraph autoencoder: batching, shapes for every kind of cell, a paragraph does not depend on its
batch, the loss against a hand-stepped per-paragraph computation, gradients, stopping, and a small model that
learns to write random paragraphs back and tells sentence orders apart."""

import random

import pytest
import torch
import torch.nn.functional as F

from rnnkit.errors import RnnkitError
from rnnkit.tasks.seq2seq.hierarchical import HierarchicalAutoencoder, HierarchicalConfig, make_paragraph_batch

SPECIALS = {"pad_id": 0, "bos": 2, "eos": 3}
PARAGRAPHS = [[[5, 6, 7], [8]], [[9, 4, 5, 6]], [[7, 7], [10, 11, 5], [6]]]
VOCAB = 12


def _model(**kw):
    torch.manual_seed(0)
    cfg = {"hidden": 8, "embed": 6, "dropout": 0.0} | kw
    return HierarchicalAutoencoder(VOCAB, HierarchicalConfig(**cfg), **SPECIALS)


def _batch(paragraphs=PARAGRAPHS):
    return make_paragraph_batch(paragraphs, **SPECIALS)


def test_make_paragraph_batch_flattens_in_order_and_refuses_empty_parts():
    batch = _batch()
    assert batch.words.shape == (6, 4) and batch.sentences.tolist() == [2, 1, 3]
    assert batch.word_lengths.tolist() == [3, 1, 4, 2, 3, 1]
    assert batch.tgt_out[3].tolist() == [7, 7, 3, 0, 0]
    for bad in ([], [[]], [[[5], []]]):
        with pytest.raises(RnnkitError):
            make_paragraph_batch(bad, **SPECIALS)


@pytest.mark.parametrize("cell", ["lstm", "gru", "jordan", "scrn", "clockwork", "mingru"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_shapes_for_every_kind_of_cell(cell, bidirectional):
    model = _model(cell=cell, bidirectional=bidirectional, layers=2)
    batch = _batch()
    words, stops, mask = model(batch)
    assert words.shape == (6, 5, VOCAB) and stops.shape == mask.shape == (3, 3)
    assert mask.sum(1).tolist() == [2, 1, 3]
    assert model.code(batch).shape == (3, 8) and model.sentence_codes(batch).shape == (6, 8)
    out = model.loss(batch)
    assert out.loss.shape == () and int(out.count) == 6 + 14 and torch.isfinite(out.loss)
    written = model.reconstruct(batch, max_len=3, max_sentences=4)
    assert len(written) == 3 and all(1 <= len(p) <= 4 and all(len(s) <= 3 for s in p) for p in written)


def test_odd_hidden_size_with_bidirectional_encoders_is_refused():
    with pytest.raises(RnnkitError, match="even"):
        _model(hidden=7)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_paragraph_does_not_depend_on_its_batch(cell):
    model = _model(cell=cell, layers=2).eval()
    batch = _batch()
    with torch.no_grad():
        codes, sentence_codes, total = model.code(batch), model.sentence_codes(batch), model.loss(batch).loss
        alone = [_batch([p]) for p in PARAGRAPHS]
        torch.testing.assert_close(codes, torch.cat([model.code(b) for b in alone]), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            sentence_codes, torch.cat([model.sentence_codes(b) for b in alone]), atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(total, sum(model.loss(b).loss for b in alone), atol=1e-4, rtol=1e-5)


def _run(cell, inputs, state):
    """Step a bound cell over a list of (1, F) inputs: the last output and the final state."""
    for x in inputs:
        y, state = cell(x, state)
    return y, state


def _by_hand(model, paragraph):
    """One paragraph's loss, stepping every cell by hand (1 layer, bidirectional encoders, LSTM)."""
    (wf, wb), (sf, sb) = model.word_encoder.bound_cells(), model.sentence_encoder.bound_cells()
    (sd,), (wd,) = model.sentence_decoder.bound_cells(), model.word_decoder.bound_cells()
    embed = lambda ids: [model.embedding(torch.tensor([i])) for i in ids]  # noqa: E731
    vectors = []
    for sentence in paragraph:
        xs = embed(sentence)
        vectors.append(torch.cat([_run(wf, xs, wf.initial_state(1))[0], _run(wb, xs[::-1], wb.initial_state(1))[0]], 1))
    (_, forward), (_, backward) = _run(sf, vectors, sf.initial_state(1)), _run(sb, vectors[::-1], sb.initial_state(1))
    maps = model.bridge.maps
    state = type(forward)(
        maps["l0_h"](torch.cat([forward.h, backward.h], 1)), maps["l0_c"](torch.cat([forward.c, backward.c], 1))
    )
    total, previous = torch.zeros((), dtype=torch.float64), torch.zeros_like(vectors[0])
    for k, sentence in enumerate(paragraph):
        out, state = sd(previous, state)
        q = torch.sigmoid(model.stop(out)).squeeze()
        total = total - torch.log(q if k == len(paragraph) - 1 else 1 - q)
        words = type(state)(model.launch.maps["l0_h"](out), model.launch.maps["l0_c"](out))
        for token, target in zip([2, *sentence], [*sentence, 3], strict=True):
            y, words = wd(embed([token])[0], words)
            total = total - torch.log_softmax(model.generator(y), -1)[0, target]
        previous = vectors[k]
    return total


def test_loss_equals_a_hand_stepped_computation_and_smooths_only_in_training():
    model = _model(cell="lstm", hidden=6, embed=4, label_smoothing=0.2).double().eval()
    batch = _batch()
    with torch.no_grad():
        out = model.loss(batch)
        expected = sum(_by_hand(model, p) for p in PARAGRAPHS)
    torch.testing.assert_close(out.loss, expected, atol=1e-9, rtol=1e-9)
    assert int(out.count) == sum(len(s) + 1 for p in PARAGRAPHS for s in p)
    words, _, _ = model(batch)
    real = batch.tgt_out != 0
    plain_words = F.cross_entropy(words[real], batch.tgt_out[real], reduction="sum")
    smoothed = F.cross_entropy(words[real], batch.tgt_out[real], label_smoothing=0.2, reduction="sum")
    # training: the same scores (dropout 0), the words' targets smoothed, the stop head's not
    torch.testing.assert_close(model.train().loss(batch).loss, out.loss - plain_words + smoothed)
    assert not torch.allclose(smoothed, plain_words)
    assert model.metrics(2.0)["perplexity"] == pytest.approx(7.389056, rel=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru", "clockwork"])
def test_gradients_reach_every_parameter(cell):
    model = _model(cell=cell, layers=2, dropout=0.1, word_dropout=0.3, label_smoothing=0.1).train()
    model.loss(_batch()).loss.backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent


def test_word_dropout_hides_words_only_in_training_and_never_bos_or_padding():
    model = _model(word_dropout=0.5)
    tokens = _batch().tgt_in
    torch.manual_seed(1)
    hidden = model.train()._word_dropout(tokens)
    assert (hidden[:, 0] == 2).all() and ((hidden == 0) == (tokens == 0)).all()
    assert ((hidden == 1) | (hidden == tokens)).all() and (hidden == 1).any()
    assert torch.equal(model.eval()._word_dropout(tokens), tokens)


@pytest.mark.parametrize(("bias", "sentences"), [(-50.0, 4), (50.0, 1)])
def test_reconstruct_stops_when_the_stop_head_says_so_or_at_max_sentences(bias, sentences):
    model = _model()
    with torch.no_grad():
        model.stop.weight.zero_()
        model.stop.bias.fill_(bias)
    written = model.reconstruct(_batch(), max_len=2, max_sentences=4)
    assert [len(p) for p in written] == [sentences] * 3
    assert all(len(s) <= 2 and 2 not in s and 3 not in s for p in written for s in p)
    assert model.training  # the mode it had


def _random_paragraphs(n, seed):
    rng = random.Random(seed)
    sentence = lambda: [rng.randrange(4, VOCAB) for _ in range(rng.randint(2, 4))]  # noqa: E731
    return [[sentence() for _ in range(rng.randint(1, 3))] for _ in range(n)]


@pytest.fixture(scope="module")
def trained():
    """A small model trained (full batch, Adam) to write 64 random paragraphs back; about 2 s on one core."""
    paragraphs = _random_paragraphs(64, seed=0)
    model = _model(hidden=32, embed=16)
    batch = _batch(paragraphs)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(300):
        out = model.loss(batch)
        optimizer.zero_grad()
        (out.loss / out.count).backward()
        optimizer.step()
    return model.eval(), paragraphs


def test_a_trained_model_writes_most_paragraphs_back_exactly(trained):
    model, paragraphs = trained
    written = model.reconstruct(_batch(paragraphs))
    exact = sum(w == p for w, p in zip(written, paragraphs, strict=True)) / len(paragraphs)
    assert exact >= 0.8  # 0.97-1.0 over seeds 0-9
    # generation is batched over paragraphs: each paragraph alone is written the same way
    assert [model.reconstruct(_batch([p]))[0] for p in paragraphs[:8]] == written[:8]


def test_sentence_order_changes_the_code(trained):
    model, paragraphs = trained
    pairs = [p[:2] for p in paragraphs if len(p) >= 2 and p[0] != p[1]]
    codes = model.code(_batch(pairs))
    swapped = model.code(_batch([[b, a] for a, b in pairs]))
    assert len(pairs) >= 10
    assert float(F.cosine_similarity(codes, swapped).max()) < 0.999
