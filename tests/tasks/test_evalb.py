"""EVALB (COLLINS.prm) labelled bracket scores on hand-worked trees, and evalb(gold, gold) on the treebank sample.

Each case writes out the brackets of both trees (label, start, end over the words left once punctuation is
deleted, end exclusive) and works P, R and F1 out by hand in the comments.
"""

from pathlib import Path

import pytest

from rnnkit.data.trees import Tree, linearize, parse_tree, read_trees, rebuild, right_branching, words
from rnnkit.errors import RnnkitError
from rnnkit.tasks.seq2seq.evalb import CUTOFF_LEN, bracket_label, evalb, sentence_brackets

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "treebank_sample"
needs_data = pytest.mark.skipif(not (DATA / "valid.trees").exists(), reason="../shared/data/treebank_sample is absent")

# The 6 words left once "." is deleted: The0 cat1 sat2 on3 the4 mat5.
# Gold brackets: S(0,6) NP(0,2) VP(2,6) PP(3,6) NP(4,6): 5.
GOLD = "(S (NP (DT The) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT the) (NN mat)))) (. .))"


def xx(text: str) -> Tree:
    """A predicted tree written with bare words: every word gets the tag XX, as rebuild gives it."""
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    out = []
    for i, token in enumerate(tokens):
        is_word = token not in "()" and tokens[i - 1] != "("
        out.append(f"(XX {token})" if is_word else token)
    return parse_tree(" ".join(out).replace("( ", "("))


def scores(gold: str | list[str], test: str | list[str], **kwargs) -> dict:
    gold = [gold] if isinstance(gold, str) else gold
    test = [test] if isinstance(test, str) else test
    return evalb([parse_tree(g) for g in gold], [xx(t) for t in test], **kwargs)


def prf(result: dict) -> tuple[float, float, float]:
    return round(result["precision"], 2), round(result["recall"], 2), round(result["f1"], 2)


def test_the_xx_helper():
    assert xx("(S (NP The cat) .)") == parse_tree("(S (NP (XX The) (XX cat)) (XX .))")


def test_perfect_parse():
    # the same 5 brackets: P = R = 5/5
    result = scores(GOLD, "(S (NP The cat) (VP sat (PP on (NP the mat))) .)")
    assert prf(result) == (100.0, 100.0, 100.0)
    assert result["exact_match"] == 100.0 and result["exact"] == 1 and result["average_crossing"] == 0.0
    assert (result["matched"], result["gold_brackets"], result["test_brackets"], result["sentences"]) == (5, 5, 5, 1)


def test_one_wrong_label():
    # PP(3,6) written SBAR(3,6): 4 of 5 match both ways: P = R = F = 4/5 = 80
    result = scores(GOLD, "(S (NP The cat) (VP sat (SBAR on (NP the mat))) .)")
    assert prf(result) == (80.0, 80.0, 80.0)
    assert result["exact_match"] == 0.0


def test_one_wrong_span():
    # PP attached to S: VP(2,3) instead of VP(2,6); S(0,6) NP(0,2) PP(3,6) NP(4,6) match: P = R = 4/5 = 80
    result = scores(GOLD, "(S (NP The cat) (VP sat) (PP on (NP the mat)) .)")
    assert prf(result) == (80.0, 80.0, 80.0)
    # VP(2,3) nests in gold VP(2,6) and crosses nothing, so no crossing bracket
    assert result["average_crossing"] == 0.0


def test_a_crossing_bracket():
    # X(0,3) crosses gold VP(2,6) (0 < 2 < 3 < 6); Y(3,6) nests; test S X Y: 3 brackets, S matches:
    # P = 1/3 = 33.33, R = 1/5 = 20, F = 2 * (1/3) * (1/5) / (1/3 + 1/5) = 2/8 = 25
    result = scores(GOLD, "(S (X The cat sat) (Y on the mat) .)")
    assert prf(result) == (33.33, 20.0, 25.0)
    assert result["average_crossing"] == 1.0


def test_a_missing_bracket():
    # no PP: 4 test brackets, all in gold: P = 4/4 = 100, R = 4/5 = 80, F = 2 * 100 * 80 / 180 = 88.89
    assert prf(scores(GOLD, "(S (NP The cat) (VP sat on (NP the mat)) .)")) == (100.0, 80.0, 88.89)


def test_an_extra_bracket():
    # a unary NP over NP(4,6): 6 test brackets, 5 match: P = 5/6 = 83.33, R = 5/5 = 100, F = 10/11 = 90.91
    assert prf(scores(GOLD, "(S (NP The cat) (VP sat (PP on (NP (NP the mat)))) .)")) == (83.33, 100.0, 90.91)


