"""The reference loop's matrix products through oneDNN, the library torch's own fused LSTM runs on.

On CPU, ``F.linear`` calls MKL, and oneDNN is what torch.nn.LSTM's kernel uses. On the AVX-512 AMD CPU this
project measures on (Zen 5), MKL reaches about 200 GFLOP/s and oneDNN 420-440 (benchmarks/suite.py). A step of
the loop at batch 32, (32 x 256) . (256 x 1024), took 243 us through F.linear and 169 us through oneDNN on one
thread; at hidden 512, 1,076 against 483 us. But not every shape gains: a square (32 x 256) . (256 x 256) took 52
us through MKL and 79 through oneDNN, and whole loops measured the same way (B32 T100 H256, forward and backward,
one thread, while another job ran) went 1.74x faster for the LSTM's (4H x H) matrices, 0.92x for the GRU's
(3H x H) and 0.70x for Jordan's (H x H). So only matrices at least :data:`MIN_WIDTH_RATIO` times wider than tall
take this path: the gate matrices of LSTM cells with any activations (the cells torch.nn.LSTM's kernel cannot
run). On a quiet machine with 2 threads, rnnkit.LSTM(256, 256, fused=False) at B32 T100 then took 21-25 ms
forward against 31-34 ms, and 73-74 ms forward and backward against 82-88 (torch.nn.LSTM: 43 ms): the
backward's per-step work, not its products, is most of what remains. (That backward is now written by hand for
LSTM and Jordan cells, :mod:`rnnkit.bptt`, with each weight's gradient one :func:`weight_grad` product.)

On an Intel Xeon the balance is the other way below 512 inputs (:data:`MKL_MIN_INPUTS`), and for weight gradients
(:func:`weight_grad`): there MKL's products are the faster, and these paths follow :func:`mkl_is_fast`.

:class:`OneDNNMatrix` routes their products there without touching the cells' equations. It is bound in place of
a weight (see :meth:`rnnkit.cells.Cell.bound`) and answers ``F.linear(x, w, b)`` of float32 inputs of at least
:data:`MIN_ROWS` rows with oneDNN's product on a weight packed once per layer call. Every other operation, and
smaller products (at batch 1 oneDNN is slower), sees the weight itself.

Gradients flow to the real parameter through :class:`_OneDNNLinear`: the input's gradient is oneDNN's product with
the packed transpose, the weight's ``grad^T x`` and the bias's a sum. tests/test_onednn.py checks the LSTM loops'
outputs and gradients against the plain loop's, and which products take the path.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils import _pytree as pytree

#: products of fewer rows stay with F.linear (oneDNN's is slower at batch 1: 158 against 71 us, measured)
MIN_ROWS = 8
#: only weights with at least this many output features per input feature (module docstring: measured)
MIN_WIDTH_RATIO = 4
#: where MKL is the faster library (:func:`mkl_is_fast`), only weights of at least this many input features: on an
#: Intel Xeon the LSTM loop (B32 T100, forward and backward, 2 threads) ran 16-25% faster with MKL's products at
#: hidden 128 and 5-9% at 256, and 3-10% slower at 512 (interleaved A/B runs)
MKL_MIN_INPUTS = 512


def usable() -> bool:
    """torch is built with oneDNN, it is enabled, and no torch.compile is tracing (it traces F.linear itself)."""
    return torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled and not torch.compiler.is_compiling()


def available(x: Tensor) -> bool:
    """Whether the loop over ``x`` (T, B, F) takes oneDNN's products: float32 on the CPU, a batch of at least
    :data:`MIN_ROWS`, torch built with oneDNN, and not under torch.compile (which traces F.linear itself)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and x.shape[1] >= MIN_ROWS and usable()


class OneDNNMatrix(Tensor):
    """A 2-D weight whose ``F.linear`` products run through oneDNN (module docstring); ``original`` is the
    parameter the gradients go to."""

    original: Tensor
    packed: Tensor
    packed_t: Tensor

    @staticmethod
    def __new__(cls, weight: Tensor, rows: int, *, backward: bool = True) -> OneDNNMatrix:
        """``rows``: the product's expected rows (oneDNN's packing hint); ``backward=False`` (inference) skips
        packing the transpose, which only the input's gradient reads."""
        self = Tensor._make_subclass(cls, weight.detach())
        self.original = weight
        with torch.no_grad():
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)
            t = weight.detach().t().contiguous()
            self.packed_t = torch.ops.mkldnn._reorder_linear_weight(t, rows) if backward else None
        return self

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        call = linear_call(cls, func, args, kwargs)
        if call is not None and call[0].dtype == torch.float32:
            x, weight, bias = call
            rows = x.reshape(-1, x.shape[-1])
            if rows.shape[0] >= MIN_ROWS:
                y = _OneDNNLinear.apply(rows, weight.original, bias, weight.packed, weight.packed_t)
                return y.reshape(*x.shape[:-1], y.shape[-1])
        # everything else computes with the parameter itself, so its gradient reaches it
        args, kwargs = pytree.tree_map_only(cls, lambda t: t.original, (args, kwargs))
        return func(*args, **kwargs)


