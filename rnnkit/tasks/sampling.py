"""Sampling a sequence from a step function: greedy, temperature, top-k and nucleus (top-p)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from rnnkit import native
from rnnkit.errors import RnnkitError

StepFn = Callable[[Tensor, Any], tuple[Tensor, Any]]  # (ids (T, B), state) -> (logits (T, B, V), state)


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """One-line errors, naming the flag, for sampling options outside their ranges (NaN included)."""
    if not (math.isfinite(temperature) and temperature >= 0):
        raise RnnkitError(f"--temperature must be >= 0 and finite (0 is greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise RnnkitError(f"--top-k must be at least 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:  # NaN fails the comparison too
        raise RnnkitError(f"--top-p must lie in (0, 1], got {top_p}")


def filter_logits(
    logits: Tensor, *, top_k: int | None = None, top_p: float | None = None, banned: Iterable[int] = ()
) -> Tensor:
    """Set to -inf what may not be drawn: banned ids, all but the k best, all outside the top-p mass.

    >>> filter_logits(torch.tensor([[1.0, 3.0, 2.0]]), top_k=2).tolist()
    [[-inf, 3.0, 2.0]]
    """
    logits = logits.clone()
    banned = list(banned)
    if banned:
        logits[..., banned] = float("-inf")
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        outside = probs.cumsum(-1) - probs >= top_p  # the smallest set whose mass reaches p stays
        outside[..., 0] = False  # the most likely token always stays (a top_p below float32's range is 0)
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(outside, float("-inf")))
    return logits


def sample_next(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    banned: Iterable[int] = (),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw one id per row of ``logits`` (B, V); temperature 0 takes the most likely one."""
    banned = list(banned)
    kernels = _native_draw(logits, temperature, top_k, top_p, banned, generator)
    if kernels is not None:  # the draw below in one call (rnnkit/native/sampling.cpp)
        try:
            return kernels.sample_rows(logits, banned, temperature, generator)
        except ValueError:  # a row with nothing to draw
            raise RnnkitError(NOTHING_TO_DRAW) from None
    logits = filter_logits(logits.float(), top_k=top_k, top_p=top_p, banned=banned)
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.double() - logits.max(-1, keepdim=True).values  # the best is 0, so no temperature overflows
    probs = (logits / temperature).softmax(-1)  # float64: a denormal temperature is not 0 (as in float32)
    if not bool(probs.isfinite().all()):
        raise RnnkitError(NOTHING_TO_DRAW)
    return draw(probs, generator)


NOTHING_TO_DRAW = "the model gave no token a probability to sample from (a NaN or infinite logit, or every id banned)"


def _native_draw(
    logits: Tensor, temperature: float, top_k: int | None, top_p: float | None, banned: list, generator: Any
) -> Any:
    """rnnkit.native's kernels for the default draw (a temperature, no top-k or top-p, on the CPU), else None.
    They make :func:`draw`'s draw in one pass over the row (rnnkit/native/sampling.cpp), its sums formed in
    another order: the same ids but where u falls within float64 rounding (~1e-16) of a boundary between two
    (tests/tasks/test_lm_sampling.py compares thousands of draws). Right after a model's step, at batch 1 and
    10,000 words, the Python below took 0.15-0.18 ms a token, the native call about 0.06 ms (ad-hoc timings)."""
    if temperature <= 0 or top_k is not None or top_p is not None or logits.dim() != 2 or not native.enabled():
        return None
    if logits.device.type != "cpu" or (generator is not None and generator.device.type != "cpu"):
        return None
    if any(not 0 <= i < logits.shape[-1] for i in banned):  # Python's indexing error, or its negative ids
        return None
    return native.load()


def draw(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One id per row of ``probs`` (..., V), each with its probability: the first id whose cumulative
    probability exceeds a uniform number. Exact, and one random number per row, where torch.multinomial draws
    one per entry: 0.02 ms against 0.23 ms for 10,000 words (measured on 2 cores), a tenth of a generated token.

    >>> draw(torch.tensor([[0.0, 1.0, 0.0]])).tolist()
    [1]
    """
    cdf = probs.cumsum(-1)
    total = cdf[..., -1:]
    device = generator.device if generator is not None else probs.device
    u = torch.rand((*probs.shape[:-1], 1), dtype=cdf.dtype, device=device, generator=generator).to(probs.device)
    # u < 1, but u * total can round up to the total: keep it below, so that the first cumulative probability above
    # it is that of an id that may be drawn (a banned id's is equal to the one before it, so never above u first)
    u = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True).squeeze(-1)


def generate(
    step: StepFn,
    prime: list[int],
    *,
    max_length: int,
    stop_id: int | None = None,
    state: Any = None,
    **sampling: Any,
) -> list[int]:
    """Feed ``prime`` (at least one id), then draw up to ``max_length`` ids, stopping at ``stop_id``."""
    return list(stream(step, prime, max_length=max_length, stop_id=stop_id, state=state, **sampling))


def stream(
    step: StepFn,
    prime: list[int],
    *,
    max_length: int,
    stop_id: int | None = None,
    state: Any = None,
    **sampling: Any,
) -> Iterator[int]:
    """:func:`generate` one id at a time, as each is drawn (for output that streams and stops on Ctrl-C)."""
    if not prime:
        raise RnnkitError("generation needs at least one priming token")
    with torch.no_grad():
        logits, state = step(torch.tensor(prime).unsqueeze(1), state)  # (T, 1, V)
    for _ in range(max_length):
        token = sample_next(logits[-1], **sampling)
        if stop_id is not None and int(token) == stop_id:
            return
        yield int(token)
        with torch.no_grad():  # not around the yield: the caller's code between ids keeps its own grad mode
            logits, state = step(token.view(1, 1), state)
