"""rnnkit.native: the LSTM step's elementwise kernels against torch's operations, and how the extension is found."""

import shutil
import sys
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit import bptt, native, onednn

ACTS = ["tanh", "sigmoid", "relu", "identity", "hard_sigmoid"]
TORCH = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "identity": lambda x: x,
    "hard_sigmoid": torch.nn.functional.hardsigmoid,
}


@pytest.fixture
def kernels(monkeypatch):
    monkeypatch.setenv("RNNKIT_NATIVE", "1")
    module = native.load()
    if module is None:
        pytest.skip("rnnkit.native is not built (python -m rnnkit.native)")
    return module


def test_the_extension_is_built_where_a_compiler_is():
    """make's set-up builds it; where c++ and ninja exist, a missing build is a set-up defect, not a skip."""
    here = str(Path(sys.executable).parent)  # where pip's ninja lies, as native.build looks
    if not (shutil.which("c++") and (shutil.which("ninja") or shutil.which("ninja", path=here))):
        pytest.skip("no C++ compiler or ninja here: rnnkit runs the Python loop")
    assert native.load() is not None, "run: python -m rnnkit.native"


def test_off_switch_and_a_changed_source_are_never_loaded(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    assert native.load() is None
    monkeypatch.setenv("RNNKIT_NATIVE", "1")
    changed = tmp_path / "loops.cpp"
    changed.write_text(native.SOURCES[1].read_text() + "\n// changed\n")
    monkeypatch.setattr(native, "SOURCES", (native.SOURCES[0], changed))
    native._load.cache_clear()
    try:
        assert native.load() is None  # its hash names no built library
    finally:
        native._load.cache_clear()


def equations(z, c_prev, act, gate):
    """The forward step in torch's operations (rnnkit/cells/lstm.py)."""
    H = z.shape[1] // 4
    i, f, o = (TORCH[gate](z[:, k * H : (k + 1) * H]) for k in (0, 1, 3))
    g = TORCH[act](z[:, 2 * H : 3 * H])
    c = f * c_prev + i * g
    return torch.cat([i, f, g, o], 1), c, TORCH[act](c), o * TORCH[act](c)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-6), (torch.float64, 1e-14)])
@pytest.mark.parametrize("act, gate", [(a, g) for a in ACTS for g in ("sigmoid", "hard_sigmoid", "tanh")])
def test_forward_step_equals_the_equations(kernels, act, gate, dtype, tol):
    torch.manual_seed(0)
    B, H = 5, 37  # odd sizes: the vector loops' remainders
    z = torch.randn(B, 4 * H, dtype=dtype) * 4
    z[0, :8] = torch.tensor([-200.0, -90, -88, -30, 30, 88, 90, 200])  # past exp's range both ways
    zh = torch.randn(B, 4 * H, dtype=dtype)
    c_prev = torch.randn(B, H, dtype=dtype)
    want = equations(z + zh, c_prev, act, gate)
    c, phi, h = (torch.empty(B, H, dtype=dtype) for _ in range(3))
    kernels.lstm_forward_step(z, zh, c_prev, c, phi, h, native.ACTIVATIONS[act], native.ACTIVATIONS[gate])
    for got, ref in zip((z, c, phi, h), want, strict=True):
        torch.testing.assert_close(got, ref, rtol=tol, atol=tol)
    assert torch.isfinite(z).all()


def backward_equations(z, c_prev, phi, d_out, dh_next, dc_next, m, act, gate):
    """rnnkit.bptt's Python backward step, autograd-free (the reference the kernel must equal)."""
    H = z.shape[1] // 4
    back = {"tanh": lambda y: 1 - y * y, "sigmoid": lambda y: y * (1 - y), "relu": lambda y: (y > 0).to(y),
            "identity": torch.ones_like, "hard_sigmoid": lambda y: ((y > 0) & (y < 1)).to(y) / 6}  # fmt: skip
    i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
    dh = d_out + dh_next * m
    dc = back[act](phi) * dh * o + dc_next * m
    dz = torch.cat([back[gate](i) * dc * g, back[gate](f) * dc * c_prev, back[act](g) * dc * i,
                    back[gate](o) * dh * phi], 1)  # fmt: skip
    return dz, dc * f + dc_next * ~m, dh_next * ~m


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("act, gate", [("tanh", "sigmoid"), ("relu", "hard_sigmoid"), ("identity", "tanh")])
def test_backward_step_equals_the_equations(kernels, act, gate, masked):
    torch.manual_seed(1)
    B, H = 6, 19
    z = torch.randn(B, 4 * H, dtype=torch.float64)
    c_prev = torch.randn(B, H, dtype=torch.float64)
    z, _, phi, _ = equations(z, c_prev, act, gate)
    d_out, dh_next, dc_next = (torch.randn(B, H, dtype=torch.float64) for _ in range(3))
    m = torch.tensor([True, False, True, True, False, True]) if masked else torch.ones(B, dtype=torch.bool)
    want = backward_equations(z, c_prev, phi, d_out, dh_next, dc_next, m.unsqueeze(1), act, gate)
    dz, dc, carry = torch.empty_like(z), dc_next.clone(), torch.full_like(dh_next, float("nan"))
    ids = native.ACTIVATIONS[act], native.ACTIVATIONS[gate]
    kernels.lstm_backward_step(z, c_prev, phi, d_out, dh_next, dc, dz, m if masked else None,
                               carry if masked else None, *ids)  # fmt: skip
    torch.testing.assert_close(dz, want[0], rtol=0, atol=1e-14)
    torch.testing.assert_close(dc, want[1], rtol=0, atol=1e-14)
    if masked:
        torch.testing.assert_close(carry, want[2], rtol=0, atol=0)


