"""rnnkit.RNN / LSTM / GRU / IRNN against torch.nn.RNN / LSTM / GRU, on both paths: torch's fused kernel
(fused="auto") and rnnkit's reference loop (fused=False)."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit

KINDS = {
    "lstm": (rnnkit.LSTM, nn.LSTM, {}),
    "gru": (rnnkit.GRU, nn.GRU, {}),
    "rnn-tanh": (rnnkit.RNN, nn.RNN, {}),
    "rnn-relu": (rnnkit.RNN, nn.RNN, {"nonlinearity": "relu"}),
}
I, H, T, B = 3, 4, 5, 3


@pytest.fixture(autouse=True)
def _native_cpu_kernels(request):
    """torch's oneDNN LSTM kernel costs ~0.15 s a call with gradients (primitive set-up) on these tiny shapes;
    run on torch's native CPU kernels, except in the test_onednn_* tests, which keep torch's default."""
    if request.node.name.startswith("test_onednn"):
        yield
        return
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = previous


UNSORTED, SORTED = [5, 2, 4], [5, 4, 2]

# name: (constructor kwargs, input mode, with an initial state)
CASES = {
    "padded": ({}, "padded", False),
    "padded-state": ({}, "padded", True),
    "no-bias": ({"bias": False}, "padded", True),
    "packed-unsorted": ({}, "packed-unsorted", True),
    "packed-unsorted-nostate": ({}, "packed-unsorted", False),
    "packed-sorted": ({}, "packed-sorted", True),
    "lengths": ({}, "lengths", True),
    "lengths-nostate": ({}, "lengths", False),
    "2-layers": ({"num_layers": 2}, "padded", True),
    "2-layers-lengths": ({"num_layers": 2}, "lengths", True),
    "bidir": ({"bidirectional": True}, "padded", True),
    "bidir-nostate": ({"bidirectional": True}, "padded", False),
    "bidir-2-layers-packed": ({"bidirectional": True, "num_layers": 2}, "packed-unsorted", True),
    "bidir-2-layers-lengths": ({"bidirectional": True, "num_layers": 2}, "lengths", False),
    "bidir-packed-sorted": ({"bidirectional": True}, "packed-sorted", False),
    "batch_first": ({"batch_first": True}, "padded", True),
    "batch_first-lengths": ({"batch_first": True, "bidirectional": True}, "lengths", True),
    "batch_first-packed": ({"batch_first": True}, "packed-unsorted", True),
    "unbatched": ({}, "unbatched", True),
    "unbatched-nostate": ({"num_layers": 2, "bidirectional": True}, "unbatched", False),
}
LSTM_CASES = {
    "proj": ({"proj_size": 2}, "padded", True),
    "proj-bidir-2-layers-lengths": ({"proj_size": 2, "num_layers": 2, "bidirectional": True}, "lengths", True),
    "proj-packed": ({"proj_size": 3}, "packed-unsorted", False),
}
PARAMS = [
    pytest.param(kind, case, id=f"{kind}-{name}")
    for kind in KINDS
    for name, case in (CASES | (LSTM_CASES if kind == "lstm" else {})).items()
]


def _state_tuple(s):
    return (s,) if isinstance(s, torch.Tensor) else tuple(s)


def _call(module, mode, x, state, batch_first, is_torch):
    """Run ``module`` on the input form ``mode``; return (output as a tensor, state as a tuple, packed output)."""
    if mode in ("padded", "unbatched"):
        out, final = module(x, state)
        return out, _state_tuple(final), None
    lengths = torch.tensor(SORTED if mode == "packed-sorted" else UNSORTED)
    if mode == "lengths" and not is_torch:
        out, final = module(x, state, lengths=lengths)
        return out, _state_tuple(final), None
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=mode == "packed-sorted")
    out, final = module(packed, state)
    assert isinstance(out, PackedSequence)
    if mode == "lengths":  # torch on the packed equivalent, padded back
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
        return out, _state_tuple(final), None
    return out.data, _state_tuple(final), out


def _make_pair(kind, kwargs, fused, seed=0):
    ours_cls, torch_cls, extra = KINDS[kind]
    torch.manual_seed(seed)
    ref = torch_cls(I, H, **extra, **kwargs)
    ours = ours_cls(I, H, **extra, **kwargs, fused=fused)
    return ours, ref


def _inputs(kind, kwargs, mode, with_state):
    g = torch.Generator().manual_seed(1)
    L = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
    P = kwargs.get("proj_size", 0) or H
    if mode == "unbatched":
        x = torch.randn(T, I, generator=g)
        shapes = [(L, P), (L, H)]
    else:
        x = torch.randn(B, T, I, generator=g) if kwargs.get("batch_first") else torch.randn(T, B, I, generator=g)
        shapes = [(L, B, P), (L, B, H)]
    if not with_state:
        return x, None
    fields = [torch.randn(*s, generator=g) for s in shapes[: 2 if kind == "lstm" else 1]]
    return x, tuple(fields)


def _as_hx(kind, fields):
    if fields is None:
        return None
    return fields if kind == "lstm" else fields[0]


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize(("kind", "case"), PARAMS)
def test_equivalent_to_torch(kind, case, fused):
    check_equivalence(kind, case, fused)


@pytest.mark.parametrize(
    ("kind", "case"),
    [("lstm", CASES["padded-state"]), ("lstm", CASES["bidir-2-layers-lengths"]), ("gru", CASES["packed-unsorted"])],
    ids=["lstm-padded", "lstm-bidir-lengths", "gru-packed"],
)
def test_onednn_equivalent_to_torch(kind, case):
    """The same comparison with torch's default CPU kernels (oneDNN where it applies) left on."""
    assert torch.backends.mkldnn.enabled == torch.backends.mkldnn.is_available()
    check_equivalence(kind, case, "auto")


