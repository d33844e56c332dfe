"""The encoder-decoder: both paths through the decoder agree, padding is masked, the bridge, tying, teacher
forcing, search through the model, and a small model that learns to reverse sequences."""

import pytest
import torch

from rnnkit.errors import RnnkitError
from rnnkit.tasks.seq2seq.model import Seq2Seq, Seq2SeqConfig, make_batch
from rnnkit.tasks.seq2seq.search import greedy_search

SPECIALS = {"pad_id": 0, "bos": 2, "eos": 3}
SOURCES = [[5, 6, 7, 8], [9, 4], [7]]
TARGETS = [[10, 11], [12, 13, 14], [15]]


def _model(**kw):
    torch.manual_seed(0)
    cfg = {"hidden": 8, "embed": 6, "dropout": 0.0} | kw
    return Seq2Seq(20, 30, Seq2SeqConfig(**cfg), **SPECIALS)


def _batch():
    return make_batch(SOURCES, TARGETS, **SPECIALS)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "jordan", "scrn", "mingru"])
@pytest.mark.parametrize("attention", ["none", "dot", "general", "additive"])
def test_whole_target_path_equals_the_step_loop(cell, attention):
    if cell == "scrn" and attention == "dot":
        pytest.skip("SCRN's output (hidden + context) differs in size from its encoder's: dot cannot apply")
    model = _model(cell=cell, attention=attention, input_feed=False, layers=2).eval()
    batch = _batch()
    with torch.no_grad():
        fused = model.logits(batch)
        state = model.encode(batch.src, batch.src_lengths)
        looped = model._logits(model._step_through(model.tgt_embedding(batch.tgt_in), state, 1.0)[0])
    real = batch.tgt_out != 0
    torch.testing.assert_close(fused[real], looped[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("input_feed", [True, False])
def test_a_sentence_does_not_depend_on_its_batch(input_feed):
    model = _model(attention="general", input_feed=input_feed).eval()
    batch = _batch()
    with torch.no_grad():
        together = model.logits(batch)
        for i in range(len(SOURCES)):
            alone = model.logits(make_batch([SOURCES[i]], [TARGETS[i]], **SPECIALS))
            n = len(TARGETS[i]) + 1
            torch.testing.assert_close(together[i, :n], alone[0, :n], atol=1e-5, rtol=1e-5)


def test_loss_counts_target_tokens_with_eos_and_smooths_only_in_training():
    model = _model(label_smoothing=0.2).eval()
    batch = _batch()
    out = model.loss(batch)
    assert int(out.count) == sum(len(t) + 1 for t in TARGETS)
    logits = model.logits(batch)
    real = batch.tgt_out != 0
    plain = -torch.log_softmax(logits, -1).gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1)[real].sum()
    torch.testing.assert_close(out.loss, plain)
    model.train()  # dropout 0: the same logits, now with smoothed targets
    smoothed = torch.nn.functional.cross_entropy(
        logits[real], batch.tgt_out[real], label_smoothing=0.2, reduction="sum"
    )
    torch.testing.assert_close(model.loss(batch).loss, smoothed)
    assert not torch.allclose(smoothed, plain)
    assert model.metrics(2.0)["perplexity"] == pytest.approx(7.389056, rel=1e-6)


def test_bridge_maps_each_lstm_field_of_both_directions():
    model = _model(cell="lstm", layers=2, bidirectional=True)
    assert sorted(model.bridge.maps) == ["l0_c", "l0_h", "l1_c", "l1_h"]
    assert model.bridge.maps["l0_h"].in_features == 8  # two directions of 4
    batch = _batch()
    state = model.encode(batch.src, batch.src_lengths)
    _, final = model.encoder(model.src_embedding(batch.src), lengths=batch.src_lengths)
    h = torch.cat([final.h[2], final.h[3]], -1)  # layer 1, both directions
    torch.testing.assert_close(state.cells[1].h, model.bridge.maps["l1_h"](h))


def test_clockwork_step_counter_is_not_bridged():
    model = _model(cell="clockwork", hidden=8, bidirectional=False)
    assert "l0_t" not in model.bridge.maps
    state = model.encode(*_batch()[:2])
    assert state.cells[0].t.tolist() == [0, 0, 0]


def test_tied_embeddings_share_one_matrix():
    model = _model(tie_embeddings=True, embed=6, hidden=8)
    assert model.generator.weight is model.tgt_embedding.weight
    assert model.tie is not None and model.tie.in_features == 8
    untied = _model(tie_embeddings=False, embed=6, hidden=8)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(untied) - count(model) == 30 * 8 - 8 * 6  # the output matrix, less the projection to 6


def test_teacher_forcing_below_one_reads_the_models_guesses():
    model = _model(teacher_forcing=0.0, input_feed=False).train()
    batch = _batch()
    torch.manual_seed(1)
    own = model.logits(batch)
    model.config.teacher_forcing = 1.0
    gold = model.logits(batch)
    assert torch.allclose(own[:, 0], gold[:, 0])  # the first step reads <bos> either way
    assert not torch.allclose(own[:, 1:], gold[:, 1:])


def test_beam_one_through_the_model_is_greedy():
    model = _model(attention="additive").eval()
    batch = _batch()
    state = model.encode(batch.src, batch.src_lengths)
    greedy = greedy_search(model.step, state, bos=2, eos=3, max_len=6)
    beam = model.translate(batch.src, batch.src_lengths, beam_size=1, n_best=1, max_len=6)
    wide = model.translate(batch.src, batch.src_lengths, beam_size=4, n_best=4, max_len=6)
    assert [h[0].tokens for h in beam] == [g.tokens for g in greedy]
    assert all(len(hyps) == 4 for hyps in wide)
    assert all(h[0].score >= h[-1].score for h in wide)


@pytest.mark.parametrize("attention", ["none", "dot", "additive"])
def test_beams_sharing_their_sentences_memory_equal_beams_on_copies(attention):
    from rnnkit.tasks.seq2seq.search import beam_search

    model = _model(attention=attention).eval()
    batch = make_batch(SOURCES * 3, None, **SPECIALS)
    shared = model.translate(batch.src, batch.src_lengths, beam_size=4, n_best=3, max_len=7, early_stop=True)
    with torch.no_grad():  # the search's own reorder: every hypothesis its copy of memory, mask and keys
        state = model.encode(batch.src, batch.src_lengths)
        copied = beam_search(model.step, state, bos=2, eos=3, beam_size=4, n_best=3, max_len=7, early_stop=True)
    assert [[h.tokens for h in s] for s in shared] == [[h.tokens for h in s] for s in copied]
    for got, want in zip(shared, copied, strict=True):
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch is built without oneDNN")
def test_decoding_through_onednn_equals_the_plain_products(monkeypatch):
    from rnnkit import onednn
    from rnnkit.onednn import OneDNNMatrix

    monkeypatch.setattr(onednn, "mkl_is_fast", lambda: False)  # as where oneDNN is the faster library

    torch.manual_seed(0)  # an output layer 12x wider than tall and LSTM gates 4x: both take oneDNN's products
    model = Seq2Seq(20, 200, Seq2SeqConfig(hidden=16, embed=6, dropout=0.0, attention="general"), **SPECIALS).eval()
    batch = make_batch(SOURCES * 4, None, **SPECIALS)  # 12 sentences
    cells, generator = model.decoding_weights(48)
    assert isinstance(generator, OneDNNMatrix) and any(
        isinstance(w, OneDNNMatrix) for w in cells[0]._parameters.values()
    )
    with torch.no_grad():
        state = model.encode(batch.src, batch.src_lengths)
        tokens = torch.arange(12) + 4
        fast, _ = model.step(tokens, state, cells, generator)
        plain, _ = model.step(tokens, state)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    searched = model.translate(batch.src, batch.src_lengths, beam_size=4, n_best=4, max_len=8)
    monkeypatch.setattr(Seq2Seq, "decoding_weights", lambda self, rows: (self.decoder.bound_cells(), None))
    reference = model.translate(batch.src, batch.src_lengths, beam_size=4, n_best=4, max_len=8)
    assert [[h.tokens for h in s] for s in searched] == [[h.tokens for h in s] for s in reference]
    for got, want in zip(searched, reference, strict=True):
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-4)
    monkeypatch.undo()
    first = model.decoding_weights(48)  # kept while the weights stay, remade when one changes
    assert model.decoding_weights(48) is first and model.decoding_weights(40) is not first
    with torch.no_grad():
        model.generator.weight.mul_(2)
    assert torch.equal(model.decoding_weights(40)[1], model.generator.weight)


