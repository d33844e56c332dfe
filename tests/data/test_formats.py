"""Classification and tagging readers (rnnkit.data.formats) and tag schemes (rnnkit.data.tags).

Each reader on a small hand-made file with the exact examples expected, each bad input with its one-line error
or its counted warning, tag-scheme round trips worked by hand and as a property, and the real data sets in
../shared/data (skipped when that folder is absent).
"""

import re
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnnkit.data.formats import (
    Example,
    KeyphraseDocument,
    TaggedSentence,
    detect_classification_format,
    read_atis,
    read_classification,
    read_conll,
    read_inspec,
    read_sst,
    read_tagging,
    read_tagging_jsonl,
    read_tsv,
)
from rnnkit.data.tags import SCHEMES, as_bio, check_scheme, detect_scheme, from_bio, repair_bio, spans, to_bio
from rnnkit.errors import RnnkitError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
real_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not here")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(RnnkitError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------- classification


def test_read_tsv_exact_examples(tmp_path):
    path = write(tmp_path / "train.tsv", "pos\ta  fine film\nneg\tdull ,\tslow\n")
    assert read_tsv(path) == [Example(["a", "fine", "film"], ["pos"]), Example(["dull", ",", "slow"], ["neg"])]


def test_read_tsv_label_sep_gives_several_labels(tmp_path):
    path = write(tmp_path / "intents.tsv", "atis_flight#atis_airfare\tfares to boston\natis_flight\tto denver\n")
    assert read_tsv(path, label_sep="#") == [
        Example(["fares", "to", "boston"], ["atis_flight", "atis_airfare"]),
        Example(["to", "denver"], ["atis_flight"]),
    ]


def test_read_tsv_missing_label_column_names_the_line(tmp_path):
    path = write(tmp_path / "train.tsv", "pos\tgood\nno tab here\n")
    message = one_line_error(read_tsv, path)
    assert message.startswith(f"{path}:2: no tab, so no label column: expected label<TAB>text, got 'no tab here'")


def test_read_tsv_empty_label_and_label_without_text(tmp_path):
    path = write(tmp_path / "a.tsv", "pos\tgood\n\tno label\n")
    assert one_line_error(read_tsv, path).startswith(f"{path}:2: the label before the tab is empty")
    path = write(tmp_path / "b.tsv", "pos\tgood\nneg\t \n")
    assert one_line_error(read_tsv, path).startswith(f"{path}:2: no text after the label")


def test_read_sst_exact_examples_and_empty_lines_counted(tmp_path):
    path = write(tmp_path / "stsa.binary.train", "1 a stirring , funny film\n\n0 dull .\n   \n0 slow\n")
    with pytest.warns(UserWarning, match=re.escape(f"{path}: skipped 2 empty lines")) as record:
        examples = read_sst(path)
    assert len(record) == 1
    assert examples == [
        Example(["a", "stirring", ",", "funny", "film"], ["1"]),
        Example(["dull", "."], ["0"]),
        Example(["slow"], ["0"]),
    ]


def test_read_sst_label_without_text(tmp_path):
    path = write(tmp_path / "stsa.binary.dev", "1 good\n0\n")
    assert one_line_error(read_sst, path).startswith(f"{path}:2: no text after the label")


def test_read_classification_jsonl_text_tokens_label_labels(tmp_path):
    lines = [
        '{"text": "a fine  film", "label": "pos"}',
        '{"tokens": ["dull", "."], "label": 0}',
        '{"text": "news about sport", "labels": ["news", "sport"]}',
    ]
    path = write(tmp_path / "train.jsonl", "\n".join(lines) + "\n")
    assert read_classification(path) == [
        Example(["a", "fine", "film"], ["pos"]),
        Example(["dull", "."], ["0"]),
        Example(["news", "about", "sport"], ["news", "sport"]),
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"text": "ok", "label": 1', "column 26: not JSON (Expecting ',' delimiter): give one JSON object per line"),
        ('["ok", 1]', "a list of 2 items is not a JSON object: give one JSON object per line"),
        ('{"label": 1}', 'no "text" or "tokens" field: give each object its text'),
        ('{"text": 3, "label": 1}', '"text" is 3: give a string'),
        ('{"tokens": "ok", "label": 1}', "\"tokens\" is 'ok': give a list of strings"),
        ('{"text": "ok"}', 'no "label" or "labels" field: give each object its label'),
        ('{"text": "ok", "label": 1.5}', '"label" is 1.5: give a non-empty string or an integer'),
        ('{"text": "ok", "label": " "}', "\"label\" is ' ': give a non-empty string or an integer"),
        ('{"text": "ok", "labels": "a"}', "\"labels\" is 'a': give a list of strings or integers"),
        ('{"tokens": ["a", " "], "label": 1}', "\"tokens\" has an empty token at position 2 (' '): give each token"),
    ],
)
def test_read_classification_jsonl_errors_name_the_line(tmp_path, line, expected):
    path = write(tmp_path / "train.jsonl", '{"text": "fine", "label": 0}\n' + line + "\n")
    assert one_line_error(read_classification, path).startswith(f"{path}:2: {expected}")


