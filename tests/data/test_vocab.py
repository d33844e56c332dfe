"""Vocabulary: specials, ordering, min_freq/max_size, the PTB <unk>, JSON save/load and its errors."""

import json
import re

import pytest
import torch

from rnnkit.data import Vocabulary, tokenize
from rnnkit.errors import RnnkitError

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]


def test_specials_fixed_ids():
    vocab = Vocabulary.build([])
    assert list(vocab.tokens) == SPECIALS
    assert tuple(SPECIALS) == (vocab.PAD, vocab.UNK, vocab.BOS, vocab.EOS)
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)
    assert [vocab.index(s) for s in SPECIALS] == [0, 1, 2, 3]


def test_order_by_count_then_first_appearance():
    vocab = Vocabulary.build(["b", "a", "c", "a", "d", "c", "e"])
    # a and c twice (a first), then b, d, e once each in order of first appearance
    assert list(vocab.tokens[4:]) == ["a", "c", "b", "d", "e"]
    assert list(vocab.counts) == [0, 0, 0, 0, 2, 2, 1, 1, 1]
    assert Vocabulary.build(iter(["b", "a", "c", "a", "d", "c", "e"])) == vocab  # any iterable, deterministic


def test_min_freq_and_max_size():
    tokens = ["a", "a", "a", "b", "b", "c", "d", "d", "d", "d"]
    assert list(Vocabulary.build(tokens, min_freq=2).tokens[4:]) == ["d", "a", "b"]
    assert list(Vocabulary.build(tokens, max_size=6).tokens[4:]) == ["d", "a"]
    assert len(Vocabulary.build(tokens, max_size=4)) == 4
    assert list(Vocabulary.build(tokens, min_freq=3, max_size=100).tokens[4:]) == ["d", "a"]


def test_build_argument_errors():
    with pytest.raises(RnnkitError, match=r"min_freq must be at least 1, got 0"):
        Vocabulary.build(["a"], min_freq=0)
    with pytest.raises(RnnkitError, match=r"max_size must be at least 4 \(the specials\), got 3"):
        Vocabulary.build(["a"], max_size=3)


def test_ptb_unk_and_eos_are_the_specials():
    corpus = " the <unk> sat on the mat \n the cat <unk> \n"
    tokens = tokenize(corpus, "word")
    vocab = Vocabulary.build(tokens)
    assert vocab.tokens.count("<unk>") == 1 and vocab.tokens.count("<eos>") == 1
    assert vocab.index("<unk>") == vocab.unk_id == 1
    assert vocab.index("<eos>") == vocab.eos_id == 3
    assert vocab.counts[vocab.unk_id] == 2 and vocab.counts[vocab.eos_id] == 2
    assert list(vocab.tokens[4:]) == ["the", "sat", "on", "mat", "cat"]
    ids = vocab.encode(tokens)
    assert ids[:3] == [4, 1, 5]
    assert vocab.decode(ids) == tokens


def test_encode_decode_unknown():
    vocab = Vocabulary.build(["the", "cat", "sat"])
    ids = vocab.encode(["the", "dog", "sat", "<unk>"])
    assert ids == [4, 1, 6, 1]
    assert vocab.decode(ids) == ["the", "<unk>", "sat", "<unk>"]
    assert vocab.decode(torch.tensor(ids)) == ["the", "<unk>", "sat", "<unk>"]
    assert vocab.unknown_count(["the", "dog", "cow", "<unk>"]) == 2
    assert "cat" in vocab and "dog" not in vocab and len(vocab) == 7
    assert vocab.token(5) == "cat"


def test_lookup_errors():
    vocab = Vocabulary.build(["a"])
    with pytest.raises(RnnkitError, match=r"'zz' is not in the vocabulary of 5 tokens"):
        vocab.index("zz")
    with pytest.raises(RnnkitError, match=r"id 5 is out of range for a vocabulary of 5 tokens \(0\.\.4\)"):
        vocab.token(5)
    with pytest.raises(RnnkitError, match=r"id -1 is out of range"):
        vocab.decode([0, -1])


