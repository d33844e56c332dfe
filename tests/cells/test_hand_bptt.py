"""rnnkit.bptt: backpropagation through time written by hand for Elman, SCRN, Jordan and LSTM cells, against the
loop autograd differentiates (float64), and the dispatch that chooses between them."""

from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit import bptt, native, onednn

JORDAN = [("tanh", "tanh"), ("relu", "softmax"), ("sigmoid", "identity"), ("tanh", "hard_sigmoid")]
LSTM = [("tanh", "sigmoid"), ("relu", "hard_sigmoid"), ("tanh", "tanh"), ("identity", "sigmoid")]
ELMAN = ["tanh", "relu", "identity", "sigmoid", "hard_sigmoid"]
MASK = torch.arange(7).unsqueeze(1) < torch.tensor([7, 4, 1])  # (T, B): three lengths, one of a single step


@pytest.fixture(params=["native", "python"])
def elementwise(request, monkeypatch):
    """The loops through rnnkit.native (the LSTM's elementwise work, the Elman and Jordan loops whole), and through
    torch's operations from Python."""
    if request.param == "native" and native.load() is None:
        pytest.skip("rnnkit.native is not built (python -m rnnkit.native)")
    monkeypatch.setenv("RNNKIT_NATIVE", "1" if request.param == "native" else "0")
    return request.param


def jordan(g, act_y, dtype=torch.float64):
    return rnnkit.JordanCell(3, 5, output_size=4, nonlinearity=g, output_activation=act_y, dtype=dtype)


def lstm(act, gate, dtype=torch.float64):
    return rnnkit.LSTMCell(3, 5, activation=act, recurrent_activation=gate, dtype=dtype)


def run(cell, xs, state, mask, grad_of):
    """Outputs, final state and the gradients of a loss that reads both, of ``grad_of``."""
    out, final = cell.sequence(cell.project_inputs(xs), state, mask)[:2]
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum()
    loss = loss + sum((s * s).sum() for s in final)
    return out, final, torch.autograd.grad(loss, grad_of)