@pytest.mark.parametrize(
    ("name", "first_line", "expected"),
    [
        ("a.tsv", "1 no tab", "tsv"),
        ("a.jsonl", "1 not json", "jsonl"),
        ("a.json", "1 not json", "jsonl"),
        ("stsa.binary.train", "1 good film", "sst"),
        ("a.txt", "pos\tgood film", "tsv"),
        ("a.txt", '{"text": "good\\tfilm", "label": 1}', "jsonl"),
        ("a.txt", "{ curly } token", "sst"),
    ],
)
def test_detect_classification_format(tmp_path, name, first_line, expected):
    path = write(tmp_path / name, "\n\n" + first_line + "\n")
    assert detect_classification_format(path) == expected


def test_read_classification_auto_reads_what_it_detects(tmp_path):
    sst = write(tmp_path / "sst", "1 good\n")
    tsv = write(tmp_path / "tsv", "1\tgood\n")
    assert read_classification(sst) == read_classification(tsv) == [Example(["good"], ["1"])]


def test_read_classification_unknown_format(tmp_path):
    path = write(tmp_path / "a.csv", "1,good\n")
    assert one_line_error(read_classification, path, "csv") == (
        "unknown classification format 'csv': use one of auto, tsv, sst, jsonl"
    )


def test_read_classification_not_utf8_is_read_texts_error(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"pos\tcaf\xe9\n")
    assert one_line_error(read_classification, path).startswith(f"{path}: byte 0xe9 at offset 7 (line 1) is not UTF-8")


# ---------------------------------------- tagging: CoNLL


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def test_read_conll_exact_sentences(tmp_path):
    path = write(tmp_path / "eng.train", CONLL)
    assert read_conll(path) == [
        TaggedSentence(["EU", "rejects", "German"], ["B-ORG", "O", "B-MISC"]),
        TaggedSentence(["Peter", "Blackburn"], ["B-PER", "I-PER"]),
    ]


def test_read_conll_columns_chunk_and_pos(tmp_path):
    path = write(tmp_path / "eng.train", CONLL)
    chunks = read_conll(path, tag_column=2)
    assert [s.tags for s in chunks] == [["B-NP", "B-VP", "B-NP"], ["B-NP", "I-NP"]]
    pos = read_conll(path, token_column=-4, tag_column=1)  # not span tags: kept as written
    assert pos[0] == TaggedSentence(["EU", "rejects", "German"], ["NNP", "VBZ", "JJ"])


def test_read_conll_tabs_and_crlf(tmp_path):
    path = tmp_path / "inspec.txt"
    path.write_bytes(b"Mobile\tB-KEY\r\ncommerce\tI-KEY\r\n:\tO\r\n\r\n")
    assert read_conll(path) == [TaggedSentence(["Mobile", "commerce", ":"], ["B-KEY", "I-KEY", "O"])]


def test_read_conll_wrong_column_count_names_line_expected_and_received(tmp_path):
    path = write(tmp_path / "eng.train", "EU NNP B-NP B-ORG\nrejects VBZ O\n")
    assert one_line_error(read_conll, path) == (
        f"{path}:2: expected 4 columns (as on line 1), received 3: "
        "give every token line the same columns, separated by spaces or tabs"
    )


def test_read_conll_column_out_of_range(tmp_path):
    path = write(tmp_path / "train.txt", "\nConfidence NN B-NP\n")
    assert one_line_error(read_conll, path, tag_column=3) == (
        f"{path}:2: tag_column=3, but the line has 3 columns: give a column from -3 to 2"
    )