def test_unary_chains_count_as_a_multiset():
    # gold S(0,3) NP(0,2) NP(0,2) VP(2,3): 4 brackets, NP twice
    gold = "(S (NP (NP (CD 21) (CD million))) (VP (VBD fell)))"
    # one NP: 3 test brackets, 3 match (NP only once): P = 100, R = 3/4 = 75, F = 2 * 75 / 175 = 85.71
    assert prf(scores(gold, "(S (NP 21 million) (VP fell))")) == (100.0, 75.0, 85.71)
    # two NPs: exact
    assert prf(scores(gold, "(S (NP (NP 21 million)) (VP fell))")) == (100.0, 100.0, 100.0)
    # three NPs: 5 test brackets, 4 match: P = 80, R = 100, F = 88.89
    assert prf(scores(gold, "(S (NP (NP (NP 21 million))) (VP fell))")) == (80.0, 100.0, 88.89)
    assert sentence_brackets(parse_tree(gold), ["CD", "CD", "VBD"])["NP", 0, 2] == 2


def test_punctuation_at_the_ends_does_not_change_spans():
    # `` We won . '': `` . '' are deleted by their gold tags, so gold is S(0,2) NP(0,1) VP(1,2)
    gold = "(S (`` ``) (NP (PRP We)) (VP (VBD won)) (. .) ('' ''))"
    assert sorted(sentence_brackets(parse_tree(gold), ["``", "PRP", "VBD", ".", "''"])) == [
        ("NP", 0, 1),
        ("S", 0, 2),
        ("VP", 1, 2),
    ]
    # the quotes and the full stop attached elsewhere leave the same spans: NP(0,1) VP(1,2) S(0,2), P = R = 100
    assert prf(scores(gold, "(S (NP `` We) (VP won . ''))")) == (100.0, 100.0, 100.0)
    # a bracket over punctuation only spans no word and is dropped: still 100
    assert prf(scores(gold, "(S (PRN ``) (NP We) (VP won) (X . ''))")) == (100.0, 100.0, 100.0)


def test_a_comma_inside_and_undeleted_symbols():
    # "John , left": the comma is deleted, so NP(0,1) in gold matches "(NP John ,)"
    gold = "(S (NP (NNP John)) (, ,) (VP (VBD left)))"
    assert prf(scores(gold, "(S (NP John ,) (VP left))")) == (100.0, 100.0, 100.0)
    # $, -LRB- and -RRB- are not deleted by COLLINS.prm: they count as words, NP(0,2) PRN(2,5) NP(0,5)
    tree = parse_tree("(NP (NP ($ $) (CD 5)) (PRN (-LRB- -LRB-) (NN a) (-RRB- -RRB-)))")
    assert sorted(sentence_brackets(tree, ["$", "CD", "-LRB-", "NN", "-RRB-"])) == [
        ("NP", 0, 2),
        ("NP", 0, 5),
        ("PRN", 2, 5),
    ]


def test_gold_tags_decide_what_is_deleted_in_the_test_tree():
    # the test tree tags "." as a noun and "We" as a full stop: its own tags are ignored
    gold = parse_tree("(S (NP (PRP We)) (VP (VBD won)) (. .))")
    test = parse_tree("(S (NP (. We)) (VP (VBD won)) (NN .))")
    assert prf(evalb([gold], [test])) == (100.0, 100.0, 100.0)


def test_advp_and_prt_count_as_equal_and_function_tags_are_cut():
    gold = "(S (NP-SBJ (PRP He)) (VP (VBD gave) (PRT (RP up))))"
    assert prf(scores(gold, "(S (NP He) (VP gave (ADVP up)))")) == (100.0, 100.0, 100.0)
    assert (bracket_label("PRT"), bracket_label("ADVP"), bracket_label("NP-SBJ=2"), bracket_label("-LRB-")) == (
        "ADVP",
        "ADVP",
        "NP",
        "-LRB-",
    )


def test_top_is_not_counted():
    # a TOP wrapper around gold adds nothing: S(0,2) NP(0,1) VP(1,2) either way
    gold = "(TOP (S (NP (PRP We)) (VP (VBD won))))"
    assert prf(scores(gold, "(S (NP We) (VP won))")) == (100.0, 100.0, 100.0)
    # a repaired output wrapped in TOP loses the root: NP VP of S NP VP, P = 2/2 = 100, R = 2/3 = 66.67, F = 80
    assert prf(scores(gold, "(TOP (NP We) (VP won))")) == (100.0, 66.67, 80.0)
    assert scores(gold, "(TOP (NP We) (VP won))")["test_brackets"] == 2


