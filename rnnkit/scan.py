"""The scan behind minGRU and minLSTM: h_t = a_t * h_{t-1} + b_t for all t at once.

No gate reads h_{t-1}, so a_t and b_t come from the inputs alone and the whole sequence is one linear
recurrence. Two exact ways to run it are here.

:func:`scan_linear` (the default) sweeps the recurrence itself inside one autograd function whose
backward is the same recurrence run backwards in time,

    g_t = dL/dh_t + a_{t+1} g_{t+1},    dL/db_t = g_t,    dL/da_t = g_t h_{t-1},    dL/dh_0 = a_1 g_1,

so neither pass builds a graph of T nodes. On a CPU the recurrence is memory-bound: one fused
multiply-add per step over a (B, H) slab that stays in cache reads and writes each element once, which
no log-depth parallel scan (log2 T passes over memory) can beat. Where one step is too small to pay for
its dispatch (small B * H against long T, or on a GPU, where launches cost more), the sweep runs
chunked: every chunk from a zero start at once, then the chunks' carries, then every chunk again from
its true start, so the Python loop has 2C + T/C iterations instead of T (:func:`sweep_chunked`).

:func:`scan_log` is the textbook log-space form (Heinsen 2023; Feng et al. 2024), with log A = cumsum(log a),

    h_t = exp(log A_t) h_0 + exp(log A_t + logcumsumexp_k(log b_k - log A_k)),

kept as a reference and for a_t, b_t given as logarithms. Two details that public versions get wrong
are handled: h_0 enters linearly, not through log(h_0), so any initial state works (negative, zero);
and the scan runs in chunks that each start again from log A = 0, which keeps the rounding of
log A_t + logcumsumexp(...) at float32's 1e-6 level instead of growing with T. It is slower
(logcumsumexp costs about ten cumsums per element; benchmarks/mingru_speed.py measures both).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

#: maps inputs (K, B, F) to a, b (K, B, H) of h_t = a_t h_{t-1} + b_t, elementwise in time
Coefficients = Callable[[Tensor], tuple[Tensor, Tensor]]


def scan_gated(coefficients: Coefficients, x: Tensor, h0: Tensor, *, block: int | None = None) -> Tensor:
    """All h_t of h_t = a_t h_{t-1} + b_t where (a_t, b_t) = coefficients(x_t), x (T, B, F), h_0 (B, H).

    ``coefficients`` maps a block of inputs (K, B, F) to a, b (K, B, H) elementwise in time, like
    :meth:`rnnkit.MinGRUCell.coefficients`. It runs on ``block`` time steps at a time, so that a, b and
    its temporaries stay in cache, and again in backward (where autograd differentiates it, one block
    at a time) rather than keeping a and b for the whole sequence: elementwise passes over a (T, B, H)
    tensor from memory cost about three times as much as over a cached block (measured).

    >>> a, b = torch.full((3, 1, 1), 0.5), torch.ones(3, 1, 1)
    >>> scan_gated(lambda ab: ab.unbind(-1), torch.stack((a, b), -1), torch.full((1, 1), -4.0)).flatten().tolist()
    [-1.0, 0.5, 1.25]
    """
    if x.shape[0] == 0:
        raise ValueError("scan over a sequence of length 0: give at least one time step")
    if torch.compiler.is_compiling():  # the blocked sweep writes into views (out=), which torch.compile refuses
        a, b = coefficients(x)
        hs, h = [], h0
        for a_t, b_t in zip(a.unbind(0), b.unbind(0), strict=True):
            h = torch.addcmul(b_t, a_t, h)
            hs.append(h)
        return torch.stack(hs)
    if block is None:  # about 128K input numbers a block (512 KiB of float32; 64K-256K measured alike)
        block = max(1, 2**17 // max(x[0].numel(), 1))
    return _GatedScan.apply(x, h0, coefficients, block)


def scan_linear(a: Tensor, b: Tensor, h0: Tensor, *, block: int | None = None) -> Tensor:
    """All h_t of h_t = a_t h_{t-1} + b_t, given a, b (T, B, H) and h_0 (B, H) -> (T, B, H).

    >>> a, b = torch.full((3, 1, 1), 0.5), torch.ones(3, 1, 1)
    >>> scan_linear(a, b, torch.full((1, 1), -4.0)).flatten().tolist()
    [-1.0, 0.5, 1.25]
    """
    if a.shape != b.shape or a.shape[1:] != h0.shape:
        raise ValueError(f"scan_linear: a {tuple(a.shape)} and b {tuple(b.shape)} must be (T, *S) and h0 (*S), "
                         f"got h0 {tuple(h0.shape)}")  # fmt: skip
    return scan_gated(_pair, torch.stack((a, b), -1), h0, block=block)


def _pair(ab: Tensor) -> tuple[Tensor, Tensor]:
    return ab[..., 0], ab[..., 1]


def choose_chunk(steps: int, width: int, device: torch.device) -> int:
    """The chunk length of :func:`sweep_chunked` for ``steps`` steps of ``width`` numbers (0: per step).

    A step costs a few microseconds of dispatch whatever its size, so chunk narrow steps. Measured on the
    CPU (benchmarks/mingru_speed.py --sweeps, T = 2048, 2 threads): chunked is 6-9x faster at 64-256
    numbers a step and 2.5x at 2048; at 4096 and more it wins only as one long sweep, not inside the
    scan's short blocks (minGRU B16 H256, whole layer: 208 ms per step against 217 ms chunked).
    """
    if device.type == "cpu" and width >= 4096:
        return 0
    chunk = max(2, math.isqrt(steps))  # about minimises the 2C + T/C loop iterations
    return chunk if steps >= 2 * chunk else 0


def sweep(a: Tensor, b: Tensor, h0: Tensor, *, reverse: bool = False, out: Tensor | None = None) -> Tensor:
    """h_t = a_t h_{t-1} + b_t forwards, one fused multiply-add a step. With ``reverse``, the backward
    recurrence g_t = b_t + a_{t+1} g_{t+1}, where h0 is the term a_{T+1} g_{T+1} from after the end."""
    out, h, T = torch.empty_like(b) if out is None else out, h0, b.shape[0]
    if not reverse:
        for t in range(T):
            h = torch.addcmul(b[t], a[t], h, out=out[t])
        return out
    h = torch.add(b[T - 1], h0, out=out[T - 1])
    for t in range(T - 2, -1, -1):
        h = torch.addcmul(b[t], a[t + 1], h, out=out[t])
    return out


def sweep_chunked(
    a: Tensor, b: Tensor, h0: Tensor, chunk: int, *, reverse: bool = False, out: Tensor | None = None
) -> Tensor:
    """:func:`sweep` in chunks of ``chunk`` steps: 2C + T/C loop iterations instead of T. Every chunk
    runs from a zero start at once; then the chunks' carries; then every chunk again from its true start."""
    if reverse:  # the same recurrence on time reversed, with a shifted by one step (two copies)
        a_next = torch.cat([a[1:], torch.ones_like(a[:1])])
        g = sweep_chunked(a_next.flip(0), b.flip(0), h0, chunk).flip(0)
        return g if out is None else out.copy_(g)
    T, C = b.shape[0], chunk
    n = T // C
    if C < 2 or n < 2:
        return sweep(a, b, h0, out=out)
    av, bv = a[: n * C].unflatten(0, (n, C)), b[: n * C].unflatten(0, (n, C))  # (n, C, *S)
    end = bv[:, 0]  # 1. each chunk's last value from a zero start ...
    for c in range(1, C):
        end = torch.addcmul(bv[:, c], av[:, c], end)
    gain = av.prod(1)  # ... and the product of its a's
    starts, h = torch.empty_like(end), h0  # 2. the true state before each chunk
    for j in range(n):
        starts[j] = h
        h = torch.addcmul(end[j], gain[j], h)
    out = torch.empty_like(b) if out is None else out  # 3. every chunk again, from its true start
    ov, h = out[: n * C].unflatten(0, (n, C)), starts
    for c in range(C):
        h = torch.addcmul(bv[:, c], av[:, c], h, out=ov[:, c])
    if n * C < T:
        out[n * C :] = sweep(a[n * C :], b[n * C :], out[n * C - 1])
    return out


