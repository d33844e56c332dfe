"""Constituency trees: Penn-style bracketed trees, and the linearisation that parsing as translation decodes.

**Bracketed trees** (Penn Treebank style, one tree a line): ``(LABEL child child ...)`` with each word in its own
preterminal ``(POS word)``, e.g. ``(S (NP (NNP Mr.) (NNP Vinken)) (VP (VBZ is) (NP (NN chairman))) (. .))``.
The outer wrapper of the original ``.mrg`` files, an unlabelled bracket around the tree (``( (S ...) )``), is
accepted and dropped. Words cannot hold ``(``, ``)`` or spaces (the treebank writes ``-LRB-`` and ``-RRB-``).

**Linearisation** (Vinyals et al. 2015, "Grammar as a Foreign Language"): a depth-first walk writes ``(X`` when
it opens phrase X, ``XX`` for each preterminal (tag and word), and ``)X`` when it closes X; no TOP symbol, words
in their natural order. This is the ``.linear`` format of ``shared/data/treebank_sample``:
``(S (NP XX XX )NP (VP XX (NP XX )NP )VP XX )S``. :func:`rebuild` is the inverse: it puts the words back into
the ``XX`` slots, repairing outputs that are not well formed.

>>> tree = parse_tree("(S (NP (NNP Mr.) (NNP Vinken)) (VP (VBZ is) (NP (NN chairman))) (. .))")
>>> " ".join(linearize(tree))
'(S (NP XX XX )NP (VP XX (NP XX )NP )VP XX )S'
>>> to_string(rebuild(linearize(tree), words(tree)))
'(S (NP (XX Mr.) (XX Vinken)) (VP (XX is) (NP (XX chairman))) (XX .))'
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from rnnkit.data.text import read_text
from rnnkit.errors import RnnkitError

WORD = "XX"
"""The linearisation's token for one preterminal (a tag and its word), and the tag :func:`rebuild` gives words."""

ROOT = "TOP"
"""The label :func:`rebuild` wraps a repaired output in when it is not one bracket (EVALB ignores TOP)."""

OPEN, LEAF, CLOSE, OTHER = "open", "leaf", "close", "other"
"""The kinds of event :func:`walk` yields and of linear token :func:`token_kind` tells apart."""

_TOKEN = re.compile(r"\(|\)|[^\s()]+")


@dataclass(frozen=True, slots=True)
class Tree:
    """An immutable constituency tree: a label and its children, each a Tree or (in a preterminal) one word.

    A preterminal is ``Tree(tag, (word,))``; every other node holds Trees only. A word never shares its node with
    another child, as in the treebank. Compare trees with ``==``; :func:`to_string` prints one.

    >>> Tree("NP", [Tree("DT", ("the",)), Tree("NN", ("cat",))])
    parse_tree('(NP (DT the) (NN cat))')
    """

    label: str
    children: tuple[Tree | str, ...]

    def __post_init__(self) -> None:
        children = tuple(self.children)
        object.__setattr__(self, "children", children)  # frozen: lists become the tuple the type promises
        if any(isinstance(c, str) for c in children) and (len(children) != 1 or not isinstance(children[0], str)):
            raise RnnkitError(f"Tree {self.label!r}: a word must be the only child of its (TAG word) preterminal")
        if not all(isinstance(c, Tree | str) for c in children):
            bad = next(c for c in children if not isinstance(c, Tree | str))
            raise RnnkitError(f"Tree {self.label!r}: a child must be a Tree or a word, got {type(bad).__name__}")

    @property
    def is_preterminal(self) -> bool:
        """True for ``(TAG word)``."""
        return len(self.children) == 1 and isinstance(self.children[0], str)

    def __repr__(self) -> str:
        return f"parse_tree({to_string(self)!r})"

    def __str__(self) -> str:
        return to_string(self)


def walk(tree: Tree) -> Iterator[tuple[str, str, str]]:
    """The tree in bracket order, without recursion (deep trees are fine).

    Yields ``("open", label, "")`` and ``("close", label, "")`` around each phrase and ``("leaf", tag, word)`` for
    each preterminal.
    """
    todo: list[Tree | str] = [tree]  # a str on this stack is the label of a phrase to close
    while todo:
        node = todo.pop()
        if isinstance(node, str):
            yield CLOSE, node, ""
        elif node.is_preterminal:
            yield LEAF, node.label, node.children[0]  # type: ignore[misc]
        else:
            yield OPEN, node.label, ""
            todo.append(node.label)
            todo.extend(reversed(node.children))


