"""The regularisers of rnnkit.tasks.regularization (AWD-LSTM's set, rare-word dropout) and how the models apply them."""

import pytest
import torch
import torch.nn.functional as F

import rnnkit
import rnnkit.cli
from rnnkit.errors import RnnkitError
from rnnkit.tasks import lm as lm_module
from rnnkit.tasks.classify import ClassifyConfig, SequenceClassifier, make_batch
from rnnkit.tasks.lm import LanguageModel, LMConfig
from rnnkit.tasks.regularization import RareWordDropout, activation_penalty, embedding_dropout, weight_dropped
from rnnkit.tasks.tag import SequenceTagger, TagConfig, collate

V = 11


def test_embedding_dropout_drops_whole_words_and_scales_the_rest():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(2000, 3)
    ids = torch.arange(2000).view(1, -1)
    out = embedding_dropout(emb, ids, 0.25, training=True)[0]  # (2000, 3): every word once
    dropped = (out == 0).all(-1)
    assert 0.2 < float(dropped.float().mean()) < 0.3
    torch.testing.assert_close(out[~dropped], emb.weight[~dropped] / 0.75)
    out.sum().backward()
    assert not emb.weight.grad[dropped].any() and emb.weight.grad[~dropped].ne(0).all()
    torch.testing.assert_close(embedding_dropout(emb, ids, 0.25, training=False), emb(ids))


@pytest.mark.parametrize("fused", ["auto", False], ids=["fused", "loop"])
def test_weight_drop_is_dropconnect_on_the_recurrent_matrices_only(fused):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 6, 2, fused=fused)
    x = torch.randn(5, 2, 3)
    before = {n: p.detach().clone() for n, p in layer.named_parameters()}
    torch.manual_seed(1)
    out, _ = weight_dropped(layer, x, None, 0.5, training=True)
    torch.manual_seed(1)  # the same masks, drawn in the same order: weight_hh_l0, then weight_hh_l1
    masks = {n: F.dropout(torch.ones_like(p), 0.5) for n, p in layer.named_parameters() if n.startswith("weight_hh")}
    reference = rnnkit.LSTM(3, 6, 2)
    reference.load_state_dict({n: p * masks.get(n, 1) for n, p in before.items()})
    torch.testing.assert_close(out, reference(x)[0])
    assert all(torch.equal(p, before[n]) for n, p in layer.named_parameters())  # the layer itself unchanged
    (grad,) = torch.autograd.grad(out.sum(), [layer.weight_hh_l0])
    assert not grad[masks["weight_hh_l0"] == 0].any()  # a dropped connection gets no gradient
    torch.testing.assert_close(weight_dropped(layer, x, None, 0.5, training=False)[0], layer(x)[0])


def test_weight_drop_needs_a_recurrent_matrix():
    for cell in ("jordan", "mingru"):
        with pytest.raises(RnnkitError, match="--weight-drop needs a cell with weight_hh"):
            LanguageModel(V, LMConfig(cell=cell, hidden=8, layers=1, weight_drop=0.5))


def test_each_connection_has_its_own_dropout_rate(monkeypatch):
    """--dropout-input on the embedding's output, --dropout-hidden between layers, --dropout before the softmax."""
    seen = []
    real = lm_module.time_dropout
    monkeypatch.setattr(
        lm_module, "time_dropout", lambda x, p, training, **kw: seen.append(p) or real(x, p, training, **kw)
    )
    config = LMConfig(hidden=8, layers=3, dropout=0.4, dropout_input=0.1, dropout_hidden=0.2)
    LanguageModel(V, config).train()(torch.randint(0, V, (4, 2)))
    assert seen == [0.1, 0.2, 0.2, 0.4]
    seen.clear()
    LanguageModel(V, LMConfig(hidden=8, layers=2, dropout=0.3)).train()(torch.randint(0, V, (4, 2)))
    assert seen == [0.3, 0.3, 0.3]  # one rate everywhere, as before these options