def _sweep_any(a: Tensor, b: Tensor, h0: Tensor, *, reverse: bool = False, out: Tensor | None = None) -> Tensor:
    chunk = choose_chunk(b.shape[0], h0.numel(), b.device)
    if chunk:
        return sweep_chunked(a, b, h0, chunk, reverse=reverse, out=out)
    return sweep(a, b, h0, reverse=reverse, out=out)


class _GatedScan(torch.autograd.Function):
    """Forward: per block, a, b = coefficients(x) and the sweep. Backward, per block from the last:
    g_t = dL/dh_t + a_{t+1} g_{t+1}; then dL/db_t = g_t and dL/da_t = g_t h_{t-1} go back through
    ``coefficients`` by autograd; dL/dh_0 = a_1 g_1."""

    @staticmethod
    def forward(ctx, x: Tensor, h0: Tensor, coefficients: Coefficients, block: int) -> Tensor:
        hs, h = torch.empty(x.shape[0], *h0.shape, dtype=h0.dtype, device=h0.device), h0
        for t0 in range(0, x.shape[0], block):
            a, b = coefficients(x[t0 : t0 + block])
            _sweep_any(a, b, h, out=hs[t0 : t0 + block])
            h = hs[min(t0 + block, x.shape[0]) - 1]
        ctx.save_for_backward(x, h0, hs)
        ctx.coefficients, ctx.block = coefficients, block
        return hs

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        if torch.is_grad_enabled():  # create_graph=True: gradients of gradients
            return _GatedScan.differentiable_backward(ctx, grad)
        x, h0, hs = ctx.saved_tensors
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        carry = torch.zeros_like(h0)  # a_{t+1} g_{t+1} from the block after this one
        T = x.shape[0]
        for t0 in reversed(range(0, T, ctx.block)):
            t1 = min(t0 + ctx.block, T)
            with torch.enable_grad():
                xb = x[t0:t1].detach().requires_grad_()
                a, b = ctx.coefficients(xb)
            g = _sweep_any(a.detach(), grad[t0:t1].contiguous(), carry, reverse=True)
            if grad_x is not None:
                pairs = [(b, g)] if b.requires_grad else []
                if a.requires_grad:  # dL/da_t = g_t h_{t-1}
                    grad_a = torch.empty_like(g)
                    torch.mul(g[1:], hs[t0 : t1 - 1], out=grad_a[1:])
                    torch.mul(g[0], h0 if t0 == 0 else hs[t0 - 1], out=grad_a[0])
                    pairs.append((a, grad_a))
                if pairs:
                    outs, grads = zip(*pairs, strict=True)
                    grad_x[t0:t1] = torch.autograd.grad(outs, xb, grads)[0]
                else:
                    grad_x[t0:t1] = 0
            carry = a[0].detach() * g[0]
        return grad_x, carry if ctx.needs_input_grad[1] else None, None, None

    @staticmethod
    def differentiable_backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        """The gradients as a graph that autograd can differentiate again: the scan recomputed as a plain
        loop of differentiable steps from the saved x and h_0 (which then carry their own history), and
        differentiated with ``create_graph``. Slower and larger than the blocked backward; asked for only
        by ``torch.autograd.grad(..., create_graph=True)`` and its kin."""
        x, h0, _ = ctx.saved_tensors
        a, b = ctx.coefficients(x)
        hs, h = [], h0
        for a_t, b_t in zip(a.unbind(0), b.unbind(0), strict=True):
            h = torch.addcmul(b_t, a_t, h)
            hs.append(h)
        wanted = [t for t, need in zip((x, h0), ctx.needs_input_grad[:2], strict=True) if need]
        found = iter(torch.autograd.grad(torch.stack(hs), wanted, grad, create_graph=True, allow_unused=True))
        return (*(next(found) if need else None for need in ctx.needs_input_grad[:2]), None, None)


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