def check_equivalence(kind, case, fused):
    kwargs, mode, with_state = case
    ours, ref = _make_pair(kind, kwargs, fused)
    ours.load_state_dict(ref.state_dict())  # torch -> rnnkit
    x, fields = _inputs(kind, kwargs, mode, with_state)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    st_ref = None if fields is None else tuple(f.clone().requires_grad_() for f in fields)
    st_ours = None if fields is None else tuple(f.clone().requires_grad_() for f in fields)
    bf = kwargs.get("batch_first", False)

    out_ref, fin_ref, packed_ref = _call(ref, mode, x_ref, _as_hx(kind, st_ref), bf, is_torch=True)
    out_ours, fin_ours, packed_ours = _call(ours, mode, x_ours, _as_hx(kind, st_ours), bf, is_torch=False)

    assert out_ours.shape == out_ref.shape
    torch.testing.assert_close(out_ours, out_ref, atol=1e-5, rtol=0)
    assert len(fin_ours) == len(fin_ref)
    for a, b in zip(fin_ours, fin_ref, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    if packed_ref is not None:
        assert torch.equal(packed_ours.batch_sizes, packed_ref.batch_sizes)
        for a, b in [(packed_ours.sorted_indices, packed_ref.sorted_indices)]:
            assert (a is None and b is None) or torch.equal(a, b)
    if mode == "lengths":  # padding is zero, as torch's pad_packed_sequence gives
        pad_out = out_ours.transpose(0, 1) if bf else out_ours
        assert not pad_out[2:, 1].any() and not pad_out[4:, 2].any()

    # gradients of the same loss w.r.t. every parameter, the input and the initial state
    g = torch.Generator().manual_seed(2)
    weights = [torch.randn(out_ref.shape, generator=g)] + [torch.randn(f.shape, generator=g) for f in fin_ref]

    def loss(out, fin):
        return (out * weights[0]).sum() + sum((f * w).sum() for f, w in zip(fin, weights[1:], strict=True))

    loss(out_ref, fin_ref).backward()
    loss(out_ours, fin_ours).backward()
    for name, p in ref.named_parameters():
        torch.testing.assert_close(getattr(ours, name).grad, p.grad, atol=1e-5, rtol=1e-5, msg=name)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-5, rtol=1e-5)
    if fields is not None:
        for a, b in zip(st_ours, st_ref, strict=True):
            torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5)


