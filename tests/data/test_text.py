"""read_text, tokenize and detokenize: round trips and every error message."""

import pytest

from rnnkit.data import LEVELS, Vocabulary, detokenize, read_text, tokenize
from rnnkit.data.text import EOS, read_json, short_repr
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


TEXT = "the cat sat\non the mat\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            TEXT.encode("utf-16"),
            "looks like UTF-16 (byte-order mark FF FE, little-endian): convert it with `iconv -f UTF-16",
        ),
        (b"\xfe\xff" + TEXT.encode("utf-16-be"), "looks like UTF-16 (byte-order mark FE FF, big-endian)"),
        (TEXT.encode("utf-32"), "looks like UTF-32 (byte-order mark FF FE 00 00, little-endian)"),
        (TEXT.encode("utf-16-le"), "looks like UTF-16 (little-endian, no byte-order mark: NUL bytes between the "),
        (TEXT.encode("utf-16-be"), "looks like UTF-16 (big-endian, no byte-order mark"),
        (TEXT.encode("utf-32-le"), "looks like UTF-32 (little-endian, no byte-order mark"),
        ("中文没有标记\n".encode("utf-16-le"), "-f UTF-16LE -t UTF-8"),
    ],
)
@pytest.mark.parametrize("errors", ["strict", "replace"])
def test_utf16_and_utf32_are_named_with_the_iconv_command(tmp_path, data, expected, errors):
    path = tmp_path / "wide.txt"
    path.write_bytes(data)
    with pytest.raises(RnnkitError) as info:
        read_text(path, encoding_errors=errors)  # replace would train on garbage: an error either way
    message = str(info.value)
    assert message.startswith(f"{path} ") and expected in message and "\n" not in message
    assert message.endswith(f"-t UTF-8 {path} > out.txt`") and "--encoding-errors" not in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10", "is binary, not text (a NUL byte at offset 8): give a UTF-8 text"),
        (
            b"\x3c\0\0\0\0\0\0\0" + b'{"w":{"dtype":"F32","shape":[2]}}' + bytes(8),
            "is binary, not text (a NUL byte at ",
        ),
        (b"\0" * 64, "is binary, not text (a NUL byte at offset 0)"),
        (b"\x1f\x8b\x08\x00rest", "is gzip-compressed, not text: unpack it first (`gunzip -k "),
        (b"PK\x03\x04rest", "is a zip archive, not text: unpack it first (`unzip "),
        (b"\xfd7zXZ\x00rest", "is xz-compressed, not text"),
    ],
)
def test_binary_files_are_not_text(tmp_path, data, expected):
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    with pytest.raises(RnnkitError) as info:
        read_text(path, encoding_errors="replace")
    assert str(info.value).startswith(str(path)) and expected in str(info.value)


def test_a_stray_nul_names_offset_and_line_and_the_tr_command(tmp_path):
    path = tmp_path / "nul.txt"
    path.write_bytes(b"line one\nline\0two\n" + b"more text here\n" * 10)
    with pytest.raises(RnnkitError) as info:
        read_text(path)
    expected = f"{path}: NUL byte at offset 13 (line 2) is not text: remove the NUL bytes with `tr -d '\\000' < {path}"
    assert str(info.value) == expected + " > out.txt`"


def test_read_json_errors_name_the_file_line_and_column(tmp_path):
    path = tmp_path / "x.json"
    what = "a JSON list of things"
    for content, expected in [
        ("", "x.json is empty: give a JSON list of things"),
        ("[1,\n 2,, 3]", "x.json: line 2, column 4: not JSON (Expecting value): give a JSON list of things"),
        ("[" * 3000, "x.json: line 1, column 101: JSON nested more than 100 levels deep: give a JSON list of things"),
        ("[" + "9" * 5000 + "]", "x.json: not JSON rnnkit can read (Exceeds the limit (4300 digits)"),
    ]:
        path.write_text(content)
        with pytest.raises(RnnkitError) as info:
            read_json(path, what=what)
        assert expected in str(info.value) and "\n" not in str(info.value)
    path.write_bytes(b"\xef\xbb\xbf[1, NaN]\r\n")  # a UTF-8 byte-order mark is fine
    assert read_json(path, what=what)[0] == 1
    path.write_bytes(b'["caf\xe9"]')
    with pytest.raises(RnnkitError, match=r"byte 0xe9 at offset 5 \(line 1\) is not UTF-8: give a JSON list of thi"):
        read_json(path, what=what)
    with pytest.raises(RnnkitError, match=r"is 8 bytes, more than the 4 rnnkit reads as a JSON list of things: give"):
        read_json(path, what=what, max_bytes=4)


def test_short_repr_keeps_messages_short():
    assert short_repr("a\nb") == "'a\\nb'"
    assert len(short_repr("x" * 10_000)) < 50 and len(short_repr(10**100)) < 50
    assert short_repr({"a": 1}) == "a dict of 1 item"
