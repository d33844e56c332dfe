"""read_text, tokenize and detokenize: round trips and every error message."""

import pytest

from rnnkit.data import LEVELS, Vocabulary, detokenize, read_text, tokenize
from rnnkit.data.text import EOS
from rnnkit.errors import RnnkitError


def test_read_text_normalises_crlf_and_drops_bom(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"\xef\xbb\xbfcaf\xc3\xa9\r\nline two\r\n")
    assert read_text(path) == "café\nline two\n"
    assert read_text(str(path)) == "café\nline two\n"


def test_read_text_missing_file(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(RnnkitError, match=r"nope\.txt: no such file$"):
        read_text(path)


def test_read_text_folder(tmp_path):
    with pytest.raises(RnnkitError, match=r"is a folder: give a text file"):
        read_text(tmp_path)


@pytest.mark.parametrize("content", [b"", b"  \n\t\r\n"])
def test_read_text_empty(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(RnnkitError, match=r"empty\.txt is empty: give a file with text"):
        read_text(path)


def test_read_text_not_utf8_names_offset_line_and_byte(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\nab\xffcd")
    with pytest.raises(RnnkitError) as info:
        read_text(path)
    message = str(info.value)
    expected = "byte 0xff at offset 5 (line 2) is not UTF-8: fix the file or pass --encoding-errors replace"
    assert message == f"{path}: {expected}"
    assert "\n" not in message


def test_read_text_encoding_errors_replace_and_ignore(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\nab\xffcd")
    assert read_text(path, encoding_errors="replace") == "ok\nab\ufffdcd"
    assert read_text(path, encoding_errors="ignore") == "ok\nabcd"


def test_read_text_unknown_encoding_errors(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("hi\n")
    with pytest.raises(RnnkitError, match=r"encoding_errors='skip' is not supported: use one of strict, replace"):
        read_text(path, encoding_errors="skip")


def test_tokenize_char_keeps_newlines():
    assert tokenize("ab\nc d\n", "char") == ["a", "b", "\n", "c", " ", "d", "\n"]


def test_tokenize_word_ptb_convention():
    text = " the cat  sat\n\n<unk> ran\t away\n   \nend"
    assert tokenize(text, "word") == ["the", "cat", "sat", EOS, "<unk>", "ran", "away", EOS, "end", EOS]
    assert EOS == Vocabulary.EOS


@pytest.mark.parametrize("level", ["char", "word"])
def test_tokenize_detokenize_round_trip(level):
    text = "the cat sat\non the mat\ncafé ünïcode\n"
    assert detokenize(tokenize(text, level), level) == text


def test_detokenize_word_without_final_eos():
    assert detokenize(["a", "b", EOS, "c"], "word") == "a b\nc"


@pytest.mark.parametrize("fn", [lambda level: tokenize("x", level), lambda level: detokenize(["x"], level)])
def test_unknown_level(fn):
    assert LEVELS == ("char", "word")
    with pytest.raises(RnnkitError, match=r"unknown tokenization level 'byte': use one of char, word$"):
        fn("byte")
