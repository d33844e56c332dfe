"""SequenceTagger: shapes, padding invariance, the context window, the feed-forward baseline, CRF vs softmax,
and a toy task learnt to 100%."""

import itertools
import random

import pytest
import torch

from rnnkit.data.batching import pad_ids
from rnnkit.tasks.tag import SequenceTagger, TagConfig, collate, context_window, tagging_scores

TAGS = ["O", "B-NUM", "I-NUM", "B-LOC"]
SMALL = {"hidden": 8, "embed": 6}


def tagger(names=TAGS, intents=(), **options) -> SequenceTagger:
    torch.manual_seed(0)
    config = TagConfig(**(SMALL | options))
    return SequenceTagger(30, names, config, num_chars=20, intent_names=intents).eval()


def sentences(n: int, seed: int, *, max_len: int = 7) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(2, 30) for _ in range(rng.randint(1, max_len))] for _ in range(n)]


def batch_of(words: list[list[int]], **kw):
    chars = [[[w % 19 + 1, w % 7 + 1][: 1 + w % 2] for w in sentence] for sentence in words]
    intents = [len(s) % 2 for s in words]
    return collate(words, [[0] * len(s) for s in words], chars=chars, intents=intents, **kw)


CONFIGS = {
    "bilstm-crf-char-window-intent": {"cell": "lstm", "bidirectional": True, "crf": True, "char": True, "window": 1,
                                      "intent": True, "layers": 2},
    "jordan": {"cell": "jordan", "window": 2},
    "elman-last-pool": {"cell": "rnn", "bidirectional": True, "intent": True, "pool": "last"},
    "feedforward": {"cell": "none", "window": 2, "crf": True, "layers": 2},
}  # fmt: skip


@pytest.mark.parametrize("name", CONFIGS)
def test_shapes_and_padding_invariance(name):
    options = CONFIGS[name]
    model = tagger(intents=("a", "b") if options.get("intent") else (), **options)
    words = sentences(5, seed=1)
    batch = batch_of(words)
    emissions, intents = model(batch)
    T = max(map(len, words))
    assert emissions.shape == (5, T, len(TAGS))
    assert (intents is None) == (not options.get("intent")) and (intents is None or intents.shape == (5, 2))
    decoded = model.decode(batch)
    assert decoded.tags.shape == (5, T)
    for i, sentence in enumerate(words):  # each sentence alone: the same emissions, tags and intent
        alone = batch_of([sentence])
        e, intent = model(alone)
        torch.testing.assert_close(e[0], emissions[i, : len(sentence)])
        assert decoded.tags[i, len(sentence) :].eq(-1).all()
        assert model.decode(alone).tags[0].tolist() == decoded.tags[i, : len(sentence)].tolist()
        if intent is not None:
            torch.testing.assert_close(intent[0], intents[i])


def test_context_window_by_hand():
    x = torch.tensor([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]], [[4.0, 40.0], [9.0, 90.0], [9.0, 90.0]]])
    mask = torch.tensor([[True, True, True], [True, False, False]])  # the second sentence has one word
    out = context_window(x, 1, mask)
    assert out.shape == (2, 3, 6)
    assert out[0].tolist() == [[0, 0, 1, 10, 2, 20], [1, 10, 2, 20, 3, 30], [2, 20, 3, 30, 0, 0]]
    assert out[1, 0].tolist() == [0, 0, 4, 40, 0, 0]  # the padding (9, 90) never enters
    wide = context_window(x[:1], 2)
    assert wide[0, 0].tolist() == [0, 0, 0, 0, 1, 10, 2, 20, 3, 30]
    assert torch.equal(context_window(x, 0), x)


def test_feedforward_baseline_sees_only_its_window():
    K = 2
    model = tagger(cell="none", window=K, layers=2)
    recurrent = tagger(cell="gru", window=K)
    words = [[5, 6, 7, 8, 9, 10, 11, 12]]
    t = 2
    for far in (t + K + 1, 7):  # a word beyond the window changes nothing at t
        changed = [list(words[0])]
        changed[0][far] = 3
        torch.testing.assert_close(model(collate(changed))[0][0, t], model(collate(words))[0][0, t])
        assert not torch.allclose(recurrent(collate(changed))[0][0, far], recurrent(collate(words))[0][0, far - 1])
    near = [list(words[0])]
    near[0][t + K] = 3  # a word inside the window does
    assert not torch.allclose(model(collate(near))[0][0, t], model(collate(words))[0][0, t])
    changed = [list(words[0])]
    changed[0][7] = 3  # ... and the recurrent tagger's word t sees a word far after it only when bidirectional
    assert not torch.allclose(
        tagger(cell="gru", bidirectional=True)(collate(changed))[0][0, t],
        tagger(cell="gru", bidirectional=True)(collate(words))[0][0, t],
    )
    assert not any(isinstance(m, torch.nn.RNNBase) for m in model.modules()) and model.encoder[0].in_features == 30