@pytest.mark.parametrize("threads", [1, 2])
def test_decoding_a_few_rows_uses_generations_layouts_and_equals_the_plain_products(monkeypatch, threads):
    from rnnkit.tasks import stepping
    from rnnkit.tasks.stepping import ParallelMatrix

    monkeypatch.setattr(stepping, "blocks_pay", lambda *shape: True)  # taken wherever they may be

    torch.manual_seed(0)
    model = Seq2Seq(20, 3000, Seq2SeqConfig(hidden=64, embed=6, dropout=0.0, attention="additive"), **SPECIALS).eval()
    batch = make_batch(SOURCES[:1], None, **SPECIALS)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cells, generator = model.decoding_weights(5)
        assert cells[0]._parameters["weight_xh"].stride() == (1, 256)  # for_steps(): [W_ih W_hh], transposed
        assert isinstance(generator, ParallelMatrix) == (threads > 1) and generator.stride() == (1, 3000)  # transposed
        searched = model.translate(batch.src, batch.src_lengths, beam_size=5, n_best=5, max_len=8)
        monkeypatch.setattr(Seq2Seq, "decoding_weights", lambda self, rows: (self.decoder.bound_cells(), None))
        reference = model.translate(batch.src, batch.src_lengths, beam_size=5, n_best=5, max_len=8)
    finally:
        torch.set_num_threads(before)
    assert [h.tokens for h in searched[0]] == [h.tokens for h in reference[0]]
    assert [h.score for h in searched[0]] == pytest.approx([h.score for h in reference[0]], abs=1e-4)