REVERSE = {
    "lstm": {"num_layers": 2, "bidirectional": True, "proj_size": 2},
    "gru": {"num_layers": 2, "bidirectional": True},
    "rnn-tanh": {"num_layers": 2, "bidirectional": True},
    "rnn-relu": {"num_layers": 2},
}


@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("kind", REVERSE)
def test_rnnkit_state_dict_loads_into_torch(kind, fused):
    ours, _ = _make_pair(kind, REVERSE[kind], fused, seed=3)
    _, ref = _make_pair(kind, REVERSE[kind], fused, seed=4)
    assert not torch.equal(ours.weight_ih_l0, ref.weight_ih_l0)
    ref.load_state_dict(ours.state_dict())  # rnnkit -> torch
    x = torch.randn(T, B, I)
    out_ours, fin_ours = ours(x)
    out_ref, fin_ref = ref(x)
    torch.testing.assert_close(out_ours, out_ref, atol=1e-5, rtol=0)
    for a, b in zip(_state_tuple(fin_ours), _state_tuple(fin_ref), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


INIT_CONFIGS = [{}, {"num_layers": 2, "bidirectional": True}, {"num_layers": 3, "bias": False}]


@pytest.mark.parametrize("config", INIT_CONFIGS, ids=["1", "2x2", "3-nobias"])
@pytest.mark.parametrize("kind", KINDS)
def test_same_initial_weights_as_torch_under_seed(kind, config):
    ours_cls, torch_cls, extra = KINDS[kind]
    torch.manual_seed(42)
    ref = torch_cls(I, H, **extra, **config)
    torch.manual_seed(42)
    ours = ours_cls(I, H, **extra, **config)
    sd_ref, sd_ours = ref.state_dict(), ours.state_dict()
    assert list(sd_ours) == list(sd_ref)  # same keys, same order
    for key in sd_ref:
        assert torch.equal(sd_ours[key], sd_ref[key]), key
    # and both consumed the same number of draws: what comes next is the same
    after_ours = torch.rand(3)
    torch.manual_seed(42)
    torch_cls(I, H, **extra, **config)
    assert torch.equal(after_ours, torch.rand(3))


def test_same_initial_weights_as_torch_lstm_proj():
    torch.manual_seed(9)
    ref = nn.LSTM(I, 5, 2, bidirectional=True, proj_size=2)
    torch.manual_seed(9)
    ours = rnnkit.LSTM(I, 5, 2, bidirectional=True, proj_size=2)
    sd_ref, sd_ours = ref.state_dict(), ours.state_dict()
    assert list(sd_ours) == list(sd_ref)
    assert all(torch.equal(sd_ours[k], sd_ref[k]) for k in sd_ref)


def test_torch_name_attributes():
    lstm = rnnkit.LSTM(I, H, 2, bidirectional=True, proj_size=2)
    assert lstm.weight_hh_l1_reverse is lstm.bound_cells()[3].weight_hh
    assert lstm.weight_hh_l1_reverse.shape == (4 * H, 2)
    assert lstm.weight_hr_l0.shape == (2, H)
    assert lstm.weight_ih_l1.shape == (4 * H, 4)  # 2 directions x proj_size 2
    ref = nn.LSTM(I, H, 2, bidirectional=True, proj_size=2)
    for name, p in ref.named_parameters():
        assert getattr(lstm, name).shape == p.shape, name
    assert len(lstm.all_weights) == len(ref.all_weights) == 4
    assert [[w.shape for w in ws] for ws in lstm.all_weights] == [[w.shape for w in ws] for ws in ref.all_weights]
    lstm.flatten_parameters()


def test_compat_attributes_mirror_torch():
    lstm = rnnkit.LSTM(I, H, 2, True, True, 0.0, True, 2)  # torch's positional order
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bias) == (I, H, 2, True)
    assert lstm.batch_first and lstm.bidirectional and lstm.proj_size == 2
    rnn = rnnkit.RNN(I, H, 1, "relu")
    assert rnn.nonlinearity == "relu" and rnn.cells[0].nonlinearity == "relu"


