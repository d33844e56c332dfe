"""The parallel scan behind minGRU and minLSTM: h_t = a_t * h_{t-1} + b_t for all t at once.

With 0 < a_t and 0 < b_t given as logarithms, unrolling gives

    h_t = A_t h_0 + sum_{k<=t} (A_t / A_k) b_k,        A_t = a_1 ... a_t,

so, in log space (Heinsen 2023; Feng et al. 2024), with log A = cumsum(log a):

    h_t = exp(log A_t) h_0 + exp(log A_t + logcumsumexp_k(log b_k - log A_k)).

Two details that public versions get wrong are handled here. h_0 enters linearly, not through
log(h_0), so any initial state works (negative, zero). And the scan runs in chunks, each
starting again from log A = 0, with the state carried from one chunk to the next: log A_t then stays
bounded by the chunk length, which keeps the rounding of log A_t + logcumsumexp(...) at float32's
1e-6 level instead of growing with T.
"""

from __future__ import annotations

import torch
from torch import Tensor


def scan_log(log_a: Tensor, log_b: Tensor, h0: Tensor, *, chunk: int = 64) -> Tensor:
    """All h_t of h_t = a_t h_{t-1} + b_t, given log a, log b (T, B, H) and h_0 (B, H) -> (T, B, H).

    >>> a, b = torch.full((3, 1, 1), 0.5), torch.ones(3, 1, 1)
    >>> scan_log(a.log(), b.log(), torch.full((1, 1), 4.0)).flatten().tolist()
    [3.0, 2.5, 2.25]
    """
    if log_a.shape[0] == 0:
        raise ValueError("scan over a sequence of length 0: give at least one time step")
    outputs, h = [], h0
    for la, lb in zip(log_a.split(chunk), log_b.split(chunk), strict=True):
        log_A = la.cumsum(0)  # (C, B, H): log of a_1 ... a_t within the chunk
        hs = log_A.exp() * h + (log_A + torch.logcumsumexp(lb - log_A, dim=0)).exp()
        outputs.append(hs)
        h = hs[-1]
    return torch.cat(outputs) if len(outputs) > 1 else outputs[0]
