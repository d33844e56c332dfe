"""SequenceClassifier: shapes, padding invariance, the two losses, evaluation, and learning a toy task."""

import random

import pytest
import torch
import torch.nn.functional as F

from rnnkit.errors import RnnkitError
from rnnkit.tasks.classify import (
    ClassifyConfig,
    SequenceClassifier,
    best_threshold,
    make_batch,
    multi_label_metrics,
    single_label_metrics,
)

V, K = 20, 3


def model(**options) -> SequenceClassifier:
    torch.manual_seed(0)
    return SequenceClassifier(V, K, ClassifyConfig(hidden=8, embed=6, **options))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"cell": "gru", "bidirectional": True, "pooling": "attention", "mlp": 5},
        {"cell": "scrn", "layers": 2, "pooling": "max", "dropout": 0.2},
        {"cell": "jordan", "bidirectional": True, "pooling": "mean", "attention_size": 4},
        {"cell": "mingru", "pooling": "attention", "multi_label": True},
        {"bidirectional": True, "pooling": "label_attention", "multi_label": True, "attention_size": 4},
    ],
)
def test_shapes_and_parameter_count(options):
    m = model(**options)
    batch = make_batch([[4, 5, 6, 7], [8, 9]], [[0, 2], [1]] if options.get("multi_label") else [2, 0], num_labels=K)
    logits, attention = m(batch.ids, batch.lengths)
    assert logits.shape == (2, K)
    assert (attention is None) == (m.config.pooling not in ("attention", "label_attention"))
    if attention is not None:
        assert attention.shape == (2, 4) and attention[1, 2:].eq(0).all()
    out = m.loss(batch)
    assert out.loss.dim() == 0 and int(out.count) == 2 and out.state is None
    assert m.config.params(V, K) == sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    "options",
    [
        {"pooling": "last"},
        {"pooling": "last", "bidirectional": True, "layers": 2},
        {"pooling": "mean", "bidirectional": True},
        {"pooling": "max"},
        {"pooling": "attention", "bidirectional": True, "mlp": 4},
        {"pooling": "attention", "cell": "gru", "multi_label": True},
        {"pooling": "last", "cell": "jordan", "bidirectional": True},  # the reference loop, not a fused kernel
        {"pooling": "label_attention", "bidirectional": True, "multi_label": True, "dropout": 0.3},
    ],
)
def test_padding_never_changes_a_prediction(options):
    m = model(**options)
    short, long = [4, 5, 6], [7, 8, 9, 10, 11, 12, 13]
    alone = m.predict(make_batch([short]))
    batched = m.predict(make_batch([long, short]))  # short is padded with 4 steps
    reversed_ = m.predict(make_batch([short, long]))
    torch.testing.assert_close(batched.probabilities[1], alone.probabilities[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(reversed_.probabilities[0], alone.probabilities[0], rtol=0, atol=1e-6)
    if alone.attention is not None:
        torch.testing.assert_close(batched.attention[1, :3], alone.attention[0], rtol=0, atol=1e-6)
        assert batched.attention[1, 3:].eq(0).all()


def test_single_label_loss_is_summed_cross_entropy():
    m = model()
    batch = make_batch([[4, 5], [6, 7, 8]], [1, 2])
    logits, _ = m(batch.ids, batch.lengths)
    torch.testing.assert_close(m.loss(batch).loss, F.cross_entropy(logits, batch.targets, reduction="sum"))


def test_multi_label_loss_is_binary_cross_entropy_summed_over_labels_and_texts():
    m = model(multi_label=True)
    batch = make_batch([[4, 5], [6, 7, 8]], [[0, 2], []], num_labels=K)
    assert batch.targets.tolist() == [[1, 0, 1], [0, 0, 0]]
    logits, _ = m(batch.ids, batch.lengths)
    p = torch.sigmoid(logits)
    by_hand = -(batch.targets * p.log() + (1 - batch.targets) * (1 - p).log()).sum()
    out = m.loss(batch)
    torch.testing.assert_close(out.loss, by_hand)
    assert int(out.count) == 2
    weighted = model(multi_label=True, pos_weight=4.0)  # the same weights (seed 0): present labels count 4 times
    by_hand = -(4.0 * batch.targets * p.log() + (1 - batch.targets) * (1 - p).log()).sum()
    torch.testing.assert_close(weighted.loss(batch).loss, by_hand)
    with pytest.raises(RnnkitError, match="add --multi-label"):
        ClassifyConfig(pos_weight=4.0)
    assert m.selection == ("micro_f1", "max") and model().selection == ("accuracy", "max")
    probs = m.predict(batch).probabilities
    assert ((probs > 0) & (probs < 1)).all() and not torch.allclose(probs.sum(1), torch.ones(2))


def test_evaluate_reports_and_multi_label_chooses_a_threshold():
    m = model()
    batches = [make_batch([[4, 5], [6]], [1, 2]), make_batch([[7, 8, 9]], [0])]
    metrics = m.evaluate(batches)
    assert set(metrics) == {"loss", "accuracy", "macro_f1", "count"} and metrics["count"] == 3
    assert m.training  # evaluate restores the mode

    m = model(multi_label=True)
    batches = [make_batch([[4, 5], [6]], [[1], [0, 2]], num_labels=K)]
    metrics = m.evaluate(batches)
    assert set(metrics) == {"loss", "accuracy", "micro_f1", "macro_f1", "threshold", "count"}
    assert float(m.threshold) == metrics["threshold"] and "threshold" in m.state_dict()
    m.threshold.fill_(0.05)
    assert m.evaluate(batches, tune_threshold=False)["threshold"] == pytest.approx(0.05)


def test_metrics_helpers():
    assert single_label_metrics(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1])) == {"accuracy": 1.0, "macro_f1": 1.0}
    scores = multi_label_metrics(torch.tensor([[1, 1], [0, 1]]), torch.tensor([[1, 0], [0, 1]]))
    assert scores["accuracy"] == 0.5 and scores["micro_f1"] == pytest.approx(0.8)
    assert best_threshold(torch.tensor([[1], [0]]), torch.tensor([[0.9], [0.1]])) == 0.5  # ties: nearest 0.5