# -- reading ------------------------------------------------------------------------------------------------


class _Open:
    """A bracket being read: where it opened, its label once seen, and its children so far."""

    __slots__ = ("at", "children", "label")

    def __init__(self, at: int) -> None:
        self.at = at
        self.label: str | None = None
        self.children: list[Tree | str] = []


def parse_tree(text: str, *, where: str = "") -> Tree:
    """Read one Penn-style bracketed tree; an outer unlabelled wrapper ``( (S ...) )`` is dropped.

    Args:
        text: the tree, e.g. ``"(S (NP (DT The) (NN cat)) (VP (VBD sat)))"``; spacing is free.
        where: where the text comes from (``"train.trees:12"``), to start error messages with.

    Raises:
        RnnkitError: unbalanced brackets (with the character offset), an empty tree or bracket, a bracket
            without a label, a word beside other children, or text after the tree.

    >>> parse_tree("( (S (NP (PRP It)) (VP (VBZ works))) )").label
    'S'
    """
    prefix = f"{where}: " if where else ""
    stack: list[_Open] = []
    done: Tree | None = None
    for match in _TOKEN.finditer(text):
        token, at = match.group(), match.start()
        if done is not None and token != ")":  # a stray ')' is reported as unbalanced below
            raise RnnkitError(f"{prefix}text after the end of the tree at character {at}: give one tree a line")
        if token == "(":
            if stack and stack[-1].label is None:
                stack[-1].label = ""  # "((": the outer bracket has no label
            stack.append(_Open(at))
        elif token == ")":
            if not stack:
                raise RnnkitError(f"{prefix}unbalanced brackets: ')' at character {at} closes nothing")
            node = _finish(stack.pop(), root=not stack, prefix=prefix)
            if stack:
                stack[-1].children.append(node)
            else:
                done = node
        elif not stack:
            raise RnnkitError(f"{prefix}expected '(' at character {at}, got {token!r}: a tree starts with a bracket")
        elif stack[-1].label is None:
            stack[-1].label = token
        else:
            stack[-1].children.append(token)
    return _checked_end(done, stack, prefix)


def _finish(node: _Open, *, root: bool, prefix: str) -> Tree:
    """The Tree of a bracket that just closed, checked."""
    kids = node.children
    if node.label is None:
        raise RnnkitError(f"{prefix}empty bracket '()' at character {node.at}")
    if not kids:
        raise RnnkitError(f"{prefix}empty bracket '({node.label})' at character {node.at}: it has no children")
    if len(kids) > 1 and any(isinstance(k, str) for k in kids):
        word = next(k for k in kids if isinstance(k, str))
        raise RnnkitError(
            f"{prefix}the bracket at character {node.at} holds the word {word!r} beside other children: "
            "each word needs its own (TAG word) bracket"
        )
    if node.label == "":
        if root and isinstance(kids[0], Tree) and len(kids) == 1:
            return kids[0]  # the ( (S ...) ) wrapper of the .mrg files
        raise RnnkitError(
            f"{prefix}the bracket at character {node.at} has no label: only an outer wrapper '( (S ...) )' "
            "around exactly one tree may have none"
        )
    return Tree(node.label, tuple(kids))


def _checked_end(done: Tree | None, stack: list[_Open], prefix: str) -> Tree:
    if stack:
        at = stack[-1].at
        raise RnnkitError(
            f"{prefix}unbalanced brackets: {len(stack)} '(' not closed at the end (the innermost at character {at})"
        )
    if done is None:
        raise RnnkitError(f"{prefix}empty tree: give a bracketed tree such as (S (NN word))")
    return done


def read_trees(path: str | os.PathLike[str]) -> list[Tree]:
    """Read a file of bracketed trees, one a line (blank lines at the end are ignored).

    Raises:
        RnnkitError: the file cannot be read as text, or a line is blank or not a tree; the message starts
            with ``file:line``.
    """
    lines = read_text(path).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    trees = []
    for number, line in enumerate(lines, 1):
        where = f"{path}:{number}"
        if not line.strip():
            # a skipped line would shift every later tree against its .words and .linear lines
            raise RnnkitError(f"{where}: blank line: give one tree a line, aligned with the .words file")
        trees.append(parse_tree(line, where=where))
    return trees