def test_equality():
    a = Vocabulary.build(["x", "y", "y"])
    assert a == Vocabulary.build(["y", "x", "y"])
    assert a != Vocabulary.build(["x", "y"])
    assert a != list(a.tokens)


def test_constructor_validates():
    with pytest.raises(RnnkitError, match=r"must start with the specials"):
        Vocabulary(["a", *SPECIALS])
    with pytest.raises(RnnkitError, match=r"duplicate tokens \['a'\]"):
        Vocabulary([*SPECIALS, "a", "a"])


def test_save_load_round_trip(tmp_path):
    vocab = Vocabulary.build(tokenize("héllo wörld\nhéllo <unk>\n", "word"))
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.counts == vocab.counts
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert payload["format"] == "rnnkit-vocab" and payload["version"] == 1
    assert payload["tokens"] == list(vocab.tokens) and payload["counts"] == list(vocab.counts)
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # no temporary file left behind
    vocab.save(path)  # overwrites in place
    assert Vocabulary.load(path) == vocab


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(RnnkitError, match=r"no such folder to save the vocabulary in"):
        Vocabulary.build([]).save(tmp_path / "missing" / "vocab.json")


def _write(tmp_path, payload):
    path = tmp_path / "vocab.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload), encoding="utf-8")
    return path


def test_load_missing(tmp_path):
    with pytest.raises(RnnkitError, match=r"vocab\.json: no such vocabulary file$"):
        Vocabulary.load(tmp_path / "vocab.json")
    with pytest.raises(RnnkitError, match=r"no such vocabulary file \(it is a folder\)"):
        Vocabulary.load(tmp_path)


def test_load_not_json(tmp_path):
    path = _write(tmp_path, "<pad> <unk>")
    with pytest.raises(RnnkitError, match=r"vocab\.json: line 1, column 1: not JSON \(.*\): give a vocab\.json"):
        Vocabulary.load(path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], r'not an rnnkit vocabulary \(no "format": "rnnkit-vocab" marker\)'),
        ({"format": "other", "version": 1, "tokens": SPECIALS, "counts": [0] * 4}, r"not an rnnkit vocabulary"),
        ({"format": "rnnkit-vocab", "version": 2, "tokens": SPECIALS, "counts": [0] * 4}, r"version 2 is not supp"),
        ({"format": "rnnkit-vocab", "version": 1, "tokens": "abc", "counts": []}, r'"tokens" must be a list of str'),
        ({"format": "rnnkit-vocab", "version": 1, "tokens": SPECIALS, "counts": ["1"] * 4}, r'"counts" must be a list'),
        ({"format": "rnnkit-vocab", "version": 1, "tokens": [*SPECIALS, "a", "a"], "counts": [0] * 6}, r"duplicate"),
        ({"format": "rnnkit-vocab", "version": 1, "tokens": ["a", *SPECIALS], "counts": [0] * 5}, r"start with the s"),
        ({"format": "rnnkit-vocab", "version": 1, "tokens": SPECIALS, "counts": [0] * 3}, r"3 counts for 4 tokens"),
    ],
)
def test_load_invalid(tmp_path, payload, message):
    path = _write(tmp_path, payload)
    with pytest.raises(RnnkitError, match=r"vocab\.json: .*" + message):
        Vocabulary.load(path)


