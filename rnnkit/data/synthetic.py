"""Synthetic long-range memory tasks: the adding problem and the copy-memory task.

Both are generated on the fly, time-major like the rest of rnnkit, from an optional ``torch.Generator``
so that a seed fixes every batch.

The adding problem (Hochreiter & Schmidhuber 1997), as Le, Jaitly and Hinton 2015 ("A Simple Way to
Initialize Recurrent Networks of Rectified Linear Units", section 4.1) set it: at each of T steps the input
is a value drawn from U[0, 1] and a marker that is 1 at exactly two steps and 0 elsewhere; the target is
the sum of the two marked values. Placement: one marker uniformly in the first half (steps 0 .. T//2 - 1),
the other uniformly in the second half (T//2 .. T-1), the rule of Arjovsky et al. 2016 and of the common
IRNN reproductions (Le et al. only say "two steps"). Always answering 1 scores MSE Var(u1 + u2) = 1/6
~ 0.167 (Le et al. quote 0.1767); the task counts as solved below MSE 0.01.

The copy-memory task (Hochreiter & Schmidhuber 1997), as Arjovsky, Shah and Bengio 2016 set it: symbols
0 (blank), 1 .. 8 (data) and 9 (delimiter). A sequence of T + 20 steps holds 10 data symbols, T - 1
blanks, the delimiter, then 10 blanks; the target is blank for the first T + 10 steps and the 10 data
symbols, in order, for the last 10. A memoryless model that answers blank, then uniformly over the 8
data symbols, scores cross-entropy 10 log(8) / (T + 20) per step: :func:`copy_memory_baseline`.

>>> x, y = adding_problem(50, 4, generator=torch.Generator().manual_seed(0))
>>> x.shape, y.shape, x[:, :, 1].sum(0).tolist()
(torch.Size([50, 4, 2]), torch.Size([4]), [2.0, 2.0, 2.0, 2.0])
>>> x, y = copy_memory(30, 4)
>>> x.shape, y.shape, x[39].tolist()
(torch.Size([50, 4]), torch.Size([50, 4]), [9, 9, 9, 9])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnkit.errors import RnnkitError

#: MSE of always answering 1 on the adding problem: the variance of the sum of two U[0, 1] values
ADDING_BASELINE_MSE = 1 / 6
BLANK = 0


def adding_problem(T: int, batch_size: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """A batch of the adding problem.

    Args:
        T: sequence length (at least 2).
        batch_size: sequences in the batch.
        generator: the random source; the same seeded generator gives the same batch.

    Returns:
        x: (T, B, 2) float: x[..., 0] the values, x[..., 1] the markers (two 1s per sequence).
        y: (B,) the sum of each sequence's two marked values.
    """
    if T < 2 or batch_size < 1:
        raise RnnkitError(f"adding_problem: need T >= 2 and batch_size >= 1, got T={T}, batch_size={batch_size}")
    half = T // 2
    values = torch.rand(T, batch_size, generator=generator)
    first = torch.randint(0, half, (batch_size,), generator=generator)
    second = torch.randint(half, T, (batch_size,), generator=generator)
    markers = torch.zeros(T, batch_size)
    columns = torch.arange(batch_size)
    markers[first, columns] = 1.0
    markers[second, columns] = 1.0
    return torch.stack([values, markers], dim=-1), (values * markers).sum(0)


def copy_memory(
    T: int,
    batch_size: int,
    *,
    num_symbols: int = 10,
    num_categories: int = 8,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """A batch of the copy-memory task: ``num_symbols`` data symbols to recall after T steps.

    Symbols: 0 blank, 1 .. num_categories data, num_categories + 1 the delimiter.

    Args:
        T: the delay: T - 1 blanks and the delimiter lie between the data and the recall (T >= 1).
        batch_size: sequences in the batch.
        num_symbols: data symbols per sequence (10 in Arjovsky et al.).
        num_categories: data symbol values (8 in Arjovsky et al.).
        generator: the random source.

    Returns:
        x, y: (T + 2 * num_symbols, B) int64 inputs and targets.
    """
    if T < 1 or batch_size < 1 or num_symbols < 1 or num_categories < 1:
        raise RnnkitError(
            f"copy_memory: need T, batch_size, num_symbols, num_categories >= 1, got T={T}, "
            f"batch_size={batch_size}, num_symbols={num_symbols}, num_categories={num_categories}"
        )
    n = num_symbols
    data = torch.randint(1, num_categories + 1, (n, batch_size), generator=generator)
    x = torch.full((T + 2 * n, batch_size), BLANK, dtype=torch.long)
    y = torch.full_like(x, BLANK)
    x[:n] = data
    x[T + n - 1] = num_categories + 1  # the delimiter: recall starts at the next step
    y[T + n :] = data
    return x, y


def copy_memory_baseline(T: int, *, num_symbols: int = 10, num_categories: int = 8) -> float:
    """Per-step cross-entropy (nats) of the memoryless answer: num_symbols log(num_categories) / (T + 2 num_symbols)."""
    return num_symbols * math.log(num_categories) / (T + 2 * num_symbols)