def test_read_conll_empty_sentences_skipped_and_counted(tmp_path):
    path = write(tmp_path / "train.txt", "\na B-NP\n\n\n\nb B-NP\n\n")
    with pytest.warns(UserWarning, match=re.escape(f"{path}: skipped 3 empty sentences")) as record:
        sentences = read_conll(path)
    assert len(record) == 1
    assert sentences == [TaggedSentence(["a"], ["B-NP"]), TaggedSentence(["b"], ["B-NP"])]


def test_read_conll_i_without_b_repaired_and_counted(tmp_path):
    path = write(tmp_path / "ner.txt", "EU B-ORG\nsays O\nPeter I-PER\nBlack I-PER\nin O\nBonn I-LOC\n")
    with pytest.warns(UserWarning, match=re.escape(f"{path}: 2 I- tag(s) without a B- or I-")) as record:
        (sentence,) = read_conll(path)
    assert len(record) == 1
    assert sentence.tags == ["B-ORG", "O", "B-PER", "I-PER", "O", "B-LOC"]


def test_read_conll_iob1_and_iobes_read_as_bio_without_warning(tmp_path):
    iob1 = write(tmp_path / "iob1.txt", "EU I-ORG\nUN B-ORG\nsay O\nPeter I-PER\n")
    iobes = write(tmp_path / "iobes.txt", "EU S-ORG\nUN S-ORG\nsay O\nPeter B-PER\nBlack E-PER\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_conll(iob1)[0].tags == ["B-ORG", "B-ORG", "O", "B-PER"]
        assert read_conll(iobes)[0].tags == ["B-ORG", "B-ORG", "O", "B-PER", "I-PER"]
        assert read_conll(iob1, scheme=None)[0].tags == ["I-ORG", "B-ORG", "O", "I-PER"]


def test_read_conll_explicit_scheme_on_pos_tags(tmp_path):
    path = write(tmp_path / "eng.train", CONLL)
    assert one_line_error(read_conll, path, tag_column=1, scheme="bio") == (
        f"{path}: sentence 1 has the tag 'NNP', which is not a bio tag: "
        "pass scheme='auto' or scheme=None to keep tags as written"
    )
    assert one_line_error(read_conll, path, scheme="bilou").startswith(f"{path}: unknown tag scheme 'bilou'")


# ---------------------------------------- tagging: ATIS folders and JSON lines


def atis(folder: Path, seq_in: str, seq_out: str, label: str | None = None) -> Path:
    folder.mkdir()
    write(folder / "seq.in", seq_in)
    write(folder / "seq.out", seq_out)
    if label is not None:
        write(folder / "label", label)
    return folder


def test_read_atis_folder_with_intents(tmp_path):
    folder = atis(
        tmp_path / "train",
        "i want to fly to boston\nfares to denver\n",
        "O O O O O B-toloc.city_name\nO O B-toloc.city_name\n",
        "atis_flight\natis_flight#atis_airfare\n",
    )
    assert read_tagging(folder) == [
        TaggedSentence(["i", "want", "to", "fly", "to", "boston"], ["O"] * 5 + ["B-toloc.city_name"], "atis_flight"),
        TaggedSentence(["fares", "to", "denver"], ["O", "O", "B-toloc.city_name"], "atis_flight#atis_airfare"),
    ]


def test_read_atis_without_label_and_empty_lines_counted(tmp_path):
    folder = atis(tmp_path / "test", "to boston\n\n", "O B-toloc.city_name\n\n")
    with pytest.warns(UserWarning, match=re.escape(f"{folder}: skipped 1 empty sentence")):
        assert read_atis(folder) == [TaggedSentence(["to", "boston"], ["O", "B-toloc.city_name"])]


def test_read_atis_files_of_different_lengths_name_both(tmp_path):
    folder = atis(tmp_path / "dev", "a\nb\nc\n", "O\nO\n")
    assert one_line_error(read_atis, folder) == (
        f"{folder / 'seq.in'} has 3 lines but {folder / 'seq.out'} has 2: give one line per sentence in each file"
    )
    folder = atis(tmp_path / "dev2", "a\nb\n", "O\nO\n", "atis_flight\n")
    assert one_line_error(read_atis, folder).startswith(f"{folder / 'seq.in'} has 2 lines but {folder / 'label'} has 1")


def test_read_atis_token_tag_mismatch_names_the_line(tmp_path):
    folder = atis(tmp_path / "train", "to boston\nfrom denver to dallas\n", "O B-toloc.city_name\nO B-x O\n")
    assert one_line_error(read_atis, folder) == (
        f"{folder / 'seq.out'}:2: 3 tags for the 4 tokens of {folder / 'seq.in'}:2: give one tag per token"
    )


def test_read_atis_missing_files(tmp_path):
    message = one_line_error(read_atis, tmp_path / "nope")
    assert (
        message
        == f"{tmp_path / 'nope'} is not a folder: give an ATIS folder holding seq.in, seq.out and optionally label"
    )
    (tmp_path / "empty").mkdir()
    assert one_line_error(read_atis, tmp_path / "empty").startswith(f"{tmp_path / 'empty'}: no seq.in")


def test_read_tagging_jsonl_exact_and_errors(tmp_path):
    lines = ['{"tokens": ["to", "boston"], "tags": ["O", "B-city"], "intent": "atis_flight"}', "", '{"text": "x y"}']
    path = write(tmp_path / "train.jsonl", "\n".join(lines[:2]) + "\n")
    with pytest.warns(UserWarning, match="skipped 1 empty line"):
        assert read_tagging(path) == [TaggedSentence(["to", "boston"], ["O", "B-city"], "atis_flight")]
    path = write(tmp_path / "bad.jsonl", lines[0] + "\n" + lines[2] + "\n")
    assert one_line_error(read_tagging_jsonl, path) == f'{path}:2: no "tags" field: give each object its tags'
    path = write(tmp_path / "short.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n')
    assert one_line_error(read_tagging_jsonl, path) == f"{path}:1: 1 tags for 2 tokens: give one tag per token"


def test_read_inspec_keeps_id_and_keyphrases(tmp_path):
    line = '{"id": "683", "tokens": ["Knowledge", "management", "."], "tags": ["B-KEY", "I-KEY", "O"], '
    path = write(tmp_path / "train.jsonl", line + '"keyphrases": ["knowledge management", "absent one"]}\n')
    tokens, tags = ["Knowledge", "management", "."], ["B-KEY", "I-KEY", "O"]
    assert read_inspec(path) == [KeyphraseDocument("683", tokens, tags, ["knowledge management", "absent one"])]
    path = write(tmp_path / "bare.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n')
    assert one_line_error(read_inspec, path) == f'{path}:1: no "keyphrases" field: give each object its keyphrases'


def test_read_tagging_dispatch_and_unknown_format(tmp_path):
    conll = write(tmp_path / "a.json.txt", "a B-X\n")
    assert read_tagging(conll) == [TaggedSentence(["a"], ["B-X"])]
    jsonl = write(tmp_path / "a.json", '{"tokens": ["a"], "tags": ["B-X"]}\n')
    assert read_tagging(jsonl) == read_tagging(conll)
    assert one_line_error(read_tagging, conll, "bio") == (
        "unknown tagging format 'bio': use one of auto, conll, atis, jsonl"
    )


# ---------------------------------------- tag schemes


@pytest.mark.parametrize(
    ("tags", "scheme"),
    [
        ([["B-PER", "I-PER", "O", "B-LOC"]], "bio"),
        ([["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]], "iob1"),
        ([["O", "S-PER"], ["B-LOC", "E-LOC"]], "iobes"),
        ([["O", "O"]], "bio"),
        ([["O", "I-PER"], ["B-LOC"]], "bio"),  # a broken BIO file, not IOB1: some span starts with B-
        ([["NN", "O"]], None),
    ],
)
def test_detect_scheme(tags, scheme):
    assert detect_scheme(tags) == scheme


def test_round_trip_worked_by_hand():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "O", "I-ORG", "B-ORG", "I-ORG"]
    bio = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "O", "B-ORG", "B-ORG", "I-ORG"]
    iobes = ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "O", "S-ORG", "B-ORG", "E-ORG"]
    assert to_bio(iob1, "iob1") == bio
    assert from_bio(bio, "iobes") == iobes
    assert to_bio(iobes, "iobes") == bio
    assert from_bio(bio, "iob1") == iob1
    assert from_bio(bio, "iob2") == bio
    expected = [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5), ("ORG", 6, 7), ("ORG", 7, 9)]
    assert spans(bio) == spans(iob1, "iob1") == spans(iobes, "iobes") == expected


def test_repair_bio_counts():
    assert repair_bio(["I-A", "I-A", "O", "I-B", "B-B", "I-C", "I-C"]) == (
        ["B-A", "I-A", "O", "B-B", "B-B", "B-C", "I-C"],
        3,
    )
    assert repair_bio(["B-A", "I-A"]) == (["B-A", "I-A"], 0)
    assert as_bio([["O", "I-A"], ["B-B", "I-B"]]) == ([["O", "B-A"], ["B-B", "I-B"]], 1)
    assert as_bio([["O", "I-A"], ["I-B"]]) == ([["O", "B-A"], ["B-B"]], 0)  # no span starts with B-: IOB1
    assert as_bio([["NN"]]) == ([["NN"]], 0)
    assert one_line_error(as_bio, [["O"], ["B-A", "E-A"]], "bio").startswith("sentence 2 has the tag 'E-A', which")


def test_spans_and_scheme_errors():
    assert spans([]) == []
    assert spans(["O", "I-A", "I-B"]) == [("A", 1, 2), ("B", 2, 3)]  # like conlleval: a stray I- starts a span
    assert one_line_error(spans, ["B-A", "NN"]) == "tag 'NN' at position 1 is not a bio tag: give O, B-X or I-X"
    assert check_scheme("IOBES") == "iobes"
    assert one_line_error(check_scheme, "bilou") == "unknown tag scheme 'bilou': use one of bio (or iob2), iob1, iobes"


@st.composite
def bio_sequences(draw):
    """Valid BIO tags built from spans, and the spans they were built from."""
    tags, expected = [], []
    for item in draw(st.lists(st.one_of(st.none(), st.tuples(st.sampled_from("ABC"), st.integers(1, 4))))):
        if item is None:
            tags.append("O")
            continue
        kind, length = item
        expected.append((kind, len(tags), len(tags) + length))
        tags += [f"B-{kind}"] + [f"I-{kind}"] * (length - 1)
    return tags, expected


@given(bio_sequences(), st.sampled_from(SCHEMES))
def test_from_bio_then_to_bio_is_the_identity_and_keeps_spans(case, scheme):
    bio, expected = case
    written = from_bio(bio, scheme)
    assert to_bio(written, scheme) == bio
    assert spans(bio) == spans(written, scheme) == expected
    assert repair_bio(bio) == (bio, 0)
    assert detect_scheme([written]) == (scheme if expected else "bio")


# ---------------------------------------- the real data sets (../shared/data)


@real_data
@pytest.mark.filterwarnings("error")
def test_real_atis():
    train, dev = read_tagging(DATA / "atis" / "train"), read_tagging(DATA / "atis" / "dev")
    assert (len(train), len(dev)) == (4478, 500)
    assert all(s.intent for s in train + dev)
    assert sum(len(s.tokens) for s in train) == 50_497
    assert train[0].intent == "atis_flight" and train[0].tags[-2:] == ["B-round_trip", "I-round_trip"]


@real_data
@pytest.mark.filterwarnings("error")
def test_real_conll2003():
    sentences = read_tagging(DATA / "conll2003" / "eng.train")
    assert (len(sentences), sum(len(s.tokens) for s in sentences)) == (14_041, 203_621)
    assert sentences[0].tokens[:2] == ["EU", "rejects"] and sentences[0].tags[:2] == ["B-ORG", "O"]
    assert sum(len(spans(s.tags)) for s in sentences) == 23_499


@real_data
@pytest.mark.filterwarnings("error")
def test_real_conll2000():
    sentences = read_tagging(DATA / "conll2000" / "train.txt")
    assert (len(sentences), sum(len(s.tokens) for s in sentences)) == (8_936, 211_727)
    assert sum(len(spans(s.tags)) for s in sentences) == 106_978


@real_data
@pytest.mark.filterwarnings("error")
def test_real_sst2():
    train = read_classification(DATA / "sst2" / "stsa.binary.train")
    dev = read_classification(DATA / "sst2" / "stsa.binary.dev")
    assert (len(train), len(dev)) == (6920, 872)
    assert {label for e in train + dev for label in e.labels} == {"0", "1"}
    assert all(len(e.labels) == 1 for e in train + dev)
    assert sum(e.labels == ["1"] for e in train) == 3610


@real_data
@pytest.mark.filterwarnings("error")
def test_real_inspec():
    train, valid = read_inspec(DATA / "inspec" / "train.jsonl"), read_inspec(DATA / "inspec" / "valid.jsonl")
    assert (len(train), len(valid)) == (1000, 500)
    assert sum(len(d.keyphrases) for d in train) == 9788
    assert sum(len(spans(d.tags)) for d in train) == 9790
    assert train[0].id == "683" and train[0].keyphrases[0] == "knowledge management"