@pytest.mark.parametrize(("cls", "cell_cls"), [(nn.LSTMCell, rnnkit.LSTMCell), (nn.GRUCell, rnnkit.GRUCell)])
def test_torch_cells_load_into_rnnkit_cells(cls, cell_cls):
    torch.manual_seed(0)
    ref, ours = cls(I, H), cell_cls(I, H)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(B, I)
    h = torch.randn(B, H)
    if cls is nn.LSTMCell:
        c = torch.randn(B, H)
        y, st = ours(x, rnnkit.LSTMState(h, c))
        h_ref, c_ref = ref(x, (h, c))
        torch.testing.assert_close(st.c, c_ref, atol=1e-6, rtol=0)
    else:
        y, st = ours(x, rnnkit.GRUState(h))
        h_ref = ref(x, h)
    torch.testing.assert_close(y, h_ref, atol=1e-6, rtol=0)


def test_torch_rnncell_loads_into_elman_cell():
    torch.manual_seed(0)
    ref, ours = nn.RNNCell(I, H, nonlinearity="relu"), rnnkit.ElmanCell(I, H, nonlinearity="relu")
    ours.load_state_dict(ref.state_dict())
    x, h = torch.randn(B, I), torch.randn(B, H)
    torch.testing.assert_close(ours(x, rnnkit.ElmanState(h))[0], ref(x, h), atol=1e-6, rtol=0)


def test_irnn_is_a_relu_rnn_with_identity_init():
    torch.manual_seed(0)
    irnn = rnnkit.IRNN(I, H, 2)
    assert irnn.nonlinearity == "relu"
    for layer in range(2):
        assert torch.equal(getattr(irnn, f"weight_hh_l{layer}"), torch.eye(H))
        assert not getattr(irnn, f"bias_ih_l{layer}").any() and not getattr(irnn, f"bias_hh_l{layer}").any()
    ref = nn.RNN(I, H, 2, nonlinearity="relu")
    ref.load_state_dict(irnn.state_dict())
    x = torch.randn(T, B, I)
    torch.testing.assert_close(irnn(x)[0], ref(x)[0], atol=1e-6, rtol=0)
    loop = rnnkit.IRNN(I, H, 2, fused=False)
    loop.load_state_dict(irnn.state_dict())
    torch.testing.assert_close(loop(x)[0], ref(x)[0], atol=1e-6, rtol=0)


# -- the dispatch ---------------------------------------------------------------------------------------


def _forbid(monkeypatch, layer, method):
    def fail(*args, **kwargs):
        raise AssertionError(f"{method} should not run")

    monkeypatch.setattr(layer, method, fail)


ELIGIBLE = {
    "lstm": lambda **kw: rnnkit.LSTM(I, H, 2, bidirectional=True, **kw),
    "lstm-proj": lambda **kw: rnnkit.LSTM(I, H, proj_size=2, **kw),
    "gru": lambda **kw: rnnkit.GRU(I, H, **kw),
    "rnn-tanh": lambda **kw: rnnkit.RNN(I, H, **kw),
    "rnn-relu": lambda **kw: rnnkit.RNN(I, H, nonlinearity="relu", **kw),
    "irnn": lambda **kw: rnnkit.IRNN(I, H, **kw),
}
INELIGIBLE = {
    "gru-reset_after-False": lambda **kw: rnnkit.GRU(I, H, reset_after=False, **kw),
    "gru-hard_sigmoid": lambda **kw: rnnkit.GRU(I, H, recurrent_activation="hard_sigmoid", **kw),
    "rnn-identity": lambda **kw: rnnkit.RNN(I, H, nonlinearity="identity", **kw),
    "lstm-identity": lambda **kw: rnnkit.LSTM(I, H, activation="identity", **kw),
    "lstm-residual": lambda **kw: rnnkit.LSTM(H, H, 2, residual=True, **kw),
    "gru-residual": lambda **kw: rnnkit.GRU(H, H, 2, residual=True, **kw),
}