def payload(**change):
    return {"format": "rnnkit-vocab", "version": 1, "tokens": [*SPECIALS, "a"], "counts": [0, 0, 0, 0, 1], **change}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, r'not an rnnkit vocabulary \(no "format": "rnnkit-vocab" marker\): give a vocab\.json written by'),
        ('"rnnkit-vocab"', r"not an rnnkit vocabulary"),
        (payload(format="RNNKIT-VOCAB"), r"not an rnnkit vocabulary"),
        (payload(version=True), r'"version" must be a positive integer, got True: give a vocab\.json written by rnn'),
        (payload(version=0), r'"version" must be a positive integer, got 0'),
        (payload(version="1"), r"\"version\" must be a positive integer, got '1'"),
        ({k: v for k, v in payload().items() if k != "version"}, r'"version" must be a positive integer, got None'),
        (payload(tokens=None), r'"tokens" must be a list of strings, got None$'),
        (payload(tokens={"<pad>": 0}), r'"tokens" must be a list of strings, got a dict of 1 item$'),
        (payload(tokens=[*SPECIALS, 5]), r'"tokens" must be a list of strings: token 4 is 5$'),
        (payload(tokens=[*SPECIALS, ["a"]]), r'"tokens" must be a list of strings: token 4 is a list of 1 item$'),
        (payload(tokens=[*SPECIALS, "\ud800"]), r"token 4 '\\ud800' is not valid Unicode \(a lone surrogate\)"),
        (
            payload(tokens=SPECIALS[:3], counts=[0] * 3),
            r"the tokens must start with the specials .*, got \['<pad>', '<unk>', '<",
        ),
        (payload(tokens=[*SPECIALS, "y" * 999, "y" * 999]), r"duplicate tokens \['yyyyy.*\.\.\.'\]: each token must"),
        (payload(counts=None), r'"counts" must be a list of integers, got None$'),
        (payload(counts=[0, 0, 0, 0, 1.5]), r'"counts" must be a list of integers: count 4 is 1\.5$'),
        (payload(counts=[0, 0, 0, 0, False]), r'"counts" must be a list of integers: count 4 is False$'),
        (payload(counts=[0, 0, 0, 0, None]), r'"counts" must be a list of integers: count 4 is None$'),
        (payload(counts=[0, 0, 0, 0, 1, 2]), r"6 counts for 5 tokens: give one count per token"),
        (payload(counts=[0, 0, 0, 0, -3]), r"count 4 \(of token 'a'\) is -3: a count must be at least 0$"),
    ],
)
def test_load_hostile_payloads_name_the_file_and_the_entry(tmp_path, value, message):
    path = _write(tmp_path, value)
    with pytest.raises(RnnkitError, match=rf"^{re.escape(str(path))}: {message}") as info:
        Vocabulary.load(path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"vocab\.json is empty: give a vocab\.json written by rnnkit$"),
        (json.dumps(payload()).encode("utf-16"), r"vocab\.json looks like UTF-16 \(byte-order mark FF FE, little-end"),
        (
            b'{"tokens": ["\xff"]}',
            r"byte 0xff at offset 13 \(line 1\) is not UTF-8: give a vocab\.json written by rnnk",
        ),
        (b"[" * 5000, r"vocab\.json: line 1, column 101: JSON nested more than 100 levels deep"),
        (b'{"counts": [' + b"1" * 5000 + b"]}", r"vocab\.json: not JSON rnnkit can read \(Exceeds the limit"),
        (b"\x1f\x8b\x08\x00", r"vocab\.json is gzip-compressed, not text"),
    ],
)
def test_load_unreadable_files(tmp_path, content, message):
    path = tmp_path / "vocab.json"
    path.write_bytes(content)
    with pytest.raises(RnnkitError, match=message):
        Vocabulary.load(path)


def test_load_accepts_a_utf8_byte_order_mark_and_crlf(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(payload(), indent=1).replace("\n", "\r\n").encode())
    assert Vocabulary.load(path).tokens[-1] == "a"


def test_constructor_checks_types():
    with pytest.raises(RnnkitError, match=r"invalid vocabulary: \"tokens\" must be a list of strings: token 4 is 7"):
        Vocabulary([*SPECIALS, 7])
    with pytest.raises(RnnkitError, match=r"invalid vocabulary: counts must be integers \(invalid literal"):
        Vocabulary([*SPECIALS, "a"], [0, 0, 0, 0, "many"])
    with pytest.raises(RnnkitError, match=r"invalid vocabulary: count 4 \(of token 'a'\) is -1"):
        Vocabulary([*SPECIALS, "a"], [0, 0, 0, 0, -1])