def compare(cell, state, masked, tol):
    torch.manual_seed(1)
    xs = torch.randn(7, 3, 3, dtype=torch.float64, requires_grad=True)
    mask = MASK if masked else None
    grad_of = [xs, *state, *cell.parameters()]
    fast = run(cell, xs, state, mask, grad_of)
    with bptt.reference_loop():
        ref = run(cell, xs, state, mask, grad_of)
    torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=1e-12)
    for a, b in zip(fast[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for a, b in zip(fast[2], ref[2], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=tol)


def tolerance(*names):
    # torch's hardsigmoid_backward multiplies by 1/6 as a float even in float64; ours divides exactly
    return 1e-7 if "hard_sigmoid" in names else 1e-12


@pytest.mark.parametrize("names", JORDAN)
@pytest.mark.parametrize("masked", [False, True])
def test_jordan_equals_the_reference_loop(names, masked, elementwise):
    torch.manual_seed(0)
    cell = jordan(*names)
    state = rnnkit.JordanState(torch.rand(3, 4, dtype=torch.float64, requires_grad=True))
    compare(cell, state, masked, tolerance(*names))


@pytest.mark.parametrize("g", ELMAN)
@pytest.mark.parametrize("masked", [False, True])
def test_elman_equals_the_reference_loop(g, masked, elementwise):
    torch.manual_seed(0)
    cell = rnnkit.ElmanCell(3, 5, nonlinearity=g, dtype=torch.float64)
    state = rnnkit.ElmanState(torch.rand(3, 5, dtype=torch.float64, requires_grad=True))
    compare(cell, state, masked, tolerance(g))


@pytest.mark.parametrize("masked", [False, True])
def test_scrn_equals_the_reference_loop(masked, elementwise):
    """The SCRN's loop once its context is scanned is an Elman loop with sigmoid (bptt.elman_sequence)."""
    torch.manual_seed(0)
    cell = rnnkit.SCRNCell(3, 5, context_size=2, dtype=torch.float64)
    h0, s0 = torch.rand(3, 5, dtype=torch.float64), torch.rand(3, 2, dtype=torch.float64)
    compare(cell, rnnkit.SCRNState(h0.requires_grad_(), s0.requires_grad_()), masked, 1e-12)


@pytest.mark.parametrize("names", LSTM)
@pytest.mark.parametrize("masked", [False, True])
def test_lstm_equals_the_reference_loop(names, masked, elementwise):
    torch.manual_seed(0)
    cell = lstm(*names)
    h0, c0 = (torch.randn(3, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    compare(cell, rnnkit.LSTMState(h0, c0), masked, tolerance(*names))


def test_gradcheck_of_the_hand_written_backward(elementwise):
    torch.manual_seed(0)
    cell = jordan("tanh", "softmax")
    xs = torch.randn(4, 2, 5, dtype=torch.float64, requires_grad=True)
    y0 = torch.rand(2, 4, dtype=torch.float64, requires_grad=True)
    params = (cell.weight_yh, cell.weight_hy, cell.bias_hy)
    assert torch.autograd.gradcheck(
        lambda xs, y0, *w: bptt._Jordan.apply(cell, xs, y0, *w, MASK[:4, :2]), (xs, y0, *params)
    )
    w = torch.randn(5, 5, dtype=torch.float64, requires_grad=True)
    for g in ("tanh", "relu"):
        assert torch.autograd.gradcheck(
            lambda xs, h0, w, g=g: bptt._Elman.apply(g, xs, h0, w, MASK[:4, :2]), (xs, y0[:, :1].repeat(1, 5), w)
        )
    cell = lstm("relu", "sigmoid")
    xs = torch.randn(4, 2, 20, dtype=torch.float64, requires_grad=True)
    h0, c0 = (torch.randn(2, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(
        lambda xs, h0, c0, w, b: bptt._LSTM.apply(cell, xs, h0, c0, w, b, MASK[:4, :2], None, None),
        (xs, h0, c0, cell.weight_hh, cell.bias_hh),
    )


def nodes(t):
    """The names of every node in ``t``'s backward graph."""
    seen, todo, names = set(), [t.grad_fn], set()
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        todo.extend(n for n, _ in node.next_functions)
    return names


def test_the_layers_take_the_hand_written_path_only_where_it_applies():
    x = torch.randn(6, 2, 3)
    layer = rnnkit.Jordan(3, 5, 4)
    assert "_JordanBackward" in nodes(layer(x)[0])
    with torch.no_grad():
        assert layer(x)[0].grad_fn is None  # nothing to differentiate
    with bptt.reference_loop():
        assert "_JordanBackward" not in nodes(layer(x)[0])
    assert "_JordanBackward" not in nodes(layer(x, return_steps=True)[0])  # per-step states asked for
    assert "_LSTMBackward" in nodes(rnnkit.LSTM(3, 5, fused=False)(x)[0])
    assert "_LSTMBackward" in nodes(rnnkit.LSTM(3, 5, activation="relu")(x)[0])
    assert "_LSTMBackward" not in nodes(rnnkit.LSTM(3, 5, activation="relu", proj_size=2)(x)[0])  # projection
    assert "_LSTMBackward" not in nodes(rnnkit.LSTM(3, 5)(x)[0])  # torch's fused kernel, as before
    assert "_ElmanBackward" in nodes(rnnkit.SCRN(3, 5)(x)[0])
    assert "_ElmanBackward" in nodes(rnnkit.RNN(3, 5, nonlinearity="identity")(x)[0])
    assert "_ElmanBackward" in nodes(rnnkit.RNN(3, 5, fused=False)(x)[0])
    assert "_ElmanBackward" not in nodes(rnnkit.RNN(3, 5)(x)[0])  # torch's fused kernel
    with bptt.reference_loop():
        assert "_ElmanBackward" not in nodes(rnnkit.SCRN(3, 5)(x)[0])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_stacked_layer_with_lengths_equals_the_reference_loop(bidirectional, elementwise):
    """Two layers, both directions, three lengths, through the layer's own plumbing; float32 with oneDNN's
    products (batch >= onednn.MIN_ROWS), so the tolerance is float32's."""
    torch.manual_seed(0)
    layer = rnnkit.LSTM(4, 8, num_layers=2, bidirectional=bidirectional, activation="relu", fused=False)
    x = torch.randn(9, onednn.MIN_ROWS, 4, requires_grad=True)
    lengths = torch.tensor([9, 5, 1, 9, 2, 7, 3, 8][: onednn.MIN_ROWS])

    def grads():
        out, (h, c) = layer(x, lengths=lengths)
        loss = out.square().sum() + h.sum() + c.sum()
        return [out, h, c, *torch.autograd.grad(loss, [x, *layer.parameters()])]

    fast = grads()
    with bptt.reference_loop():
        ref = grads()
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: jordan("tanh", "softmax"),
        lambda: lstm("relu", "sigmoid"),
        lambda: rnnkit.ElmanCell(3, 4, nonlinearity="sigmoid", dtype=torch.float64),
        lambda: rnnkit.SCRNCell(3, 4, context_size=2, dtype=torch.float64),  # its context's scan too (rnnkit.scan)
    ],
    ids=["jordan", "lstm", "elman", "scrn"],
)
def test_gradients_of_gradients_differentiate_the_recomputed_reference_loop(make):
    torch.manual_seed(0)
    cell = make()
    xs = torch.randn(5, 3, 3, dtype=torch.float64, requires_grad=True)
    state = type(cell.initial_state(3))(*(torch.rand_like(s, requires_grad=True) for s in cell.initial_state(3)))

    def twice():
        out, final = cell.sequence(cell.project_inputs(xs), state, MASK[:5])[:2]
        loss = out.square().sum() + sum(s.sum() for s in final)
        grads = torch.autograd.grad(loss, [xs, *state], create_graph=True)
        return torch.autograd.grad(sum(g.square().sum() for g in grads), [xs, *state, *cell.parameters()])

    fast = twice()
    with bptt.reference_loop():
        ref = twice()
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert torch.autograd.gradgradcheck(
        lambda xs: cell.sequence(cell.project_inputs(xs), cell.initial_state(3), MASK[:5])[0], (xs,)
    )


def test_torch_func_transforms_differentiate_the_reference_loop():
    layer = rnnkit.Jordan(3, 5, 4, dtype=torch.float64)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    grad = torch.func.grad(lambda x: layer(x)[0].square().sum())(x)
    x.requires_grad_(True)
    with bptt.reference_loop():
        (ref,) = torch.autograd.grad(layer(x)[0].square().sum(), x)
    torch.testing.assert_close(grad, ref)


def test_float32_tanh_through_sigmoid_is_within_float_rounding_of_torch_tanh():
    x = torch.linspace(-12, 12, 100_001)
    out = torch.empty_like(x)
    bptt._tanh(x, out)
    torch.testing.assert_close(out, torch.tanh(x), rtol=0, atol=3e-7)
    assert bptt._tanh(x.double(), torch.empty_like(x, dtype=torch.float64)).equal(torch.tanh(x.double()))


@pytest.mark.parametrize("mkl", [True, False], ids=["mkl", "onednn"])
@pytest.mark.parametrize("rows", [onednn.MIN_ROWS - 1, 300])
def test_weight_grad_is_grad_transposed_times_x(rows, mkl, monkeypatch):
    monkeypatch.setattr(onednn, "mkl_is_fast", lambda: mkl)
    torch.manual_seed(0)
    grad, x = torch.randn(rows, 12), torch.randn(rows, 7)
    torch.testing.assert_close(onednn.weight_grad(grad, x), grad.t().mm(x), rtol=1e-5, atol=1e-5)
    assert onednn.weight_grad(grad, x).shape == (12, 7)


def test_the_weight_gradients_library_follows_the_cpu_or_the_override(monkeypatch):
    """MKL on Intel CPUs, oneDNN elsewhere (measured: onednn.weight_grad's docstring), fixed per machine;
    RNNKIT_PRODUCTS names one."""
    for forced, want in [("mkl", True), ("onednn", False), ("MKL", True)]:
        monkeypatch.setenv("RNNKIT_PRODUCTS", forced)
        onednn.mkl_is_fast.cache_clear()
        assert onednn.mkl_is_fast() is want
    monkeypatch.setenv("RNNKIT_PRODUCTS", "mlk")
    onednn.mkl_is_fast.cache_clear()
    with pytest.warns(UserWarning, match="RNNKIT_PRODUCTS='mlk' is neither 'mkl' nor 'onednn': ignored"):
        typo = onednn.mkl_is_fast()
    monkeypatch.delenv("RNNKIT_PRODUCTS")
    onednn.mkl_is_fast.cache_clear()
    try:
        intel = "GenuineIntel" in Path("/proc/cpuinfo").read_text()
    except OSError:
        intel = False
    assert onednn.mkl_is_fast() is intel and typo is intel


def test_scrn_without_a_gradient_runs_the_hand_loops_forward_with_the_same_numbers(elementwise):
    torch.manual_seed(0)
    cell = rnnkit.SCRNCell(3, 5, context_size=2, dtype=torch.float64)
    xs = torch.randn(7, 3, 3, dtype=torch.float64)
    state = rnnkit.SCRNState(torch.rand(3, 5, dtype=torch.float64), torch.rand(3, 2, dtype=torch.float64))
    with torch.no_grad():
        fast = cell.sequence(cell.project_inputs(xs), state, MASK)
        with bptt.reference_loop():
            ref = cell.sequence(cell.project_inputs(xs), state, MASK)
    torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=1e-12)
    for a, b in zip(fast[1], ref[1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "make, loop",
    [
        (lambda: jordan("relu", "sigmoid"), "jordan_sequence"),
        (lambda: rnnkit.ElmanCell(3, 5, nonlinearity="tanh", dtype=torch.float64), "elman_sequence"),
    ],
    ids=["jordan", "elman"],
)
@pytest.mark.parametrize("masked", [False, True])
def test_without_a_gradient_the_native_loop_runs_where_built_with_the_reference_loops_numbers(
    make, loop, masked, elementwise, monkeypatch
):
    """No gradient: rnnkit.native's forward where it is built (one call a sequence), else the step-by-step loop."""
    torch.manual_seed(0)
    cell = make()
    xs = torch.randn(7, 3, 3, dtype=torch.float64)
    state = type(cell.initial_state(3))(torch.rand_like(cell.initial_state(3)[0]))
    calls, original = [], getattr(bptt, loop)
    monkeypatch.setattr(bptt, loop, lambda *a: calls.append(1) or original(*a))
    mask = MASK if masked else None
    with torch.no_grad():
        fast = cell.sequence(cell.project_inputs(xs), state, mask)
        with bptt.reference_loop():
            ref = cell.sequence(cell.project_inputs(xs), state, mask)
    assert calls == ([1] if elementwise == "native" else [])
    torch.testing.assert_close(fast[0], ref[0], rtol=0, atol=1e-13)
    torch.testing.assert_close(fast[1][0], ref[1][0], rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.Jordan(6, 32, 16, num_layers=2, bidirectional=True),
        lambda: rnnkit.RNN(6, 32, num_layers=2, bidirectional=True, nonlinearity="relu", fused=False),
        lambda: rnnkit.SCRN(6, 32, num_layers=2),
        lambda: rnnkit.Jordan(6, onednn.LOOP_MIN_INPUTS, onednn.LOOP_MIN_INPUTS),  # oneDNN's forward products
        lambda: rnnkit.RNN(6, onednn.LOOP_MIN_INPUTS, nonlinearity="relu", fused=False),
    ],
    ids=["jordan", "elman", "scrn", "jordan-onednn", "elman-onednn"],
)
def test_float32_layers_with_lengths_take_the_same_numbers_native_or_not(make, monkeypatch):
    """The whole float32 path, stacked and with lengths: rnnkit.native's loops (their float32 tanh and sigmoid,
    and from onednn.LOOP_MIN_INPUTS inputs oneDNN's products) against the Python loops, outputs and every
    gradient."""
    if native.load() is None:
        pytest.skip("rnnkit.native is not built (python -m rnnkit.native)")
    torch.manual_seed(0)
    layer = make()
    x = torch.randn(11, 9, 6, requires_grad=True)
    lengths = torch.tensor([11, 4, 1, 11, 7, 2, 9, 3, 5])

    def run():
        out, h = layer(x, lengths=lengths)
        h = h[0] if isinstance(h, tuple) else h
        loss = (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum() + h.square().sum()
        return [out, h, *torch.autograd.grad(loss, [x, *layer.parameters()])]

    fast = run()
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    slow = run()
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_loops_take_onednns_products_from_the_measured_size():
    w = torch.randn(onednn.LOOP_MIN_INPUTS, onednn.LOOP_MIN_INPUTS)
    if not onednn.usable():
        pytest.skip("torch is built without oneDNN")
    assert onednn.loop_pack(w, onednn.MIN_ROWS) is not None
    assert onednn.loop_pack(w[:, :-1], onednn.MIN_ROWS) is None  # fewer inputs: MKL's
    assert onednn.loop_pack(w, onednn.MIN_ROWS - 1) is None  # fewer rows
    assert onednn.loop_pack(w.double(), onednn.MIN_ROWS) is None


@pytest.mark.parametrize("make", [lambda: jordan("tanh", "sigmoid"), lambda: rnnkit.ElmanCell(3, 5).double()])
def test_a_broadcast_output_gradient_is_read_in_place(make, elementwise):
    """The gradient of ``out.sum()`` reaches the loop as one value broadcast (stride 0), which rnnkit.native's
    backward reads through its strides rather than a copy."""
    torch.manual_seed(0)
    cell = make()
    xs = torch.randn(7, 3, 3, dtype=torch.float64, requires_grad=True)
    state = type(cell.initial_state(3))(torch.rand_like(cell.initial_state(3)[0]))

    def grads():
        out = cell.sequence(cell.project_inputs(xs), state, MASK)[0]
        return torch.autograd.grad(out.sum(), [xs, *cell.parameters()])

    fast = grads()
    with bptt.reference_loop():
        ref = grads()
    for a, b in zip(fast, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("grad", [False, True])
def test_forward_mode_differentiation_takes_the_reference_loop(grad):
    """The hand-written loops have no jvp: inside torch.autograd.forward_ad's dual level the layers run the
    reference loop, with or without a gradient, and the tangent is the reference loop's."""
    import torch.autograd.forward_ad as fwAD

    torch.manual_seed(0)
    layer = rnnkit.Jordan(3, 5, 4, dtype=torch.float64)
    x, t = torch.randn(6, 2, 3, dtype=torch.float64), torch.randn(6, 2, 3, dtype=torch.float64)

    def tangent():
        with torch.set_grad_enabled(grad), fwAD.dual_level():
            return fwAD.unpack_dual(layer(fwAD.make_dual(x, t))[0]).tangent

    got = tangent()
    with bptt.reference_loop():
        want = tangent()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
