"""Parallel text: aligned reading, line-count and missing-file errors, skipped pairs, single files."""

import re

import pytest

from rnnkit.data.parallel import ParallelText, parallel_paths, read_lines, read_parallel
from rnnkit.errors import RnnkitError


def write_pair(folder, src: str, tgt: str, name: str = "train"):
    (folder / f"{name}.de").write_text(src, encoding="utf-8")
    (folder / f"{name}.en").write_text(tgt, encoding="utf-8")
    return folder / f"{name}.de", folder / f"{name}.en"


@pytest.mark.filterwarnings("error")
def test_reads_aligned_lines_stripped(tmp_path):
    src, tgt = write_pair(tmp_path, "  Ein Hund läuft.\t\r\nZwei Männer.\r\n", "A dog runs.\nTwo men.  \n")
    pairs = read_parallel(src, tgt)
    assert isinstance(pairs, ParallelText)
    assert pairs.src == ["Ein Hund läuft.", "Zwei Männer."]
    assert pairs.tgt == ["A dog runs.", "Two men."]
    assert pairs.lines == [1, 2]
    assert pairs.skipped == 0
    assert len(pairs) == 2


@pytest.mark.filterwarnings("error")
def test_final_newline_is_not_an_extra_line(tmp_path):
    src, tgt = write_pair(tmp_path, "a\nb\nc\n", "x\ny\nz")
    pairs = read_parallel(src, tgt)
    assert pairs.src == ["a", "b", "c"]
    assert pairs.tgt == ["x", "y", "z"]


def test_line_count_mismatch_names_both_files_and_counts(tmp_path):
    src, tgt = write_pair(tmp_path, "s\n" * 1000, "t\n" * 999)
    with pytest.raises(RnnkitError) as err:
        read_parallel(src, tgt)
    message = str(err.value)
    assert f"{src} has 1,000 lines but {tgt} has 999" in message
    assert "must align line by line" in message
    assert "empty" not in message  # the extra line has text: no hint about blank lines


def test_line_count_mismatch_from_blank_lines_at_the_end_says_so(tmp_path):
    src, tgt = write_pair(tmp_path, "a\nb\n", "x\ny\n\n\n")
    with pytest.raises(RnnkitError, match=re.escape(f"(the last 2 lines of {tgt} are empty: delete them)")):
        read_parallel(src, tgt)
    src, tgt = write_pair(tmp_path, "a\nb\n\n", "x\ny\n")
    with pytest.raises(RnnkitError, match=re.escape(f"(the last line of {src} is empty: delete it)")):
        read_parallel(src, tgt)


def test_pairs_with_an_empty_side_are_skipped_with_one_warning(tmp_path):
    src, tgt = write_pair(tmp_path, "a\n\nc\nd\n   \nf\n", "x\ny\n\nw\nv\nu\n")
    with pytest.warns(UserWarning, match=re.escape(f"{src}, {tgt}: skipped 3 sentence pairs")) as record:
        pairs = read_parallel(src, tgt)
    assert len(record) == 1
    assert record[0].filename == __file__  # points at the caller, not at parallel.py
    assert pairs.src == ["a", "d", "f"]
    assert pairs.tgt == ["x", "w", "u"]
    assert pairs.lines == [1, 4, 6]
    assert pairs.skipped == 3


def test_one_skipped_pair_is_singular(tmp_path):
    src, tgt = write_pair(tmp_path, "a\n\n", "x\ny\n")
    with pytest.warns(UserWarning, match=r"skipped 1 sentence pair \("):
        read_parallel(src, tgt)


@pytest.mark.filterwarnings("error")
def test_skip_empty_false_keeps_every_line(tmp_path):
    src, tgt = write_pair(tmp_path, "a\n\nc\n", "x\ny\n\n")
    pairs = read_parallel(src, tgt, skip_empty=False)
    assert pairs.src == ["a", "", "c"]
    assert pairs.tgt == ["x", "y", ""]
    assert pairs.lines == [1, 2, 3]
    assert pairs.skipped == 0


def test_no_pair_with_text_on_both_sides_is_an_error(tmp_path):
    src, tgt = write_pair(tmp_path, "a\n\n", "\ny\n")
    with pytest.raises(RnnkitError, match=re.escape(f"{src} and {tgt}: no line has text in both files")):
        read_parallel(src, tgt)