# -- writing ------------------------------------------------------------------------------------------------


def to_string(tree: Tree) -> str:
    """The tree on one line, Penn style: single spaces, no space before ``)``; :func:`parse_tree` reads it back.

    >>> to_string(parse_tree("(S\\n  (NP (PRP It) )\\n  (VP (VBZ works)))"))
    '(S (NP (PRP It)) (VP (VBZ works)))'
    """
    parts: list[str] = []
    for kind, label, word in walk(tree):
        if kind == OPEN:
            parts.append(f"({label} ")
        elif kind == LEAF:
            parts.append(f"({label} {word}) ")
        else:
            parts[-1] = parts[-1].rstrip(" ")
            parts.append(") ")
    return "".join(parts).rstrip(" ")


def words(tree: Tree) -> list[str]:
    """The words (leaves), left to right."""
    return [word for kind, _, word in walk(tree) if kind == LEAF]


def tags(tree: Tree) -> list[str]:
    """The preterminal labels (POS tags), one per word."""
    return [label for kind, label, _ in walk(tree) if kind == LEAF]


def linearize(tree: Tree) -> list[str]:
    """The Vinyals et al. tokens: ``(X`` opening phrase X, ``XX`` per preterminal, ``)X`` closing X.

    >>> linearize(parse_tree("(S (NP (PRP It)) (VP (VBZ works)))"))
    ['(S', '(NP', 'XX', ')NP', '(VP', 'XX', ')VP', ')S']
    """
    out = []
    for kind, label, _ in walk(tree):
        out.append("(" + label if kind == OPEN else ")" + label if kind == CLOSE else WORD)
    return out


def token_kind(token: str) -> tuple[str, str]:
    """What a linear token is: ``("open", X)`` for ``(X``, ``("close", X)`` for ``)X``, ``("leaf", "")`` for XX,
    ``("other", "")`` for anything else (specials such as ``<unk>``, a bare bracket).

    >>> token_kind("(NP"), token_kind(")NP"), token_kind("XX"), token_kind("<eos>")
    (('open', 'NP'), ('close', 'NP'), ('leaf', ''), ('other', ''))
    """
    if token == WORD:
        return LEAF, ""
    if len(token) > 1 and token[0] in "()" and not any(c in token[1:] for c in "() \t\n"):
        return (OPEN if token[0] == "(" else CLOSE), token[1:]
    return OTHER, ""


# -- rebuilding a tree from a linearisation ----------------------------------------------------------------


def rebuild(
    linear: Sequence[str], words: Sequence[str], *, tags: Sequence[str] | None = None, root: str = ROOT
) -> Tree:
    """The tree a linearisation describes, with the words put into its ``XX`` slots in order; never fails.

    Each ``XX`` becomes the preterminal ``(XX word)`` (or ``(tag word)`` with ``tags``). A well-formed
    linearisation (one bracket around everything, every ``)X`` closing the innermost open ``(X``, every bracket
    holding an ``XX``, exactly ``len(words)`` ``XX``) gives the tree back exactly. Anything else is repaired by
    these rules, in this order (:func:`repairs` lists the ones a linearisation needs):

    1. a token that is not ``(X``, ``)X`` or ``XX`` is dropped;
    2. a ``)X`` that does not close the innermost open bracket (another label, or nothing open) is dropped;
    3. an ``XX`` beyond the number of words is dropped;
    4. brackets still open at the end are closed, innermost first;
    5. a bracket with nothing inside is dropped;
    6. when the top level is not exactly one bracket (several trees, an ``XX`` outside every bracket, or
       nothing at all) it is wrapped in ``(root ...)``, TOP by default, which EVALB does not count;
    7. words left over for want of ``XX`` slots become the last children of the root.

    Raises:
        RnnkitError: only when ``tags`` is given and its length differs from that of ``words``.

    >>> to_string(rebuild("(S (NP XX )S XX )VP".split(), ["Stocks", "fell", "."]))
    '(S (NP (XX Stocks) (XX fell)) (XX .))'
    """
    if tags is not None and len(tags) != len(words):
        raise RnnkitError(f"rebuild got {len(tags)} tags for {len(words)} words: give one tag per word")
    leaves = [Tree(WORD if tags is None else tag, (word,)) for word, tag in zip(words, tags or words, strict=True)]
    return _rebuild(linear, leaves, root)[0]


