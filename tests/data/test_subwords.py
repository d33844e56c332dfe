"""Subwords: deterministic quiet training, round trips, files, and sentencepiece's errors as one rnnkit line."""

import random
import re

import pytest
import sentencepiece

from rnnkit.data import Vocabulary
from rnnkit.data.subwords import Subwords
from rnnkit.errors import RnnkitError

TEXT = (
    "ein eine zwei drei Hund Hunde Katze Katzen Mann Männer Frau Frauen Kind Kinder läuft laufen spielt spielen "
    "über unter auf dem der die das Straße Straßen größer schön grün weiß Bäume Wasser Ball Fahrrad "
    ", . ! ? „ “ :"
)
WORDS = TEXT.split()


def corpus(n: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))) for _ in range(n)]


@pytest.fixture(scope="module")
def bpe() -> Subwords:
    return Subwords.train(corpus(), vocab_size=80, model_type="bpe")


@pytest.fixture(scope="module")
def unigram() -> Subwords:
    return Subwords.train(corpus(), vocab_size=80, model_type="unigram")


ROUND_TRIP = [
    "Zwei Männer spielen Ball auf der Straße.",
    "Die größer Katze läuft über das grüne Wasser!",
    "„Schön“, sagt die Frau: ein Fahrrad?",
    "Öl, Übung und Ärger: ÄÖÜ äöü ß.",  # capitals never seen in training
    "Ω and 漢字 are unknown characters",  # encode as their own surface strings
]


@pytest.mark.parametrize("text", ROUND_TRIP)
@pytest.mark.parametrize("model", ["bpe", "unigram"])
def test_round_trip(request, model, text):
    subwords = request.getfixturevalue(model)
    pieces = subwords.encode(text)
    assert all(isinstance(p, str) and p for p in pieces)
    assert subwords.decode(pieces) == text


def test_pieces_split_words(bpe):
    pieces = bpe.encode("Zwei Männer")
    assert pieces[0].startswith("▁")
    assert "".join(pieces) == "▁Zwei▁Männer"


def test_decode_matches_sentencepiece_on_known_pieces(bpe):
    sp = sentencepiece.SentencePieceProcessor(model_proto=bpe.to_bytes())
    for text in corpus(20, seed=3):
        pieces = bpe.encode(text)
        assert bpe.decode(pieces) == sp.decode_pieces(pieces) == text


def test_decode_any_strings(bpe):
    # sentencepiece's decode_pieces keeps the ▁ of pieces it does not know; the network may emit rnnkit's <unk>
    assert bpe.decode(["▁ein", "<unk>", "▁Hund"]) == "ein<unk> Hund"
    assert bpe.decode(["▁zzz", "▁", "▁x", "▁"]) == "zzz x"
    assert bpe.decode([]) == ""


def test_encode_normalizes_whitespace(bpe):
    assert bpe.encode("") == []
    assert bpe.decode(bpe.encode("  zwei   Hunde\t laufen  ")) == "zwei Hunde laufen"


def test_pieces_have_no_special_of_their_own(bpe, unigram):
    for subwords in (bpe, unigram):
        assert len(subwords.pieces) == 79  # 80 with sentencepiece's <unk>
        assert not {"<unk>", "<s>", "</s>", "<pad>"} & set(subwords.pieces)
    vocab = Vocabulary([*Vocabulary.SPECIALS, *bpe.pieces])  # the design: rnnkit owns the specials
    ids = vocab.encode(bpe.encode("zwei Männer laufen."))
    assert vocab.unk_id not in ids
    assert vocab.encode(bpe.encode("Ω"))[-1] == vocab.unk_id  # an unknown character's surface string


def test_training_is_deterministic(bpe, unigram):
    lines = corpus()
    assert Subwords.train(lines, vocab_size=80, model_type="bpe") == bpe
    again = Subwords.train(iter(lines), vocab_size=80, model_type="unigram")  # any iterable, read once
    assert again == unigram
    assert again.pieces == unigram.pieces
    assert bpe != unigram


def test_training_is_quiet(capfd):
    Subwords.train(corpus(100), vocab_size=60, model_type="unigram")
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