def test_ar_and_tar_join_the_training_loss_only():
    torch.manual_seed(0)
    config = LMConfig(hidden=8, layers=2, ar=2.0, tar=1.0)
    lm = LanguageModel(V, config)
    x, y = torch.randint(1, V, (6, 3)), torch.randint(1, V, (6, 3))
    torch.manual_seed(1)
    out = lm.train().loss((x, y))
    logits, _, raw, dropped = lm._run(x, None)
    expected = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") + 18 * activation_penalty(
        dropped, raw, 2.0, 1.0
    )
    torch.testing.assert_close(out.loss, expected)
    assert float(activation_penalty(dropped, raw, 2.0, 1.0)) > 0
    plain = LanguageModel(V, LMConfig(hidden=8, layers=2))
    plain.load_state_dict(lm.state_dict())
    torch.testing.assert_close(lm.eval().loss((x, y)).loss, plain.eval().loss((x, y)).loss)  # not at evaluation


def test_awd_flags_reach_the_model_from_the_cli():
    parser = rnnkit.cli.build_parser()
    args = parser.parse_args(
        ["lm", "train", "--train", "x", "--out", "o", "--weight-drop", "0.5", "--embed-dropout", "0.1", "--ar", "2"]
    )
    assert (args.weight_drop, args.embed_dropout, args.ar) == (0.5, 0.1, 2.0)


def test_rare_word_dropout_hides_each_word_at_its_rate_and_never_padding_or_unk():
    counts = [0, 0, 1, 3, 0]  # pad, <unk>, a word seen once, one seen 3 times, one never seen in training
    drop = RareWordDropout(counts, alpha=1.0, unk_id=1, pad_id=0).train()
    assert drop.chance.tolist() == [0.0, 0.0, 0.5, 0.25, 1.0]  # 1 / (1 + c)
    torch.manual_seed(0)
    ids = torch.tensor([0, 1, 2, 3, 4]).repeat(40_000, 1)
    hidden = (drop(ids) == 1).float().mean(0)  # how often each column came out as <unk>
    assert hidden[0] == 0 and hidden[1] == 1 and hidden[4] == 1  # padding stays, <unk> is <unk>
    assert abs(hidden[2] - 0.5) < 0.01 and abs(hidden[3] - 0.25) < 0.01  # 4 standard errors
    assert torch.equal(drop(ids)[:, 0], ids[:, 0]) and set(drop(ids).unique().tolist()) == {0, 1, 2, 3}
    assert torch.equal(drop.eval()(ids), ids)
    assert torch.equal(RareWordDropout(counts, alpha=0.0, unk_id=1).train()(ids), ids)
    with pytest.raises(RnnkitError, match="training counts"):
        RareWordDropout([0, 0, 0, 0], alpha=0.25, unk_id=1)  # every word would always be <unk>


def test_rare_word_dropout_makes_the_tagger_and_classifier_read_unk_in_training_only():
    """Words with no training count are always hidden in training (chance 1): the model then computes what it
    computes for <unk>; in eval mode the words are read."""
    words = [[4, 5, 6], [7, 8]]
    counts = [0, 0, 9, 9] + [0] * 16
    unk = [[1, 1, 1], [1, 1]]
    tagger = SequenceTagger(20, ["O", "B-X", "I-X"], TagConfig(hidden=6, embed=5, rare_word_dropout=0.3),
                            word_counts=counts)  # fmt: skip
    classifier = SequenceClassifier(20, 3, ClassifyConfig(hidden=6, rare_word_dropout=0.3), word_counts=counts)

    def tag(ids):
        return tagger(collate(ids))[0]

    def classify(ids):
        return classifier(make_batch(ids).ids, make_batch(ids).lengths)[0]

    for model, run in ((tagger, tag), (classifier, classify)):
        model.train()
        assert torch.equal(run(words), run(unk))
        model.eval()
        assert not torch.allclose(run(words), run(unk))
    assert TagConfig().rare_word_dropout == 0 and ClassifyConfig().rare_word_dropout == 0  # off unless asked
    with pytest.raises(RnnkitError, match="unk_id"):
        SequenceTagger(20, ["O"], TagConfig(rare_word_dropout=0.3), unk_id=None)