def test_bad_sizes_are_one_line_errors():
    with pytest.raises(RnnkitError, match="bidirectional encoder splits --hidden in two: give an even size, got 7"):
        _model(hidden=7, bidirectional=True)
    with pytest.raises(RnnkitError, match="equal query and memory sizes"):
        _model(cell="scrn", attention="dot")


def test_learns_to_reverse_sequences():
    """Reverse random sequences of 3-6 symbols: an attention model gets nearly all exactly right."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)

    def data(n):
        lengths = torch.randint(3, 7, (n,), generator=g).tolist()
        src = [torch.randint(4, 12, (k,), generator=g).tolist() for k in lengths]
        return src, [s[::-1] for s in src]

    model = Seq2Seq(12, 12, Seq2SeqConfig(hidden=32, embed=16, dropout=0.0, label_smoothing=0.0), **SPECIALS)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(250):
        src, tgt = data(32)
        out = model.loss(make_batch(src, tgt, **SPECIALS))
        optimizer.zero_grad()
        (out.loss / out.count).backward()
        optimizer.step()
    src, tgt = data(100)
    batch = make_batch(src, None, **SPECIALS)
    hyps = model.translate(batch.src, batch.src_lengths, beam_size=3)
    exact = sum(h[0].tokens == t for h, t in zip(hyps, tgt, strict=True))
    assert exact >= 90, exact


def test_word_dropout_hides_decoder_inputs_only_while_training():
    model = _model(word_dropout=0.5)
    tokens = torch.tensor([[2, 10, 11, 12, 13, 14, 15, 16], [2, 10, 11, 0, 0, 0, 0, 0]])
    model.train()
    torch.manual_seed(0)
    dropped = model._word_dropout(tokens)
    assert (dropped[:, 0] == 2).all() and (dropped[tokens == 0] == 0).all()  # <bos> and padding kept
    hidden = (dropped == 1) & (tokens != 0)
    assert 0 < int(hidden.sum()) < int((tokens[:, 1:] != 0).sum())
    assert ((dropped == tokens) | hidden).all()  # a word is kept or becomes <unk>, nothing else
    model.eval()
    assert torch.equal(model._word_dropout(tokens), tokens)


def test_code_is_the_top_layers_final_state_of_both_directions():
    model = _model(attention="none", layers=2, bidirectional=True).eval()
    batch = _batch()
    code = model.code(batch.src, batch.src_lengths)
    _, final = model.encoder(model.src_embedding(batch.src), lengths=batch.src_lengths)
    assert code.shape == (3, 8)
    torch.testing.assert_close(code, torch.cat([final.h[2], final.h[3]], -1))
    alone = model.code(torch.tensor([SOURCES[1]]), torch.tensor([2]))
    torch.testing.assert_close(code[1:2], alone)  # padding does not change a code