def test_the_root_counts():
    # a flat tree has only the root S(0,2): 1 test bracket, it matches: P = 100, R = 1/3 = 33.33, F = 50
    assert prf(scores("(S (NP (PRP We)) (VP (VBD won)))", "(S We won)")) == (100.0, 33.33, 50.0)


def test_corpus_scores_are_micro_averaged():
    # perfect (5 of 5) and one wrong label (4 of 5): matched 9, gold 10, test 10: P = R = F = 90;
    # the extra bracket case (5 of 5 gold, 5 of 6 test) added: matched 14, gold 15, test 16:
    # P = 14/16 = 87.5, R = 14/15 = 93.33, F = 2 * 14 / 31 = 90.32
    perfect = "(S (NP The cat) (VP sat (PP on (NP the mat))) .)"
    label = "(S (NP The cat) (VP sat (SBAR on (NP the mat))) .)"
    extra = "(S (NP The cat) (VP sat (PP on (NP (NP the mat)))) .)"
    result = scores([GOLD, GOLD], [perfect, label])
    assert prf(result) == (90.0, 90.0, 90.0) and result["exact_match"] == 50.0
    result = scores([GOLD] * 3, [perfect, label, extra])
    assert prf(result) == (87.5, 93.33, 90.32)
    assert (result["matched"], result["gold_brackets"], result["test_brackets"], result["exact"]) == (14, 15, 16, 1)


def test_max_length_counts_punctuation_but_not_none():
    # 40 words and a full stop: length 41 > 40, so it is left out of the len<=40 summary
    long = Tree("S", [*(Tree("NN", (f"w{i}",)) for i in range(40)), Tree(".", (".",))])
    short = parse_tree("(S (NP (PRP We)) (VP (VBD won)))")
    result = evalb([long, short], [long, short], max_length=CUTOFF_LEN)
    assert result["sentences"] == 1 and result["gold_brackets"] == 3
    assert evalb([long], [long], max_length=41)["sentences"] == 1
    # -NONE- words do not count towards the length
    traced = Tree("S", (*long.children[:40], Tree("-NONE-", ("*T*",))))
    assert evalb([traced], [traced], max_length=CUTOFF_LEN)["sentences"] == 1


def test_no_brackets_scores_zero():
    assert prf(evalb([], [])) == (0.0, 0.0, 0.0)
    assert evalb([], [])["sentences"] == 0 and evalb([], [])["exact_match"] == 0.0
    # a tree whose only bracket covers punctuation has nothing to score: 0, as EVALB prints
    only = parse_tree("(FRAG (. .))")
    result = evalb([only], [only])
    assert prf(result) == (0.0, 0.0, 0.0) and result["exact"] == 1


def test_length_unmatch_names_the_sentence():
    gold = [parse_tree(GOLD), parse_tree("(S (NP (PRP We)) (VP (VBD won)))")]
    with pytest.raises(RnnkitError, match="sentence 1: length unmatch, the gold tree has 2 words and the test tree 1"):
        evalb(gold, [xx("(S (NP The cat) (VP sat (PP on (NP the mat))) .)"), xx("(S We)")])


def test_word_unmatch_and_other_errors():
    gold = [parse_tree("(S (NP (PRP We)) (VP (VBD won)))")]
    with pytest.raises(RnnkitError, match="sentence 0: words unmatch at word 1, gold 'won' and test '<unk>'"):
        evalb(gold, [xx("(S We <unk>)")])
    with pytest.raises(RnnkitError, match="evalb got 1 gold trees and 0 test trees"):
        evalb(gold, [])
    with pytest.raises(RnnkitError, match="the tree has 2 words but 1 gold tags"):
        sentence_brackets(gold[0], ["PRP"])


@needs_data
def test_sample_gold_against_itself_scores_100():
    gold = read_trees(DATA / "valid.trees")
    result = evalb(gold, gold)
    assert prf(result) == (100.0, 100.0, 100.0) and result["exact_match"] == 100.0
    assert result["sentences"] == 273
    # rebuilding the linearisation with XX tags loses nothing EVALB counts
    assert evalb(gold, [rebuild(linearize(t), words(t)) for t in gold])["f1"] == 100.0
    baseline = evalb(gold, [right_branching(words(t)) for t in gold])
    assert 0.0 < baseline["f1"] < 50.0
