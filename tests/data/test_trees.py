"""Constituency trees (rnnkit.data.trees): reading, printing, the Vinyals linearisation and its repairing inverse.

Hand-made trees with the exact strings expected, each malformed input with its one-line error, every repair
rule of ``rebuild`` on its own and as a property, and the treebank sample in ../shared/data (skipped when absent).
"""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data.trees import (
    Tree,
    linearize,
    parse_tree,
    read_trees,
    rebuild,
    repairs,
    right_branching,
    tags,
    to_string,
    token_kind,
    walk,
    words,
)
from rnnkit.errors import RnnkitError

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "treebank_sample"
needs_data = pytest.mark.skipif(not (DATA / "valid.trees").exists(), reason="../shared/data/treebank_sample is absent")

CAT = "(S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat)))) (. .))"


# ---------------------------------------------------------------------------------------------- reading, printing


def test_parse_and_print_round_trip():
    tree = parse_tree(CAT)
    assert tree.label == "S" and len(tree.children) == 3
    assert tree.children[2] == Tree(".", (".",))
    assert to_string(tree) == CAT
    assert parse_tree(to_string(tree)) == tree


def test_spacing_is_free_and_the_outer_wrapper_is_dropped():
    messy = "( (S\n   (NP (PRP It) )\t(VP (VBZ works) ) ) )\n"
    assert to_string(parse_tree(messy)) == "(S (NP (PRP It)) (VP (VBZ works)))"


def test_words_tags_and_linearize():
    tree = parse_tree(CAT)
    assert words(tree) == ["The", "cat", "sat", "on", "the", "mat", "."]
    assert tags(tree) == ["DT", "NN", "VBD", "IN", "DT", "NN", "."]
    assert " ".join(linearize(tree)) == "(S (NP XX XX )NP (VP XX (PP XX (NP XX XX )NP )PP )VP XX )S"
    assert [kind for kind, _, _ in walk(parse_tree("(S (NN a))"))] == ["open", "leaf", "close"]


def test_brackets_in_words_keep_their_treebank_spelling():
    tree = parse_tree("(NP (-LRB- -LRB-) (CD 5) (-RRB- -RRB-))")
    assert words(tree) == ["-LRB-", "5", "-RRB-"] and tags(tree)[0] == "-LRB-"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty tree"),
        ("   \t", "empty tree"),
        ("(S (NP (DT a))", r"unbalanced brackets: 1 '\(' not closed at the end \(the innermost at character 0\)"),
        ("(S (NP (DT a)", r"2 '\(' not closed at the end \(the innermost at character 3\)"),
        ("(S (DT a)))", r"unbalanced brackets: '\)' at character 10 closes nothing"),
        (")", r"'\)' at character 0 closes nothing"),
        ("(S (DT a)) (S (DT b))", "text after the end of the tree at character 11"),
        ("word (S (DT a))", r"expected '\(' at character 0, got 'word'"),
        ("(S )", r"empty bracket '\(S\)' at character 0"),
        ("(S (DT a) ())", r"empty bracket '\(\)' at character 10"),
        ("(NP a b)", "holds the word 'a' beside other children"),
        ("(S (NP (DT a)) b)", "holds the word 'b' beside other children"),
        ("((S (DT a)) (S (DT b)))", "at character 0 has no label"),
        ("(S ((DT a)))", "at character 3 has no label"),
    ],
)
def test_malformed_trees_are_one_line_errors(text, message):
    with pytest.raises(RnnkitError, match=message) as info:
        parse_tree(text, where="train.trees:12")
    assert str(info.value).startswith("train.trees:12: ") and "\n" not in str(info.value)


def test_read_trees(tmp_path):
    path = tmp_path / "x.trees"
    path.write_text("(S (NN a))\n( (NP (NN b)) )\n\n\n", encoding="utf-8")
    assert [to_string(t) for t in read_trees(path)] == ["(S (NN a))", "(NP (NN b))"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("(S (NN a))\n\n(S (NN b))\n", r"x.trees:2: blank line"),
        ("(S (NN a))\n(S (NN b))\n(S (NN c)\n", r"x.trees:3: unbalanced brackets"),
        ("", r"x.trees is empty"),
    ],
)
def test_read_trees_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "x.trees"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RnnkitError, match=message):
        read_trees(path)