@pytest.mark.parametrize("lengths", [None, UNSORTED], ids=["padded", "lengths"])
@pytest.mark.parametrize("make", ELIGIBLE.values(), ids=ELIGIBLE.keys())
def test_auto_uses_kernel_and_false_uses_loop_with_equal_results(monkeypatch, make, lengths):
    torch.manual_seed(0)
    auto, loop, forced = make(), make(fused=False), make(fused=True)
    loop.load_state_dict(auto.state_dict())
    forced.load_state_dict(auto.state_dict())
    _forbid(monkeypatch, auto, "_loop")
    _forbid(monkeypatch, forced, "_loop")
    _forbid(monkeypatch, loop, "_fused")
    x = torch.randn(T, B, I)
    out_a, fin_a = auto(x, lengths=lengths)
    out_l, fin_l = loop(x, lengths=lengths)
    out_f, _ = forced(x, lengths=lengths)
    torch.testing.assert_close(out_a, out_l, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_f, out_a)
    for a, b in zip(_state_tuple(fin_a), _state_tuple(fin_l), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("make", INELIGIBLE.values(), ids=INELIGIBLE.keys())
def test_ineligible_config_runs_the_loop_and_fused_true_raises(monkeypatch, make):
    torch.manual_seed(0)
    auto, loop = make(), make(fused=False)
    loop.load_state_dict(auto.state_dict())
    _forbid(monkeypatch, auto, "_fused")
    x = torch.randn(T, B, auto.input_size)
    out, final = auto(x)
    out_l, final_l = loop(x)
    assert torch.equal(out, out_l)
    for a, b in zip(_state_tuple(final), _state_tuple(final_l), strict=True):
        assert torch.equal(a, b)
    assert out.shape == (T, B, H) and out.abs().max() > 0
    forced = make(fused=True)
    with pytest.raises(ValueError, match="fused=True but torch's fused kernel cannot run this"):
        forced(x)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: rnnkit.GRU(I, H, reset_after=False, fused=True), "reset_after=False"),
        (lambda: rnnkit.RNN(I, H, nonlinearity="identity", fused=True), "nonlinearity='identity'"),
        (lambda: rnnkit.LSTM(H, H, 2, residual=True, fused=True), "residual"),
        (lambda: rnnkit.LSTM(I, H, recurrent_activation="hard_sigmoid", fused=True), "hard_sigmoid"),
    ],
    ids=["gru-reset_after", "rnn-identity", "residual", "lstm-hard_sigmoid"],
)
def test_fused_true_on_ineligible_config_raises(make, reason):
    with pytest.raises(ValueError, match=reason):
        layer = make()
        layer(torch.randn(T, B, layer.input_size))


def test_fused_true_with_return_steps_or_unsupported_dtype_raises():
    lstm = rnnkit.LSTM(I, H, fused=True)
    with pytest.raises(ValueError, match="return_steps=True"):
        lstm(torch.randn(T, B, I), return_steps=True)
    half = rnnkit.LSTM(I, H, fused=True, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"no fused kernel for torch.float16 on cpu"):
        half(torch.randn(T, B, I, dtype=torch.float16))


