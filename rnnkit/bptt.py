"""Backpropagation through time written out by hand, for the cells torch's fused kernels cannot run.

The reference loop (:meth:`rnnkit.cells.Cell.sequence`) lets autograd record every step: T small graphs,
each product's weight gradient computed step by step in backward, and autograd's bookkeeping around every
operation. Here the forward loop runs without a graph, keeping only what the backward reads, and the backward
loop is the textbook recurrence run from the last step to the first:

    Jordan:  dy_t = dL/dy_t + dy_{t+1}'s share,  do_t = act_y'(o_t) dy_t,  dz_t = g'(z_t) (do_t W_hy),
             the next share = dz_t W_yh;  dW_yh = sum_t dz_t^T y_{t-1},  dW_hy = sum_t do_t^T h_t.
    LSTM:    dc_t = dc_{t+1}'s share + sigma(o_t) phi'(c_t) dh_t,  the gates' gradients from dh_t and dc_t,
             the next shares: dgates_t W_hh and sigma(f_t) dc_t;  dW_hh = sum_t dgates_t^T h_{t-1}.

The weight gradients are one large product over all T x B rows at the end, not T small ones. Every
activation's derivative is read from its output (tanh' = 1 - y^2, sigmoid' = y (1 - y), ...), so the
forward keeps the activations' outputs and the states (and the inputs, for gradients of gradients); the
reference loop keeps several tensors more a step for autograd. These paths are a dispatch: the cells take
them where :func:`usable` says (a gradient is wanted, activations with a derivative here, no state list
asked for), and tests/cells/test_hand_bptt.py checks outputs and gradients against the reference loop in
float64. Gradients of gradients (``backward(create_graph=True)``) are not written by hand: that backward
recomputes the reference loop from the saved inputs and lets autograd differentiate it.

The LSTM loop's per-step elementwise work (activations, the cell update, their derivatives) is one call of
:mod:`rnnkit.native`'s C++ kernels each way where that extension is built, and a dozen torch operations
otherwise; the same kernels run the forward alone when no gradient is wanted (:func:`lstm_inference`). The Elman
and Jordan loops, a product or two and an activation a step, are one call of rnnkit.native each way, products
included, with or without a gradient (:func:`loop_usable`): a Jordan layer at B32 T100 H256 then ran forward and
backward at 0.81-0.86x of torch.nn.RNN (the Python loop: 0.65x; benchmarks/speed_layers.py, an Intel Xeon).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.autograd import forward_ad

from rnnkit import native, onednn
from rnnkit.activations import get_activation
from rnnkit.cells.base import Cell
from rnnkit.onednn import weight_grad

#: d(activation)/d(input) applied to a gradient, from the activation's *output* y, written into ``out``
Backward = Callable[[Tensor, Tensor, Tensor], Tensor]


def _hard_sigmoid_backward(y: Tensor, grad: Tensor, out: Tensor) -> Tensor:
    # relu6(x + 3) / 6: slope 1/6 strictly inside (0, 1), as torch's hardsigmoid_backward (-3 < x < 3)
    return torch.mul(grad, (y > 0) & (y < 1), out=out).div_(6)


BACKWARDS: dict[str, Backward] = {
    "tanh": lambda y, grad, out: torch.ops.aten.tanh_backward.grad_input(grad, y, grad_input=out),
    "sigmoid": lambda y, grad, out: torch.ops.aten.sigmoid_backward.grad_input(grad, y, grad_input=out),
    # y > 0 exactly where x > 0
    "relu": lambda y, grad, out: torch.ops.aten.threshold_backward.grad_input(grad, y, 0, grad_input=out),
    "identity": lambda y, grad, out: out.copy_(grad),
    "linear": lambda y, grad, out: out.copy_(grad),
    "hard_sigmoid": _hard_sigmoid_backward,
    "softmax": lambda y, grad, out: torch._softmax_backward_data(grad, y, -1, y.dtype, grad_input=out),
}


_REFERENCE: contextvars.ContextVar[bool] = contextvars.ContextVar("rnnkit_reference_loop", default=False)


@contextlib.contextmanager
def reference_loop() -> Iterator[None]:
    """Within this block the cells run the reference loop, autograd recording every step: for gradients of
    gradients, and for tests and benchmarks that compare the two.

    >>> layer = rnnkit.Jordan(3, 4, 2)
    >>> with rnnkit.bptt.reference_loop():
    ...     out, y = layer(torch.zeros(5, 1, 3))
    """
    token = _REFERENCE.set(True)
    try:
        yield
    finally:
        _REFERENCE.reset(token)


def usable(tensors: Sequence[Tensor | None], keep_steps: bool, *activations: str) -> bool:
    """Take the hand-written path: a gradient will be asked for of one of ``tensors`` (without one the
    reference loop records nothing and costs the same), no per-step states wanted, every activation's
    derivative known here, and nothing else differentiating the loop itself (torch.compile's tracing,
    torch.func's transforms, :func:`reference_loop`)."""
    return loop_is_ours(keep_steps) and _gradient_wanted(*tensors) and all(a in BACKWARDS for a in activations)


def loop_usable(tensors: Sequence[Tensor | None], keep_steps: bool, *activations: str) -> bool:
    """Take the Elman or Jordan loop here rather than the step-by-step one: a gradient is wanted (:func:`usable`),
    or none is and rnnkit.native runs the forward in one call (:func:`inference_usable`)."""
    return usable(tensors, keep_steps, *activations) or inference_usable(tensors, keep_steps, *activations)


def _gradient_wanted(*tensors: Tensor | None) -> bool:
    """Autograd records, and one of ``tensors`` takes part in the graph."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def loop_is_ours(keep_steps: bool) -> bool:
    """Nothing asks for the reference loop: no per-step states, no torch.compile or torch.export tracing, no
    TorchScript tracing (``rnnkit export``: a graph records torch's operators, not these loops' calls), no
    torch.func transform, no forward-mode differentiation (``torch.autograd.forward_ad``: these loops have no jvp),
    no :func:`reference_loop` block."""
    return (
        not torch.compiler.is_compiling()  # first: what follows is not for torch.compile to trace
        and not torch.jit.is_tracing()
        and not keep_steps
        and not _REFERENCE.get()
        and not torch._C._are_functorch_transforms_active()
        and forward_ad._current_level < 0  # (torch keeps the open dual level there; -1: none)
    )


def _mask_rows(mask: Tensor | None) -> Tensor | None:
    """The (T, B) mask as rnnkit.native's loops read it: contiguous bool."""
    return None if mask is None else mask.to(torch.bool).contiguous()


def _masks(mask: Tensor | None, T: int) -> list[Tensor | None]:
    """Per step: (B, 1) bool, true at real positions, or None without a mask."""
    return [None] * T if mask is None else list(mask.unsqueeze(-1).unbind(0))


def _backward(ctx: Any, grads: tuple[Tensor | None, ...], gradients: Callable[..., Any]) -> tuple[Tensor | None, ...]:
    """A loop's backward: its hand-written ``gradients``, or, for gradients of gradients (``create_graph=True``),
    :func:`_differentiable_backward`."""
    if torch.is_grad_enabled():
        return _differentiable_backward(ctx, grads)
    with torch.no_grad():
        return gradients(ctx, *grads)


def _differentiable_backward(ctx: Any, grads: tuple[Tensor | None, ...]) -> tuple[Tensor | None, ...]:
    """The gradients as a graph (``backward(create_graph=True)``, for gradients of gradients): the reference
    loop recomputed from the saved inputs and differentiated by autograd. Returns one entry per input of
    ``apply``: None for the cell, the ``ctx.n`` tensors', None for the rest (``ctx.extra`` of them)."""
    inputs = ctx.saved_tensors[-ctx.n :]
    with torch.enable_grad():
        outputs = ctx.reference(ctx.cell, *inputs, ctx.mask)
    wanted = [i for i, t in enumerate(inputs) if t is not None and t.requires_grad]
    pairs = [(o, g) for o, g in zip(outputs, grads, strict=True) if g is not None]
    got = torch.autograd.grad(
        [o for o, _ in pairs], [inputs[i] for i in wanted], [g for _, g in pairs], create_graph=True, allow_unused=True
    )
    result: list[Tensor | None] = [None] * ctx.n
    for i, g in zip(wanted, got, strict=True):
        result[i] = g
    return (None, *result) + (None,) * ctx.extra


# -- Elman: h_t = g(u_t + W h_{t-1}) ----------------------------------------------------------------------


def elman_sequence(us: Tensor, h0: Tensor, w_hh: Tensor, activation: str, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """The loop h_t = g(u_t + W_hh h_{t-1}) over ``us`` (T, B, H), the inputs' share with every bias already
    in it: each step's output (T, B, H; as the reference loop, a padding step computes one, and the state is
    held) and the final h. The Elman cell's loop, and the SCRN's once its context is taken out (its
    u_t = P s_t + A x_t + b)."""
    return _Elman.apply(activation, us, h0, getattr(w_hh, "original", w_hh), mask)


def _elman_reference(activation: str, us, h0, w_hh, mask) -> tuple[Tensor, Tensor]:
    """The same loop with autograd recording every step (for gradients of gradients, and the tests)."""
    g, h, hs = get_activation(activation), h0, []
    for t, u in enumerate(us.unbind(0)):
        hs.append(g(torch.addmm(u, h, w_hh.t())))
        h = hs[-1] if mask is None else torch.where(mask[t].unsqueeze(-1), hs[-1], h)
    return torch.stack(hs), h


class _Elman(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, activation, us, h0, w_hh, mask) -> tuple[Tensor, Tensor]:
        T = us.shape[0]
        g = _forward_fn(activation)
        news = torch.empty_like(us, memory_format=CONTIGUOUS)  # each step's g(...), the outputs
        states = news if mask is None else torch.empty_like(news)  # h after each step (padding holds it)
        kernels = _native(us, activation)
        if kernels is not None:  # the same loop in one call (rnnkit.native)
            pack = onednn.loop_pack(w_hh, us.shape[1])
            kernels.elman_forward(us.contiguous(), h0, w_hh, pack, _mask_rows(mask), news, states, ACT_IDS[activation])
            h = states[-1] if T else h0
        else:
            w_t, h = w_hh.t(), h0
            for t, (u, m) in enumerate(zip(us.unbind(0), _masks(mask, T), strict=True)):
                g(torch.addmm(u, h, w_t), out=news[t])
                if m is not None:
                    torch.where(m, news[t], h, out=states[t])
                h = states[t]
        ctx.save_for_backward(states, news, us, h0, w_hh)
        ctx.cell, ctx.mask, ctx.reference, ctx.extra, ctx.n = activation, mask, _elman_reference, 1, 3
        ctx.native = kernels is not None  # the backward takes the forward's path
        return news, h.clone()

    @staticmethod
    def backward(ctx: Any, d_news: Tensor | None, d_final: Tensor | None) -> tuple[Tensor | None, ...]:
        return _backward(ctx, (d_news, d_final), _Elman.gradients)

    @staticmethod
    def gradients(ctx: Any, d_news: Tensor | None, d_final: Tensor | None) -> tuple[Tensor | None, ...]:
        states, news, _, h0, w_hh = ctx.saved_tensors
        g_back, T = BACKWARDS[ctx.cell], news.shape[0]
        carry = torch.zeros_like(h0) if d_final is None else d_final  # dL/dh_t from the steps after t
        dz = torch.empty_like(news)
        kernels = _native(news, ctx.cell) if ctx.native else None
        if kernels is not None:
            carry = carry.clone(memory_format=CONTIGUOUS)  # becomes the share reaching h0
            kernels.elman_backward(d_news, carry, news, w_hh, _mask_rows(ctx.mask), dz, ACT_IDS[ctx.cell])
            return None, dz, carry, _recurrent_weight_grad(dz.reshape(-1, dz.shape[-1]), states, h0), None
        masks = _masks(ctx.mask, T)
        for t in range(T - 1, -1, -1):
            m = masks[t]
            share = carry if m is None else carry.masked_fill(~m, 0)  # padding: h_t is h_{t-1}
            g_back(news[t], share if d_news is None else d_news[t] + share, dz[t])
            back = dz[t].mm(w_hh)
            carry = back if m is None else back + carry.masked_fill(m, 0)
        d_w = _recurrent_weight_grad(dz.reshape(-1, dz.shape[-1]), states, h0)
        return None, dz, carry, d_w, None


# -- Jordan -----------------------------------------------------------------------------------------------


def jordan_sequence(cell: Any, xs_proj: Tensor, y0: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """:class:`rnnkit.JordanCell`'s loop: outputs (T, B, O) and the final y (B, O)."""
    return _Jordan.apply(cell, xs_proj, y0, cell.weight_yh, cell.weight_hy, cell.bias_hy, mask)


def _jordan_reference(cell: Any, xs, y0, w_yh, w_hy, b_hy, mask) -> tuple[Tensor, Tensor]:
    bound = cell.bound({"weight_yh": w_yh, "weight_hy": w_hy, "bias_hy": b_hy})
    ys, final, _ = Cell.sequence(bound, xs, type(cell.initial_state(1))(y0), mask)
    return ys, final.y


class _Jordan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, cell, xs, y0, w_yh, w_hy, b_hy, mask) -> tuple[Tensor, Tensor]:
        T, B, H = xs.shape
        g, act_y = cell.nonlinearity, cell.output_activation
        g_fn, act_fn = _forward_fn(g), _forward_fn(act_y)
        hs, ys = xs.new_empty(T, B, H), xs.new_empty(T, B, w_hy.shape[0])  # each step's h and new output
        states = ys if mask is None else torch.empty_like(ys)  # y after each step (padding holds it)
        kernels = _native(xs, g, act_y)
        if kernels is not None:  # the same loop in one call (rnnkit.native)
            ids = ACT_IDS[g], ACT_IDS[act_y]
            packs = onednn.loop_pack(w_yh, B), onednn.loop_pack(w_hy, B)
            xs_rows, mask_rows = xs.contiguous(), _mask_rows(mask)
            kernels.jordan_forward(xs_rows, y0, w_yh, w_hy, b_hy, *packs, mask_rows, hs, ys, states, *ids)
            y = states[-1] if T else y0
        else:
            w_yh_t, w_hy_t, y = w_yh.t(), w_hy.t(), y0
            for t, (x, m) in enumerate(zip(xs.unbind(0), _masks(mask, T), strict=True)):
                g_fn(torch.addmm(x, y, w_yh_t), out=hs[t])
                o = torch.addmm(b_hy, hs[t], w_hy_t) if b_hy is not None else hs[t].mm(w_hy_t)
                act_fn(o, out=ys[t])
                if m is not None:
                    torch.where(m, ys[t], y, out=states[t])
                y = states[t]
        ctx.save_for_backward(states, hs, ys, xs, y0, w_yh, w_hy, b_hy)
        ctx.names, ctx.cell, ctx.mask, ctx.reference = (g, act_y), cell, mask, _jordan_reference
        ctx.extra, ctx.n, ctx.native = 1, 5, kernels is not None
        return ys, y.clone()

    @staticmethod
    def backward(ctx: Any, d_ys: Tensor | None, d_final: Tensor | None) -> tuple[Tensor | None, ...]:
        return _backward(ctx, (d_ys, d_final), _Jordan.gradients)

    @staticmethod
    def gradients(ctx: Any, d_ys: Tensor | None, d_final: Tensor | None) -> tuple[Tensor | None, ...]:
        states, hs, ys, _, y0, w_yh, w_hy, b_hy = ctx.saved_tensors
        mask = ctx.mask
        g_back, act_back = BACKWARDS[ctx.names[0]], BACKWARDS[ctx.names[1]]
        T = hs.shape[0]
        carry = torch.zeros_like(ys[0]) if d_final is None else d_final  # dL/dy_t from the steps after t
        dz, do = torch.empty_like(hs), torch.empty_like(ys)
        kernels = _native(hs, *ctx.names) if ctx.native else None
        if kernels is not None:
            carry = carry.clone(memory_format=CONTIGUOUS)  # becomes the share reaching y0
            ids = ACT_IDS[ctx.names[0]], ACT_IDS[ctx.names[1]]
            kernels.jordan_backward(d_ys, carry, hs, ys, w_yh, w_hy, _mask_rows(mask), dz, do, *ids)
        else:
            d_ys = torch.zeros_like(ys) if d_ys is None else d_ys
            masks = _masks(mask, T)
            for t in range(T - 1, -1, -1):
                m = masks[t]
                dy = d_ys[t] + (carry if m is None else carry.masked_fill(~m, 0))  # padding: y_t is y_{t-1}
                act_back(ys[t], dy, do[t])
                g_back(hs[t], do[t].mm(w_hy), dz[t])
                back = dz[t].mm(w_yh)
                carry = back if m is None else back + carry.masked_fill(m, 0)
        rows_z, rows_o = dz.reshape(-1, dz.shape[-1]), do.reshape(-1, do.shape[-1])
        d_w_yh = _recurrent_weight_grad(rows_z, states, y0)
        d_w_hy = weight_grad(rows_o, hs.reshape(-1, hs.shape[-1]))
        d_b_hy = rows_o.sum(0) if b_hy is not None else None
        return None, dz, carry, d_w_yh, d_w_hy, d_b_hy, None


def _recurrent_weight_grad(rows: Tensor, states: Tensor, s0: Tensor) -> Tensor:
    """sum_t rows_t^T s_{t-1} for (T*B, N) ``rows`` and (T, B, S) ``states`` (the state after each step):
    s_{-1} is ``s0``, then the states of steps 0 to T-2, without copying them into one tensor."""
    B = s0.shape[0]
    return weight_grad(rows[B:], states[:-1].reshape(-1, s0.shape[-1])) + weight_grad(rows[:B], s0)


def _forward_fn(name: str) -> Callable[..., Tensor]:
    """The activation as a function taking ``out=``."""
    if name == "softmax":
        return lambda x, out: torch.softmax(x, -1, out=out)
    if name == "hard_sigmoid":
        return lambda x, out: out.copy_(torch.nn.functional.hardsigmoid(x))
    if name in ("identity", "linear"):
        return lambda x, out: out.copy_(x)
    if name == "relu":
        return lambda x, out: torch.clamp(x, min=0, out=out)
    if name == "tanh":
        return _tanh
    return torch.sigmoid


def _tanh(x: Tensor, out: Tensor) -> Tensor:
    """tanh x, as 2 sigmoid(2x) - 1 in float32 on the CPU: torch's float tanh took 22 us for a (32, 256) block
    here and its sigmoid 3 (these four operations together: about 10). The two agree to about 1e-7."""
    if x.dtype != torch.float32 or x.device.type != "cpu":
        return torch.tanh(x, out=out)
    return torch.sigmoid(torch.mul(x, 2, out=out), out=out).mul_(2).sub_(1)


# -- LSTM with any activations -----------------------------------------------------------------------------


def lstm_sequence(
    cell: Any, xs_proj: Tensor, h0: Tensor, c0: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor, Tensor]:
    """:class:`rnnkit.LSTMCell`'s loop (no projection): outputs (T, B, H), the final h and c. A weight bound as
    a :class:`rnnkit.onednn.OneDNNMatrix` has its products taken through oneDNN, as the reference loop does."""
    w = cell.weight_hh
    original, packed, packed_t = getattr(w, "original", w), getattr(w, "packed", None), getattr(w, "packed_t", None)
    return _LSTM.apply(cell, xs_proj, h0, c0, original, cell.bias_hh, mask, packed, packed_t)


def _lstm_reference(cell: Any, xs, h0, c0, w_hh, b_hh, mask) -> tuple[Tensor, Tensor, Tensor]:
    bound = cell.bound({"weight_hh": w_hh, "bias_hh": b_hh})
    hs, final, _ = Cell.sequence(bound, xs, type(cell.initial_state(1))(h0, c0), mask)
    return hs, final.h, final.c


def lstm_inference(cell: Any, xs_proj: Tensor, h0: Tensor, c0: Tensor, mask: Tensor | None):
    """The forward loop alone, where no gradient is wanted: the same as the reference loop's outputs (within
    float rounding), the whole loop one call of rnnkit.native (its products through oneDNN where the layer
    packed the weight for them, as the training loop's), keeping nothing for a backward."""
    w = cell.weight_hh
    original, packed = getattr(w, "original", w), getattr(w, "packed", None)
    names = cell.activation, cell.recurrent_activation
    T, B, G = xs_proj.shape
    hs = xs_proj.new_empty(T, B, G // 4)
    h, c = torch.empty_like(h0, memory_format=CONTIGUOUS), torch.empty_like(c0, memory_format=CONTIGUOUS)
    kernels = _native(xs_proj, *names)
    pack = packed if B >= onednn.MIN_ROWS else None
    ids = ACT_IDS[names[0]], ACT_IDS[names[1]]
    kernels.lstm_inference(xs_proj.contiguous(), cell.bias_hh, h0, c0, original, pack, _mask_rows(mask), hs, h, c, *ids)
    return hs, h, c


def lstm_step(kernels: Any, z: Tensor, c_prev: Tensor, *activations: str) -> tuple[Tensor, Tensor] | None:
    """One LSTM step's equations after the product (``z`` (B, 4H), the gates before activation, replaced by
    their activations) in one call of ``kernels`` (:func:`step_kernels`, looked up once per set of weights:
    every Python line here runs after a product has streamed megabytes through the caches, and costs more
    there than it seems): (h, c), or None where they do not apply (no kernels, a gradient wanted,
    torch.compile tracing), and the caller runs the equations itself."""
    if kernels is None or _gradient_wanted(z, c_prev) or torch.compiler.is_compiling() or not z.numel():
        return None
    c_prev = c_prev.contiguous()
    c, phi, h = torch.empty_like(c_prev), torch.empty_like(c_prev), torch.empty_like(c_prev)
    kernels.lstm_forward_step(z, None, c_prev, c, phi, h, ACT_IDS[activations[0]], ACT_IDS[activations[1]])
    return h, c


def gru_step(kernels: Any, x: Tensor, hh: Tensor, h_prev: Tensor, *activations: str) -> Tensor | None:
    """One GRU step's equations after its two products (``x`` and ``hh`` (B, 3H), the input's and the state's
    shares, reset after the product) in one call of ``kernels``: the new h, or None where they do not apply, as
    :func:`lstm_step`."""
    if kernels is None or _gradient_wanted(x, hh, h_prev) or torch.compiler.is_compiling() or not x.numel():
        return None
    h_prev = h_prev.contiguous()
    h = torch.empty_like(h_prev)
    kernels.gru_forward_step(x.contiguous(), hh, h_prev, h, ACT_IDS[activations[0]], ACT_IDS[activations[1]])
    return h


def step_kernels(like: Tensor, *activations: str) -> Any:
    """rnnkit.native's kernels for steps on tensors like ``like`` with these activations, or None."""
    return _native(like, *activations)


def inference_usable(tensors: Sequence[Tensor | None], keep_steps: bool, *activations: str) -> bool:
    """Take :func:`lstm_inference`: no gradient wanted, no per-step states, rnnkit.native built for these
    activations, and nothing tracing or transforming the loop."""
    return (
        loop_is_ours(keep_steps)
        and not _gradient_wanted(*tensors)
        and tensors[0] is not None
        and _native(tensors[0], *activations) is not None
    )


def _lstm_forward(names, xs, h0, c0, w_hh, b_hh, mask, packed) -> tuple[Tensor, ...]:
    """The forward loop: returns the activated gates, outputs, states after each step, phi(c), the final h and c,
    and whether rnnkit.native's kernels ran it."""
    T, B, G = xs.shape
    act, gate = names
    H = G // 4
    act_fn, gate_fn = _forward_fn(act), _forward_fn(gate)
    gates = xs + b_hh if b_hh is not None else xs.clone()  # becomes the activated gates, step by step
    gates = gates.contiguous()  # a permuted xs gives permuted gates; every step's block must be rows
    hs, cs, phi_c = (xs.new_empty(T, B, H) for _ in range(3))  # each step's h (the output), c, and phi(c)
    # the states after each step: the outputs themselves, unless padding holds a state
    h_states, c_states = (hs, cs) if mask is None else (xs.new_empty(T, B, H), xs.new_empty(T, B, H))
    w_t, h, c, packed_rows = w_hh.t(), h0, c0.contiguous(), packed is not None and B >= onednn.MIN_ROWS
    kernels = _native(xs, act, gate)
    for t, m in enumerate(_masks(mask, T)):
        z = gates[t]
        product = onednn.linear(h.contiguous(), packed) if packed_rows else None
        if product is None:
            z.addmm_(h, w_t)
        if kernels is not None:  # the same equations, in one call (rnnkit.native), the product added there
            kernels.lstm_forward_step(z, product, c, cs[t], phi_c[t], hs[t], ACT_IDS[act], ACT_IDS[gate])
        else:
            if product is not None:
                z.add_(product)
            i_f, g, o = z[:, : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
            gate_fn(i_f, out=i_f), act_fn(g, out=g), gate_fn(o, out=o)
            torch.addcmul(torch.mul(z[:, H : 2 * H], c, out=cs[t]), z[:, :H], g, out=cs[t])
            act_fn(cs[t], out=phi_c[t])
            torch.mul(o, phi_c[t], out=hs[t])
        if m is not None:
            torch.where(m, hs[t], h, out=h_states[t]), torch.where(m, cs[t], c, out=c_states[t])
        h, c = h_states[t], c_states[t]
    return gates, hs, h_states, c_states, phi_c, h, c, kernels is not None


class _LSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, cell, xs, h0, c0, w_hh, b_hh, mask, packed, packed_t):
        names = cell.activation, cell.recurrent_activation
        out = _lstm_forward(names, xs, h0, c0, w_hh, b_hh, mask, packed)
        gates, hs, h_states, c_states, phi_c, h, c, ctx.native = out  # the backward takes the forward's path
        ctx.save_for_backward(gates, h_states, c_states, phi_c, xs, h0, c0, w_hh, b_hh)
        ctx.packed_t, ctx.names, ctx.cell, ctx.mask = packed_t, names, cell, mask
        ctx.reference, ctx.extra, ctx.n = _lstm_reference, 3, 5
        return hs, h.clone(), c.clone()

    @staticmethod
    def backward(ctx: Any, d_hs, d_h, d_c):
        return _backward(ctx, (d_hs, d_h, d_c), _LSTM.gradients)

    @staticmethod
    def gradients(ctx: Any, d_hs, d_h, d_c):
        gates, h_states, c_states, phi_c, _, h0, c0, w_hh, b_hh = ctx.saved_tensors
        mask = ctx.mask
        act_back, gate_back = BACKWARDS[ctx.names[0]], BACKWARDS[ctx.names[1]]
        T, B, G = gates.shape
        H = G // 4
        d_hs = torch.zeros_like(phi_c) if d_hs is None else d_hs
        dh_next = torch.zeros_like(h0) if d_h is None else d_h
        dc_next = torch.zeros_like(c0) if d_c is None else d_c
        d_gates = torch.empty_like(gates)
        packed_t = ctx.packed_t if B >= onednn.MIN_ROWS else None
        kernels = _native(gates, *ctx.names) if ctx.native else None
        if kernels is not None:
            d_hs, dh_next, dc_next = d_hs.contiguous(), dh_next.contiguous(), dc_next.clone(memory_format=CONTIGUOUS)
            dh_next, dc_next = _native_backward(kernels, ctx, d_gates, d_hs, dh_next, dc_next, packed_t)
            return _lstm_weight_grads(d_gates, h_states, h0, b_hh, dh_next, dc_next)
        dc, tmp = torch.empty_like(c0), torch.empty_like(c0)  # the Python loop's scratch
        for t, m in reversed(list(enumerate(_masks(mask, T)))):
            z, dz, c_prev = gates[t], d_gates[t], c_states[t - 1] if t else c0
            i, f, g, o = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
            dh = d_hs[t] + (dh_next if m is None else dh_next.masked_fill(~m, 0))
            act_back(phi_c[t], torch.mul(dh, o, out=tmp), dc)
            dc.add_(dc_next if m is None else dc_next.masked_fill(~m, 0))
            gate_back(i, torch.mul(dc, g, out=tmp), dz[:, :H])
            gate_back(f, torch.mul(dc, c_prev, out=tmp), dz[:, H : 2 * H])
            act_back(g, torch.mul(dc, i, out=tmp), dz[:, 2 * H : 3 * H])
            gate_back(o, torch.mul(dh, phi_c[t], out=tmp), dz[:, 3 * H :])
            back = onednn.linear(dz, packed_t) if packed_t is not None else dz.mm(w_hh)
            dh_next = back if m is None else back + dh_next.masked_fill(m, 0)
            dc_next = dc * f if m is None else torch.addcmul(dc_next.masked_fill(m, 0), dc, f)
        return _lstm_weight_grads(d_gates, h_states, h0, b_hh, dh_next, dc_next)


def _lstm_weight_grads(d_gates, h_states, h0, b_hh, dh_next, dc_next) -> tuple[Tensor | None, ...]:
    """What ``_LSTM.backward`` returns, given every step's gate gradients and the shares reaching the start."""
    rows = d_gates.reshape(-1, d_gates.shape[-1])
    d_w = _recurrent_weight_grad(rows, h_states, h0)
    d_b = rows.sum(0) if b_hh is not None else None
    return None, d_gates, dh_next, dc_next, d_w, d_b, None, None, None


def _native_backward(kernels, ctx, d_gates, d_hs, dh_next, dc_next, packed_t) -> tuple[Tensor, Tensor]:
    """The backward loop with each step's elementwise work in one call (rnnkit.native); ``dc_next`` is
    overwritten. Returns the shares reaching h0 and c0."""
    gates, _, c_states, phi_c, _, _, c0, w_hh, _ = ctx.saved_tensors
    act, gate = ACT_IDS[ctx.names[0]], ACT_IDS[ctx.names[1]]
    mask = None if ctx.mask is None else ctx.mask.contiguous()
    carry = None if mask is None else torch.empty_like(dh_next)
    for t in reversed(range(gates.shape[0])):
        m = None if mask is None else mask[t]
        c_prev = c_states[t - 1] if t else c0.contiguous()
        kernels.lstm_backward_step(gates[t], c_prev, phi_c[t], d_hs[t], dh_next, dc_next, d_gates[t], m, carry,
                                   act, gate)  # fmt: skip
        dz = d_gates[t]
        back = onednn.linear(dz, packed_t) if packed_t is not None else dz.mm(w_hh)
        dh_next = back if m is None else back.add_(carry)
    return dh_next, dc_next


CONTIGUOUS = torch.contiguous_format

#: the activations rnnkit.native's kernels compute (its numbering); softmax gates stay in Python
ACT_IDS = native.ACTIVATIONS


def _native(like: Tensor, *activations: str) -> Any:
    """rnnkit.native's kernels where they apply (built, CPU, float32/64, activations they know), else None."""
    if like.device.type != "cpu" or like.dtype not in (torch.float32, torch.float64) or like.numel() == 0:
        return None  # (an empty batch: its blocks' strides are arbitrary, and there is nothing to compute)
    if not all(a in ACT_IDS for a in activations):
        return None
    return native.load()