def test_blank_lines_are_left_out_and_long_lines_kept():
    long_line = " ".join(["Ψψ"] * 2500)  # 12,499 bytes: sentencepiece skips lines over 4,192 by default
    subwords = Subwords.train([*corpus(100), "", "   ", long_line], vocab_size=60, model_type="bpe")
    assert "Ψ" in "".join(subwords.pieces)


def test_save_and_load(tmp_path, bpe):
    path = tmp_path / "subwords.model"
    bpe.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subwords.model"]
    assert path.read_bytes() == bpe.to_bytes()
    loaded = Subwords.load(path)
    assert loaded == bpe
    assert loaded.encode(ROUND_TRIP[0]) == bpe.encode(ROUND_TRIP[0])
    assert sentencepiece.SentencePieceProcessor(model_file=str(path)).get_piece_size() == 80  # spm's own format


def test_save_errors(tmp_path, bpe):
    with pytest.raises(RnnkitError, match="no such folder"):
        bpe.save(tmp_path / "missing" / "subwords.model")
    with pytest.raises(RnnkitError, match="is a folder"):
        bpe.save(tmp_path)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty"),
        (b"hello world\n", "it does not parse"),
        (b'{"format": "rnnkit-vocab", "tokens": []}\n', "it does not parse"),
    ],
)
def test_load_rejects_what_is_not_a_model(tmp_path, data, reason):
    path = tmp_path / "subwords.model"
    path.write_bytes(data)
    with pytest.raises(RnnkitError) as err:
        Subwords.load(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not a sentencepiece model: {reason}")
    assert "INTERNAL" not in message
    assert ".cc(" not in message


def test_load_rejects_a_model_without_unk(tmp_path):
    path = tmp_path / "subwords.model"
    path.write_bytes(b"\x0a\x08\x0a\x01a\x15\x00\x00\x00\x00")  # ModelProto with one normal piece "a", no <unk>
    with pytest.raises(RnnkitError, match=re.escape(f"{path} is not a sentencepiece model: unk is not defined")):
        Subwords.load(path)


def test_load_missing_file_or_folder(tmp_path):
    with pytest.raises(RnnkitError, match=re.escape(f"{tmp_path / 'x.model'}: no such file")):
        Subwords.load(tmp_path / "x.model")
    with pytest.raises(RnnkitError, match="is a folder: give a sentencepiece model"):
        Subwords.load(tmp_path)


def test_vocab_size_too_large_says_the_largest():
    lines = corpus(100)
    with pytest.raises(RnnkitError) as err:
        Subwords.train(lines, vocab_size=5000, model_type="bpe")
    message = str(err.value)
    most = int(re.search(r"at most ([\d,]+) pieces", message).group(1).replace(",", ""))
    assert message.startswith("--subword-vocab 5,000 is too large for the training text")
    assert message.endswith(f"lower --subword-vocab to {most:,} or less")
    assert "INTERNAL" not in message
    assert len(Subwords.train(lines, vocab_size=most, model_type="bpe").pieces) == most - 1  # the bound is right


def test_vocab_size_too_small_says_the_least():
    with pytest.raises(RnnkitError) as err:
        Subwords.train(["abc abd"], vocab_size=3, model_type="unigram")
    # a, b, c, d and ▁ (the word start) need a piece each, and <unk> one more
    assert str(err.value) == (
        "--subword-vocab 3 is too small for the training text: each of its 5 characters needs a piece, "
        "and <unk> one more: raise --subword-vocab to at least 6"
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 0}, "--subword-vocab must be an integer of at least 2, got 0"),
        ({"vocab_size": 50.0}, "--subword-vocab must be an integer of at least 2, got 50.0"),
        ({"vocab_size": 50, "model_type": "word"}, "unknown subword model type 'word': use one of bpe, unigram"),
        ({"vocab_size": 50, "character_coverage": 0}, "character_coverage must be in (0, 1], got 0"),
        ({"vocab_size": 50, "threads": 0}, "threads must be a positive integer, got 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(RnnkitError, match=re.escape(match)):
        Subwords.train(corpus(10), **kwargs)


def test_no_text():
    with pytest.raises(RnnkitError, match="no text to learn subwords from"):
        Subwords.train(["", "  ", "\t"], vocab_size=50)