def test_tree_type():
    leaf = Tree("NN", ["cat"])
    assert leaf.children == ("cat",) and leaf.is_preterminal
    phrase = Tree("NP", [leaf])
    assert not phrase.is_preterminal and phrase == parse_tree("(NP (NN cat))")
    assert hash(phrase) == hash(parse_tree("(NP (NN cat))"))
    assert repr(phrase) == "parse_tree('(NP (NN cat))')" and str(phrase) == "(NP (NN cat))"
    with pytest.raises(AttributeError):
        phrase.label = "VP"  # type: ignore[misc]
    with pytest.raises(RnnkitError, match="a word must be the only child"):
        Tree("NP", ("a", Tree("NN", ("b",))))
    with pytest.raises(RnnkitError, match="a child must be a Tree or a word, got int"):
        Tree("NP", (3,))  # type: ignore[arg-type]


def test_deep_trees_need_no_recursion():
    depth = 5000  # far past Python's recursion limit
    text = "(X " * depth + "(NN w)" + ")" * depth
    tree = parse_tree(text)
    assert to_string(tree) == text
    assert linearize(tree)[depth] == "XX" and len(linearize(tree)) == 2 * depth + 1
    assert words(tree) == ["w"]


def test_token_kind():
    assert [token_kind(t) for t in ["(NP", ")-LRB-", "XX", "(", ")", "<unk>", "NP"]] == [
        ("open", "NP"),
        ("close", "-LRB-"),
        ("leaf", ""),
        ("other", ""),
        ("other", ""),
        ("other", ""),
        ("other", ""),
    ]


# ---------------------------------------------------------------------------------------------- rebuild


def test_rebuild_inverts_linearize():
    tree = parse_tree(CAT)
    assert rebuild(linearize(tree), words(tree), tags=tags(tree)) == tree
    assert to_string(rebuild(linearize(tree), words(tree))) == (
        "(S (NP (XX The) (XX cat)) (VP (XX sat) (PP (XX on) (NP (XX the) (XX mat)))) (XX .))"
    )
    assert repairs(linearize(tree), 7) == []


@pytest.mark.parametrize(
    "linear, n, expected, notes",
    [
        # rule 2: )S does not close the innermost NP, so it is dropped; rule 4 then closes NP and S
        ("(S (NP XX )S", 1, "(S (NP (XX a)))", ["token 3 ')S' dropped", "2 brackets left open"]),
        # rule 2: a close with nothing open
        (")S (S XX )S", 1, "(S (XX a))", ["token 0 ')S' dropped"]),
        # rule 2 twice: )NP inside VP and )S inside NP; )VP closes VP
        (
            "(S (NP XX (VP XX )NP )VP )S",
            2,
            "(S (NP (XX a) (VP (XX b))))",
            ["token 5 ')NP' dropped", "token 7 ')S' dropped", "2 brackets left open"],
        ),
        # rule 1: tokens that are no bracket or XX
        ("(S <unk> XX ( )S", 1, "(S (XX a))", ["token 1 '<unk>' dropped: not a bracket", "token 3 '(' dropped"]),
        # rule 3: XX beyond the words
        ("(S XX XX XX )S", 1, "(S (XX a))", ["token 2 'XX' dropped: more XX than the 1 words", "token 3 'XX'"]),
        # rule 5: an empty bracket
        ("(S (NP )NP XX )S", 1, "(S (XX a))", ["empty bracket (NP )NP dropped"]),
        # rule 6: two trees, words outside every bracket, nothing at all
        ("(S XX )S (NP XX )NP", 2, "(TOP (S (XX a)) (NP (XX b)))", ["the top level holds 2 items"]),
        ("XX XX", 2, "(TOP (XX a) (XX b))", ["the top level holds 2 items"]),
        ("XX", 1, "(TOP (XX a))", ["the top level holds 1 item, not one bracket: wrapped in (TOP ...)"]),
        ("", 1, "(TOP (XX a))", ["the top level holds 0 items", "1 missing XX added"]),
        # rule 7: missing XX become the root's last children
        ("(S (NP XX )NP )S", 3, "(S (NP (XX a)) (XX b) (XX c))", ["2 missing XX added: their words become"]),
    ],
)
def test_rebuild_repairs(linear, n, expected, notes):
    tokens, ws = linear.split(), list("abcdefg"[:n])
    tree = rebuild(tokens, ws)
    assert to_string(tree) == expected
    found = repairs(tokens, n)
    assert len(found) == len(notes)
    for note, expect in zip(found, notes, strict=True):
        assert note.startswith(expect)
    assert words(tree) == ws and repairs(linearize(tree), n) == []  # a repaired tree is well formed