def good_or_not(n: int, seed: int) -> tuple[list[list[int]], list[int]]:
    """Texts of ids 5..19 with id 4 ("good") inserted in about half: label 1 if it is there."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        text = [rng.randint(5, V - 1) for _ in range(rng.randint(2, 9))]
        good = rng.random() < 0.5
        if good:
            text.insert(rng.randint(0, len(text)), 4)
        texts.append(text)
        labels.append(int(good))
    return texts, labels


def test_a_tiny_model_learns_whether_a_text_says_good():
    """The tutorials' keyword model (RNN outputs -> attention -> classifier): 100% on new texts, in about a second."""
    torch.manual_seed(0)
    m = SequenceClassifier(V, 2, ClassifyConfig(hidden=12, embed=8, bidirectional=True, pooling="attention"))
    texts, labels = good_or_not(64, 1)
    batches = [make_batch(texts[i : i + 16], labels[i : i + 16]) for i in range(0, 64, 16)]
    optimizer = torch.optim.Adam(m.parameters(), lr=0.03)
    for _ in range(15):
        for batch in batches:
            out = m.loss(batch)
            optimizer.zero_grad()
            (out.loss / out.count).backward()
            optimizer.step()
    test_texts, test_labels = good_or_not(40, 2)
    assert m.evaluate([make_batch(test_texts, test_labels)])["accuracy"] == 1.0
    batch = make_batch([t for t, y in zip(test_texts, test_labels, strict=True) if y])
    top = m.predict(batch).attention.argmax(1)  # the step each positive text attends to most
    assert batch.ids.gather(1, top.unsqueeze(1)).eq(4).all()  # is "good"


def test_character_features_count_their_parameters_and_never_see_padding():
    """With char=True each token's character BiLSTM feature joins its embedding: the parameter count includes
    it, a text's prediction is the same alone or padded in a batch (words and characters), and two words the
    vocabulary maps to <unk> alike are told apart by their characters."""
    torch.manual_seed(0)
    C = 12
    m = SequenceClassifier(
        V, K, ClassifyConfig(hidden=8, embed=6, char=True, char_hidden=3, pooling="mean"), num_chars=C
    )
    assert m.config.params(V, K, C) == sum(p.numel() for p in m.parameters())
    short, long = ([4, 5], [[3, 4], [5]]), ([6, 7, 8, 9], [[3, 3, 3, 4], [6], [7, 8], [9]])
    alone = m.predict(make_batch([short[0]], chars=[short[1]])).probabilities[0]
    batched = m.predict(make_batch([long[0], short[0]], chars=[long[1], short[1]])).probabilities[1]
    torch.testing.assert_close(batched, alone, rtol=0, atol=1e-6)
    unk_a = m.predict(make_batch([[1]], chars=[[[3, 4, 5]]])).probabilities
    unk_b = m.predict(make_batch([[1]], chars=[[[9, 10]]])).probabilities
    assert not torch.allclose(unk_a, unk_b)
    with pytest.raises(ValueError, match="reads characters"):
        m.predict(make_batch([[4]]))


def test_label_attention_gives_the_top_labels_weights_and_refuses_an_mlp():
    m = model(pooling="label_attention", bidirectional=True)
    batch = make_batch([[4, 5, 6, 7], [8, 9]])
    logits, attention = m(batch.ids, batch.lengths)
    x = m.features(batch.ids, batch.lengths)
    outputs, _ = m.rnn(x, lengths=batch.lengths)
    _, every = m.pooling(outputs, batch.lengths)  # (B, K, T)
    for b, label in enumerate(logits.argmax(-1).tolist()):
        assert torch.equal(attention[b], every[b, label])
    with pytest.raises(RnnkitError, match="leave out --mlp"):
        ClassifyConfig(pooling="label_attention", mlp=8)