def repairs(linear: Sequence[str], n_words: int) -> list[str]:
    """What :func:`rebuild` would have to repair in ``linear`` for ``n_words`` words, one phrase each; ``[]``
    when it is a well-formed tree with exactly ``n_words`` ``XX``.

    >>> repairs("(S XX )S".split(), 1)
    []
    >>> for note in repairs("(S XX )NP".split(), 2):
    ...     print(note)
    token 2 ')NP' dropped: it does not close the innermost open bracket
    1 bracket left open, closed at the end
    1 missing XX added: its word becomes the last child of the root
    """
    return _rebuild(linear, [Tree(WORD, ("w",))] * n_words, ROOT)[1]


def _rebuild(linear: Iterable[str], leaves: list[Tree], root: str) -> tuple[Tree, list[str]]:
    """Rules 1-5 of :func:`rebuild` on the tokens, then 6-7 on the top level; the tree and the repairs made."""
    notes: list[str] = []
    top: list[Tree] = []
    stack: list[tuple[str, list[Tree]]] = []
    used = 0
    for i, token in enumerate(linear):
        kind, label = token_kind(token)
        if kind == LEAF and used < len(leaves):
            (stack[-1][1] if stack else top).append(leaves[used])
            used += 1
        elif kind == OPEN:
            stack.append((label, []))
        elif kind == CLOSE and stack and stack[-1][0] == label:
            _close(stack, top, notes)
        else:
            why = {LEAF: f"more XX than the {len(leaves)} words", CLOSE: "it does not close the innermost open bracket"}
            notes.append(f"token {i} {token!r} dropped: {why.get(kind, 'not a bracket or XX')}")
    if stack:
        notes.append(f"{len(stack)} bracket{'s' * (len(stack) > 1)} left open, closed at the end")
    while stack:
        _close(stack, top, notes)
    return _root(top, leaves[used:], root, notes), notes


def _close(stack: list[tuple[str, list[Tree]]], top: list[Tree], notes: list[str]) -> None:
    """Pop the innermost open bracket into its parent (or the top level); an empty one is dropped."""
    label, kids = stack.pop()
    if not kids:
        notes.append(f"empty bracket ({label} ){label} dropped")
        return
    (stack[-1][1] if stack else top).append(Tree(label, tuple(kids)))


def _root(top: list[Tree], missing: list[Tree], root: str, notes: list[str]) -> Tree:
    """Rules 6 and 7: one root bracket over the top level, with the words that had no XX at its end."""
    if len(top) == 1 and not top[0].is_preterminal:
        tree = top[0]
    else:
        items = f"{len(top)} item{'s' * (len(top) != 1)}"
        notes.append(f"the top level holds {items}, not one bracket: wrapped in ({root} ...)")
        tree = Tree(root, tuple(top))
    if missing:
        n = len(missing)
        notes.append(
            f"{n} missing XX added: {'its word becomes' if n == 1 else 'their words become'} the last "
            f"child{'ren' * (n > 1)} of the root"
        )
        tree = Tree(tree.label, tree.children + tuple(missing))
    return tree


def right_branching(words: Sequence[str], *, root: str = "S", label: str = "NP", tag: str = WORD) -> Tree:
    """The right-branching baseline over ``words``: every span ``[i, n)`` of two or more words is a phrase.

    The span of all the words is the root, labelled ``root``; the shorter ones are labelled ``label``; each word
    is a preterminal ``(tag word)``, and the last word's span is just its preterminal (a unary bracket over one
    word would add a bracket of every length-one span's kind). The defaults are the sample's most frequent root
    label (S: 90% of the train roots) and its most frequent phrase label (NP: 42% of the train phrases); pass
    others to compare.

    Raises:
        RnnkitError: ``words`` is empty (a tree needs a word).

    >>> to_string(right_branching(["Stocks", "fell", "sharply"]))
    '(S (XX Stocks) (NP (XX fell) (XX sharply)))'
    """
    if not words:
        raise RnnkitError("right_branching needs at least one word")
    tree = Tree(tag, (words[-1],))
    for i in range(len(words) - 2, -1, -1):
        tree = Tree(root if i == 0 else label, (Tree(tag, (words[i],)), tree))
    return tree if len(words) > 1 else Tree(root, (tree,))