def test_shapes_are_checked_with_what_was_expected(kernels):
    z, state = torch.zeros(2, 8), torch.zeros(2, 2)
    with pytest.raises(RuntimeError, match=r"state must be \(2, 2\), got \[2, 3\]"):
        kernels.lstm_forward_step(z, None, torch.zeros(2, 3), state, state.clone(), state.clone(), 0, 1)
    with pytest.raises(RuntimeError, match="contiguous rows"):
        kernels.lstm_forward_step(torch.zeros(8, 2).t(), None, state, state, state, state, 0, 1)


def test_a_float32_layer_with_lengths_is_the_python_loop_within_float_rounding(monkeypatch, kernels):
    """The whole path: a bidirectional two-layer LSTM at batch 32 (oneDNN's products), native against Python."""
    torch.manual_seed(0)
    layer = rnnkit.LSTM(16, 32, num_layers=2, bidirectional=True, fused=False, recurrent_activation="hard_sigmoid")
    x = torch.randn(20, 32, 16, requires_grad=True)
    lengths = torch.randint(1, 21, (32,))

    def grads():
        out, (h, c) = layer(x, lengths=lengths)
        loss = (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum() + h.sum() + c.square().sum()
        return [out, h, c, *torch.autograd.grad(loss, [x, *layer.parameters()])]

    fast = grads()
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    slow = grads()
    for a, b in zip(fast, slow, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert bptt._native(x, "tanh", "softmax") is None  # softmax gates: the Python loop


@pytest.mark.parametrize("masked", [False, True])
def test_without_a_gradient_the_forward_alone_runs_and_equals_the_reference_loop(kernels, monkeypatch, masked):
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 6, num_layers=2, activation="relu", recurrent_activation="hard_sigmoid", dtype=torch.float64)
    x = torch.randn(7, 4, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 1, 5]) if masked else None
    calls, inference = [], bptt.lstm_inference
    monkeypatch.setattr(bptt, "lstm_inference", lambda *a: calls.append(1) or inference(*a))
    with torch.no_grad():
        out, (h, c) = layer(x, lengths=lengths)
    assert calls == [1, 1]  # one call a layer
    with bptt.reference_loop(), torch.no_grad():
        ref, (h_ref, c_ref) = layer(x, lengths=lengths)
    for a, b in ((out, ref), (h, h_ref), (c, c_ref)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def test_the_backward_takes_the_path_its_forward_took(kernels, monkeypatch):
    calls, backward = [], bptt._native_backward
    monkeypatch.setattr(bptt, "_native_backward", lambda *a: calls.append(1) or backward(*a))
    layer = rnnkit.LSTM(3, 4, fused=False)
    x = torch.randn(5, 2, 3, requires_grad=True)
    with native.disabled():
        out = layer(x)[0]
    out.sum().backward()  # outside the block, but the forward ran in Python: so does its backward
    assert calls == []
    layer(x)[0].sum().backward()
    assert calls == [1]


@pytest.mark.parametrize("onednn_products", [False, True])
def test_float32_without_a_gradient_is_the_reference_loop_within_float_rounding(kernels, monkeypatch, onednn_products):
    """rnnkit.native's LSTM forward alone at batch 32 with lengths, its products through MKL or, packed by the
    layer, oneDNN, against the step-by-step loop."""
    monkeypatch.setattr(onednn, "mkl_is_fast", lambda: not onednn_products)  # which weights the layer packs
    torch.manual_seed(0)
    layer = rnnkit.LSTM(16, 32, num_layers=2, bidirectional=True, recurrent_activation="hard_sigmoid")
    x = torch.randn(20, 32, 16)
    lengths = torch.randint(1, 21, (32,))
    calls, inference = [], bptt.lstm_inference
    monkeypatch.setattr(bptt, "lstm_inference", lambda *a: calls.append(a[0].weight_hh) or inference(*a))
    with torch.no_grad():
        out, (h, c) = layer(x, lengths=lengths)
        assert len(calls) == 4 and all(hasattr(w, "packed") is onednn_products for w in calls)
        with bptt.reference_loop():
            ref, (h_ref, c_ref) = layer(x, lengths=lengths)
    for a, b in ((out, ref), (h, h_ref), (c, c_ref)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
