"""Operations on recurrent state.

A state is a value: a ``NamedTuple`` of tensors whose first dimension is the batch (``LSTMState(h, c)``,
``ElmanState(h)``, ...). Cells return new states and never keep one. These helpers apply an operation
to every field, so the layer, truncated BPTT and beam search never need to know which cell they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor

S = TypeVar("S", bound=tuple)


def map_state(fn: Callable[..., Tensor], state: S, *others: Any) -> S:
    """Apply ``fn`` field by field: ``map_state(f, a, b)`` has fields ``f(a.x, b.x)``."""
    fields = [fn(*parts) for parts in zip(state, *others, strict=True)]
    return type(state)(*fields) if _is_namedtuple(state) else type(state)(fields)


def detach(state: S) -> S:
    """Cut the graph behind ``state`` (truncated backpropagation through time)."""
    return map_state(Tensor.detach, state)


def where(mask: Tensor, new: S, old: S) -> S:
    """Take ``new`` for the batch entries where ``mask`` (B,) is true and ``old`` elsewhere."""

    def pick(n: Tensor, o: Tensor) -> Tensor:
        return torch.where(mask.view(mask.shape + (1,) * (n.dim() - 1)), n, o)

    return map_state(pick, new, old)


def select(state: S, index: Tensor, dim: int = 0) -> S:
    """Reorder or pick batch entries along ``dim`` (beam search, packed-sequence order)."""
    return map_state(lambda t: t.index_select(dim, index), state)


def stack(states: Sequence[S], dim: int = 0) -> S:
    """Stack a list of states into one state whose fields gain dimension ``dim``."""
    first = states[0]
    fields = [torch.stack(parts, dim) for parts in zip(*states, strict=True)]
    return type(first)(*fields) if _is_namedtuple(first) else type(first)(fields)


def unbind(state: S, dim: int = 0) -> list[S]:
    """The inverse of :func:`stack`."""
    columns = [t.unbind(dim) for t in state]
    make = (lambda f: type(state)(*f)) if _is_namedtuple(state) else type(state)
    return [make(list(f)) for f in zip(*columns, strict=True)]


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


# -- nested states: a model's state is a tuple of its layers' states (tensors or NamedTuples) -----------


def tree_map(fn: Callable[[Tensor], Tensor], tree: Any) -> Any:
    """Apply ``fn`` to every tensor of a nested structure of tuples, NamedTuples and lists."""
    if isinstance(tree, Tensor):
        return fn(tree)
    if tree is None:
        return None
    if _is_namedtuple(tree):
        return type(tree)(*(tree_map(fn, t) for t in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(fn, t) for t in tree)
    raise TypeError(f"a state holds tensors, tuples and lists, not {type(tree).__name__}")


def tree_leaves(tree: Any) -> list[Tensor]:
    """The tensors of a nested state, depth first."""
    leaves: list[Tensor] = []
    tree_map(lambda t: leaves.append(t) or t, tree)
    return leaves


def tree_replace(template: Any, leaves: Sequence[Tensor]) -> Any:
    """A state shaped like ``template`` holding ``leaves`` (the inverse of :func:`tree_leaves`)."""
    it = iter(leaves)
    return tree_map(lambda _: next(it), template)


__all__ = [
    "NamedTuple",
    "detach",
    "map_state",
    "select",
    "stack",
    "tree_leaves",
    "tree_map",
    "tree_replace",
    "unbind",
    "where",
]