def linear_call(cls: type, func: Any, args: Any, kwargs: dict) -> tuple[Tensor, Any, Tensor | None] | None:
    """(x, weight, bias) when ``__torch_function__`` of the weight subclass ``cls`` receives ``F.linear`` of a
    plain input by a ``cls`` weight (bias positional or keyword), else None: the call such a weight answers."""
    if func is not F.linear:
        return None
    x, weight, bias = args[0], args[1], args[2] if len(args) > 2 else kwargs.get("bias")
    return (x, weight, bias) if isinstance(weight, cls) and not isinstance(x, cls) else None


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x weight^T + bias`` through oneDNN, for a 2-D float32 ``x`` and a weight packed by
    ``torch.ops.mkldnn._reorder_linear_weight`` or given as a plain (or strided) (out, in) tensor."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """y = x W^T + b through oneDNN; backward: dx = dy W (oneDNN, packed W^T), dW = dy^T x, db = sum dy. A
    backward that builds a graph (``create_graph=True``: gradients of gradients) uses torch's own products."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, packed: Tensor, packed_t: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.packed_t, ctx.has_bias = packed_t, bias is not None
        return linear(x.contiguous(), packed, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            if torch.is_grad_enabled() or ctx.packed_t is None:  # differentiable (a second backward), or unpacked
                gx = grad.mm(weight)
            else:
                gx = linear(grad.contiguous(), ctx.packed_t)
        if ctx.needs_input_grad[1]:
            gw = grad.t().mm(x) if torch.is_grad_enabled() else weight_grad(grad, x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum(0)
        return gx, gw, gb, None, None


def weight_grad(grad: Tensor, x: Tensor) -> Tensor:
    """``grad^T x`` for (N, out) and (N, in) float32 rows: a weight's gradient summed over N rows.

    On an AMD EPYC (Zen 5), MKL's product with a transposed left operand, (1024 x 3200) . (3200 x 256), took
    19-20 ms on one thread (about 90 GFLOP/s). oneDNN's, asked for ``(x^T grad)^T`` with ``grad^T`` as a strided
    view (the weight operand; only x, the narrower, is copied), took 9.6 ms. On an Intel Xeon MKL's took 11.7 ms
    against oneDNN's 11.9 on one thread, and 5.6 against 6.5 on two; for (256 x 3168) . (3168 x 256), an
    Elman or SCRN loop's, 1.4 against 2.3 ms on two. So MKL takes it on Intel CPUs (:func:`mkl_is_fast`), oneDNN
    elsewhere: a rule fixed per machine, not a measurement per run, so that a resumed training computes as the
    run it continues. Small products (fewer than :data:`MIN_ROWS` rows) and other dtypes stay with torch."""
    if grad.dtype != torch.float32 or grad.shape[0] < MIN_ROWS or grad.device.type != "cpu" or not usable():
        return grad.t().mm(x)
    return grad.t().mm(x) if mkl_is_fast() else linear(x.t().contiguous(), grad.t()).t()


@functools.cache
def mkl_is_fast() -> bool:
    """Whether this CPU is Intel's, where MKL's products are as fast as oneDNN's or faster (:func:`weight_grad`,
    :data:`MKL_MIN_INPUTS`); ``RNNKIT_PRODUCTS=onednn`` or ``=mkl`` overrides it."""
    forced = os.environ.get("RNNKIT_PRODUCTS", "").lower()
    if forced in ("mkl", "onednn"):
        return forced == "mkl"
    if forced:
        message = f"RNNKIT_PRODUCTS={forced!r} is neither 'mkl' nor 'onednn': ignored, the CPU decides"
        warnings.warn(message, stacklevel=2)
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "GenuineIntel" in info


#: the forward products of the Elman and Jordan loops (rnnkit.native's, :func:`loop_pack`) go through oneDNN from
#: this many inputs: at (32 x 512) . (512 x 512) oneDNN's product with a packed weight took 62 us against MKL's 70,
#: and at 256 inputs 31 against 19 (200 products in a row; an Intel Xeon, 2 threads, the only CPU these square
#: products were measured on)
LOOP_MIN_INPUTS = 512


def loop_pack(w: Tensor, rows: int) -> Tensor | None:
    """``w`` (out, in) packed for oneDNN's product ``x w^T`` at ``rows`` rows, where that is the faster product
    for a step of rnnkit.native's Elman and Jordan loops (:data:`LOOP_MIN_INPUTS`): float32 on the CPU, at least
    :data:`MIN_ROWS` rows, torch built with oneDNN; else None (MKL's product)."""
    if w.dtype != torch.float32 or w.device.type != "cpu" or rows < MIN_ROWS or w.shape[1] < LOOP_MIN_INPUTS:
        return None
    if not usable():
        return None
    return torch.ops.mkldnn._reorder_linear_weight(w.detach().contiguous(), rows)


def onednn_cells(cells: list[Any], rows: int, *, backward: bool = True) -> list[Any]:
    """``cells`` (bound to their layer's weights) with every float32 weight matrix at least
    :data:`MIN_WIDTH_RATIO` times wider than tall a :class:`OneDNNMatrix` (``backward``: as there)."""
    out = []
    for cell in cells:
        weights = {name: OneDNNMatrix(w, rows, backward=backward) for name, w in cell._parameters.items() if _wide(w)}
        out.append(cell.bound(weights) if weights else cell)
    return out


def _wide(w: Tensor | None) -> bool:
    wide = w is not None and w.dim() == 2 and w.dtype == torch.float32 and w.shape[0] >= MIN_WIDTH_RATIO * w.shape[1]
    return wide and (not mkl_is_fast() or w.shape[1] >= MKL_MIN_INPUTS)