def test_crf_without_constraints_and_transitions_is_the_softmax():
    names = ["NN", "VB", "DT"]  # not span tags: no BIO constraints, and selected by token accuracy
    soft, crf = tagger(names), tagger(names, crf=True)
    assert crf.crf is not None and bool(crf.crf.allowed.all()) and crf.selection == ("token_accuracy", "max")
    crf.load_state_dict(soft.state_dict() | {k: v for k, v in crf.state_dict().items() if k.startswith("crf.")})
    words = sentences(6, seed=2)
    batch = collate(words, [[w % 3 for w in s] for s in words])
    # zero transitions: log Z = sum_t logsumexp e_t, so the CRF's NLL is the summed cross-entropy
    torch.testing.assert_close(crf.loss(batch).loss, soft.loss(batch).loss)
    assert torch.equal(crf.decode(batch).tags, soft.decode(batch).tags)
    assert int(crf.loss(batch).count) == sum(map(len, words))


def test_crf_decoding_is_valid_bio_where_the_softmax_need_not_be():
    soft, crf = tagger(), tagger(crf=True)
    crf.load_state_dict(soft.state_dict() | {k: v for k, v in crf.state_dict().items() if k.startswith("crf.")})
    with torch.no_grad():
        soft.emissions.bias[2] += 5.0  # I-NUM everywhere
        crf.emissions.bias[2] += 5.0
    batch = collate(sentences(8, seed=3))
    assert soft.decode(batch).tags[:, 0].eq(2).all()  # the softmax starts sentences with I-NUM
    for row, n in zip(crf.decode(batch).tags.tolist(), batch.lengths.tolist(), strict=True):
        tags = [TAGS[i] for i in row[:n]]
        assert tags[0] != "I-NUM" and all(b != "I-NUM" or a in ("B-NUM", "I-NUM") for a, b in itertools.pairwise(tags))


def numbers_task(n: int, seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """Words 2..5 are digits, 6..11 other words, 12 is "in" and 13 a city: a run of digits is B-NUM I-NUM ...,
    and a city is B-LOC right after "in", else O: the tags need the previous word."""
    rng = random.Random(seed)
    words, tags = [], []
    for _ in range(n):
        w = [rng.choice([rng.randrange(2, 6), rng.randrange(6, 12), 12, 13]) for _ in range(rng.randint(2, 9))]
        after = [0, *w[:-1]]  # 0: no word before the first
        t = [
            (2 if 2 <= p < 6 else 1) if 2 <= x < 6 else 3 if x == 13 and p == 12 else 0
            for p, x in zip(after, w, strict=True)
        ]
        words.append(w)
        tags.append(t)
    return words, tags


@pytest.mark.parametrize("options", [{"cell": "gru"}, {"cell": "lstm", "bidirectional": True, "crf": True}])
def test_a_tiny_tagger_learns_a_toy_task_to_100_percent(options):
    torch.manual_seed(0)
    model = SequenceTagger(14, TAGS, TagConfig(hidden=16, embed=8, **options))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    words, tags = numbers_task(300, seed=4)
    batches = [collate(words[i : i + 20], tags[i : i + 20]) for i in range(0, 300, 20)]
    for _ in range(5):
        for batch in batches:
            out = model.loss(batch)
            (out.loss / out.count).backward()
            optimizer.step()
            optimizer.zero_grad()
    test_words, test_tags = numbers_task(100, seed=5)  # sentences it never saw
    scores = model.evaluate([collate(test_words, test_tags)])
    assert scores["f1"] == 1.0 and scores["token_accuracy"] == 1.0 and scores["count"] == sum(map(len, test_words))


def test_intent_and_sentence_accuracy():
    gold, pred = [["B-A", "O"], ["O"], ["B-A"]], [["B-A", "O"], ["B-A"], ["B-A"]]
    scores = tagging_scores(gold, pred, ["x", "y", "x"], ["x", "y", "y"], per_type=True)
    assert scores["intent_accuracy"] == pytest.approx(2 / 3)
    assert scores["sentence_accuracy"] == pytest.approx(1 / 3)  # only the first has every tag and the intent
    assert scores["per_type"] == {"A": {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}}
    assert tagging_scores([["NN"]], [["VB"]], spans=False) == {"token_accuracy": 0.0}


def test_characters_of_each_distinct_word_read_once_give_the_same_emissions_and_gradients():
    """collate keeps each distinct word's characters once (pad_unique) and the tagger gathers them back: the
    emissions and every gradient equal those of reading all N words' characters."""
    torch.manual_seed(0)
    tagger = SequenceTagger(
        20, ["O", "B-X", "I-X"], TagConfig(hidden=6, embed=4, char=True, char_hidden=3), num_chars=9
    )
    words, chars = [[4, 5, 4], [5, 4]], [[[1, 2], [3], [1, 2]], [[3], [1, 2]]]
    deduped = collate(words, [[0, 1, 2], [1, 0]], chars=chars)
    assert deduped.chars.shape[0] == 2 and deduped.char_index.tolist() == [0, 1, 0, 1, 0]
    every, every_lengths = pad_ids([c for sentence in chars for c in sentence], 0)
    full = deduped._replace(chars=every, char_lengths=every_lengths, char_index=None)
    results = []
    for batch in (deduped, full):
        tagger.zero_grad()
        emissions, _ = tagger(batch)
        tagger.loss(batch).loss.backward()
        results.append((emissions.detach(), [p.grad.clone() for p in tagger.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=1e-6)
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