def test_rebuild_of_nothing_is_an_empty_root():
    assert rebuild([], []) == Tree("TOP", ()) and to_string(rebuild([], [])) == "(TOP)"
    assert to_string(rebuild(["XX"], ["a"], root="ROOT")) == "(ROOT (XX a))"


def test_rebuild_tags_must_match_words():
    assert to_string(rebuild(["(S", "XX", ")S"], ["a"], tags=["NN"])) == "(S (NN a))"
    with pytest.raises(RnnkitError, match="rebuild got 2 tags for 1 words"):
        rebuild(["(S", "XX", ")S"], ["a"], tags=["NN", "DT"])


TOKENS = st.sampled_from(["(S", ")S", "(NP", ")NP", "XX", "XX", "<unk>", ")"])


@settings(max_examples=150, deadline=None)
@given(st.lists(TOKENS, max_size=14), st.integers(0, 5))
def test_rebuild_never_fails_and_repairs_once(linear, n):
    ws = [f"w{i}" for i in range(n)]
    tree = rebuild(linear, ws)
    assert words(tree) == ws
    if n:  # with no words the result is an empty root, which no linearisation describes
        again = linearize(tree)
        assert repairs(again, n) == [] and rebuild(again, ws) == tree
    assert (repairs(linear, n) == []) == (linearize(tree) == linear)


# ---------------------------------------------------------------------------------------------- right branching


@pytest.mark.parametrize(
    "n, expected",
    [
        (1, "(S (XX a))"),
        (2, "(S (XX a) (XX b))"),
        (4, "(S (XX a) (NP (XX b) (NP (XX c) (XX d))))"),
    ],
)
def test_right_branching(n, expected):
    assert to_string(right_branching(list("abcd"[:n]))) == expected


def test_right_branching_labels_and_spans():
    tree = right_branching(list("abcde"), root="ROOT", label="VP", tag="T")
    assert to_string(tree) == "(ROOT (T a) (VP (T b) (VP (T c) (VP (T d) (T e)))))"
    assert linearize(tree).count("(VP") == 3  # spans [1,5) [2,5) [3,5); [0,5) is the root
    with pytest.raises(RnnkitError, match="at least one word"):
        right_branching([])


# ---------------------------------------------------------------------------------------------- the treebank sample


@needs_data
@pytest.mark.parametrize("split", ["train", "valid"])
def test_sample_linearisation_and_words_match_the_files(split):
    trees = read_trees(DATA / f"{split}.trees")
    lines = (DATA / f"{split}.trees").read_text(encoding="ascii").splitlines()
    linear = (DATA / f"{split}.linear").read_text(encoding="ascii").splitlines()
    ws = (DATA / f"{split}.words").read_text(encoding="ascii").splitlines()
    assert len(trees) == len(lines) == len(linear) == len(ws)
    for i, tree in enumerate(trees):
        assert linearize(tree) == linear[i].split(), f"{split} line {i + 1}"
        assert words(tree) == ws[i].split(), f"{split} line {i + 1}"
        assert to_string(tree) == lines[i], f"{split} line {i + 1}"


@needs_data
def test_sample_rebuilds_exactly_with_gold_tags():
    trees = read_trees(DATA / "valid.trees")
    for tree in trees:
        linear = linearize(tree)
        assert repairs(linear, len(words(tree))) == []
        assert rebuild(linear, words(tree), tags=tags(tree)) == tree