def test_return_steps_on_auto_runs_the_loop():
    torch.manual_seed(0)
    lstm = rnnkit.LSTM(I, H, 2)
    x = torch.randn(T, B, I)
    out, (h, c), steps = lstm(x, return_steps=True)
    out2, (h2, c2) = lstm(x)
    torch.testing.assert_close(out, out2, atol=1e-5, rtol=0)
    torch.testing.assert_close(steps.c[:, -1], c2, atol=1e-5, rtol=0)
    torch.testing.assert_close(h, h2, atol=1e-5, rtol=0)
    torch.testing.assert_close(steps.h[:, -1], h2, atol=1e-5, rtol=0)
    assert torch.equal(steps.c[:, -1], c)


@pytest.mark.parametrize("fused", ["yes", None, "false", 0, 1, 1.0])
def test_bad_fused_argument(fused):
    """Only "auto", True and False are accepted. 0 and 1 compare equal to False and True but the dispatch
    tests ``self.fused is False`` / ``is True``: fused=0 would silently run the kernel, fused=1 would silently
    fall back to the loop instead of raising."""
    with pytest.raises(ValueError, match=r"fused must be 'auto', True or False, got"):
        rnnkit.GRU(I, H, fused=fused)


@pytest.mark.parametrize("fused", ["auto", False])
def test_dropout_eval_matches_torch_and_train_differs(fused):
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, 3, dropout=0.5)
    ours = rnnkit.LSTM(I, H, 3, dropout=0.5, fused=fused)
    ours.load_state_dict(ref.state_dict())
    ref.eval()
    ours.eval()
    x = torch.randn(T, B, I)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], atol=1e-5, rtol=0)
    ours.train()
    torch.manual_seed(1)
    assert not torch.allclose(ours(x)[0], ref(x)[0], atol=1e-3)


# -- gradients, both paths, float64 -------------------------------------------------------------------

GRAD = {
    "lstm-2x2": (lambda **kw: rnnkit.LSTM(2, 3, 2, bidirectional=True, **kw), 2),
    "lstm-proj": (lambda **kw: rnnkit.LSTM(2, 3, proj_size=2, bidirectional=True, **kw), 2),
    "gru-2x2": (lambda **kw: rnnkit.GRU(2, 3, 2, bidirectional=True, **kw), 1),
    "rnn-tanh-2x1": (lambda **kw: rnnkit.RNN(2, 3, 2, **kw), 1),
    "rnn-relu-bidir": (lambda **kw: rnnkit.RNN(2, 3, nonlinearity="relu", bidirectional=True, **kw), 1),
    "gru-batch_first": (lambda **kw: rnnkit.GRU(2, 3, batch_first=True, **kw), 1),
}


@pytest.mark.parametrize("lengths", [None, [4, 1, 3]], ids=["full", "lengths"])
@pytest.mark.parametrize("fused", ["auto", False])
@pytest.mark.parametrize("name", GRAD)
def test_compat_gradcheck(gradcheck_layer, monkeypatch, name, fused, lengths):
    make, n_fields = GRAD[name]
    torch.manual_seed(0)
    layer = make(dtype=torch.float64, fused=fused)
    _forbid(monkeypatch, layer, "_loop" if fused == "auto" else "_fused")
    x = torch.randn(3, 4, 2, dtype=torch.float64) if layer.batch_first else torch.randn(4, 3, 2, dtype=torch.float64)
    fields = tuple(torch.randn(t.shape, dtype=torch.float64) for t in layer.initial_state(3, dtype=torch.float64))
    state = fields if n_fields == 2 else fields[0]
    gradcheck_layer(layer, x, state, lengths=lengths)


@pytest.mark.parametrize("fused", ["auto", False])
def test_compat_gradcheck_packed(fused):
    torch.manual_seed(0)
    layer = rnnkit.GRU(2, 3, 2, bidirectional=True, dtype=torch.float64, fused=fused)
    packed = pack_padded_sequence(torch.randn(4, 3, 2, dtype=torch.float64), [2, 4, 3], enforce_sorted=False)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    h0 = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)

    def f(data, h0, *ps):
        inp = PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        out, h = torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (inp, h0))
        return out.data, h

    inputs = (packed.data.clone().requires_grad_(), h0, *params)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, fast_mode=True)