def test_encoding_errors_name_the_file(tmp_path):
    src, tgt = write_pair(tmp_path, "a\n", "x\n")
    tgt.write_bytes(b"caf\xe9\n")  # Latin-1
    with pytest.raises(RnnkitError, match=re.escape(f"{tgt}: byte 0xe9 at offset 3 (line 1) is not UTF-8")):
        read_parallel(src, tgt)
    with pytest.raises(RnnkitError, match=re.escape(f"{tmp_path / 'nope.de'}: no such file")):
        read_parallel(tmp_path / "nope.de", tgt)


def test_read_lines_keeps_empty_lines(tmp_path):
    path = tmp_path / "test.de"
    path.write_text("Ein Hund.\n\n  \nZwei Katzen. \n", encoding="utf-8")
    assert read_lines(path) == ["Ein Hund.", "", "", "Zwei Katzen."]
    path.write_text("a\n\nb", encoding="utf-8")
    assert read_lines(path) == ["a", "", "b"]


def test_read_lines_splits_only_at_newlines(tmp_path):
    path = tmp_path / "test.de"
    path.write_text("a\u2028b\x0cc\nd\n", encoding="utf-8")  # splitlines() would make 4 lines of these
    assert read_lines(path) == ["a\u2028b\x0cc", "d"]


def test_parallel_paths(tmp_path):
    src, tgt = write_pair(tmp_path, "a\n", "x\n")
    assert parallel_paths(tmp_path / "train", "de", "en") == (src, tgt)
    assert parallel_paths(str(tmp_path / "train"), "en", "de") == (tgt, src)


def test_parallel_paths_missing_file_lists_similar_files(tmp_path):
    write_pair(tmp_path, "a\n", "x\n")
    (tmp_path / "valid.fr").write_text("z\n")
    prefix = tmp_path / "train"
    with pytest.raises(RnnkitError) as err:
        parallel_paths(prefix, "fr", "en", flag="--train")
    assert str(err.value) == (
        f"no {prefix}.fr (from --train {prefix} and --src-lang fr); found {prefix}.de, {prefix}.en"
    )


def test_parallel_paths_both_missing_and_a_typo(tmp_path):
    write_pair(tmp_path, "a\n", "x\n")
    prefix = tmp_path / "trian"
    with pytest.raises(RnnkitError) as err:
        parallel_paths(prefix, "de", "en", flag="--valid")
    assert str(err.value) == (
        f"no {prefix}.de or {prefix}.en (from --valid {prefix}, --src-lang de and --tgt-lang en); "
        f"no file in {tmp_path} has a name starting with 'trian'"
    )


def test_parallel_paths_prefix_with_language_suffix(tmp_path):
    write_pair(tmp_path, "a\n", "x\n")
    with pytest.raises(RnnkitError) as err:
        parallel_paths(tmp_path / "train.de", "de", "en")
    message = str(err.value)
    assert f"found {tmp_path / 'train.de'}" in message
    assert f"--train takes the prefix without the language: --train {tmp_path / 'train'}" in message


def test_parallel_paths_lists_at_most_eight_files(tmp_path):
    for i in range(11):
        (tmp_path / f"train.{i:02d}").write_text("a\n")
    with pytest.raises(RnnkitError, match=re.escape(f"{tmp_path / 'train.07'} and 3 more")):
        parallel_paths(tmp_path / "train", "de", "en")


def test_parallel_paths_missing_folder(tmp_path):
    with pytest.raises(RnnkitError, match=re.escape(f"; no folder {tmp_path / 'data'}")):
        parallel_paths(tmp_path / "data" / "train", "de", "en")


@pytest.mark.parametrize(
    ("src_lang", "tgt_lang", "match"),
    [
        ("de", "de", "--src-lang and --tgt-lang are both de: give two different languages"),
        ("", "en", "--src-lang '' is not a language code"),
        ("de", "x/en", "--tgt-lang 'x/en' is not a language code"),
    ],
)
def test_parallel_paths_bad_languages(tmp_path, src_lang, tgt_lang, match):
    with pytest.raises(RnnkitError, match=re.escape(match)):
        parallel_paths(tmp_path / "train", src_lang, tgt_lang)
