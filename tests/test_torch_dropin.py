"""What PyTorch's own tests check of torch.nn.RNN / LSTM / GRU, checked of rnnkit's drop-ins.

Written from reading test/test_nn.py (TestNN, TestNNDeviceType) and the module database of
torch/testing/_internal/common_modules.py with test/test_modules.py's generic checks (CPU-runnable
ones). Each test runs on torch's class *and* rnnkit's (the ``lib`` parameter), so a test that torch.nn
fails is a test of the wrong behaviour; rnnkit's classes run both paths (fused kernel and loop) where
the result could differ. The torch test each one follows is named in its docstring.
"""

import copy
import io
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit import torch_cells

TORCH = {"RNN": nn.RNN, "GRU": nn.GRU, "LSTM": nn.LSTM}
RNNKIT = {"RNN": rnnkit.RNN, "GRU": rnnkit.GRU, "LSTM": rnnkit.LSTM}
LOOP = {k: (lambda cls: lambda *a, **kw: cls(*a, fused=False, **kw))(v) for k, v in RNNKIT.items()}
LIBS = {"torch": TORCH, "rnnkit": RNNKIT, "rnnkit-loop": LOOP}


@pytest.fixture(params=list(LIBS))
def lib(request):
    return LIBS[request.param]


def hidden(kind, *shape_h, shape_c=None):
    """A zero state of torch's form: h alone, or (h, c) for the LSTM."""
    h = torch.zeros(*shape_h)
    return (h, torch.zeros(*(shape_c or shape_h))) if kind == "LSTM" else h


# -- constructor and forward errors (common_modules.module_error_inputs_torch_nn_RNN_GRU) ----------------


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize(
    ("args", "kwargs", "error", "regex"),
    [
        ((10, 0, 1), {}, ValueError, "hidden_size must be greater than zero"),
        ((10, 10, 0), {}, ValueError, "num_layers must be greater than zero"),
        ((3, 5), {"bias": 0}, TypeError, "bias should be of type bool, got: int"),
        ((3, 5), {"bias": "True"}, TypeError, "bias should be of type bool, got: str"),
        ((3, 5), {"batch_first": 1}, TypeError, "batch_first should be of type bool, got: int"),
        ((3, 5), {"batch_first": "False"}, TypeError, "batch_first should be of type bool, got: str"),
        ((3.0, 5), {}, TypeError, "input_size should be of type int, got: float"),
        (("10", 5), {}, TypeError, "input_size should be of type int, got: str"),
        ((0, 5), {}, ValueError, "input_size must be greater than zero"),
        ((-1, 5), {}, ValueError, "input_size must be greater than zero"),
        ((3, 5.0), {}, TypeError, "hidden_size should be of type int, got: float"),
        ((3, 5, 2), {"dropout": 1.5}, ValueError, r"dropout should be a number in range \[0, 1\]"),
        ((3, 5, 2), {"dropout": True}, ValueError, r"dropout should be a number in range \[0, 1\]"),
    ],
)
def test_constructor_errors(lib, kind, args, kwargs, error, regex):
    with pytest.raises(error, match=regex):
        lib[kind](*args, **kwargs)


def test_projection_errors(lib):
    """test_projections_errors_on_gru_and_rnn, and LSTM's proj_size range."""
    for kind in ("RNN", "GRU"):
        with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM, not RNN or GRU"):
            lib[kind](30, 20, 2, proj_size=10)
    with pytest.raises(ValueError, match="proj_size should be a positive integer or zero to disable projections"):
        lib["LSTM"](3, 5, proj_size=-1)
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        lib["LSTM"](3, 5, proj_size=5)


def test_nonlinearity(lib):
    """test_RNN_nonlinearity, test_RNN_nonlinearity_passed_as_arg."""
    assert lib["RNN"](1, 10).nonlinearity == "tanh"
    assert lib["RNN"](1, 10, nonlinearity="relu").nonlinearity == "relu"
    assert lib["RNN"](2, 3, 1, "relu").nonlinearity == "relu"
    with pytest.raises(ValueError, match="Unknown nonlinearity 'garbage'"):
        lib["RNN"](1, 10, nonlinearity="garbage")


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_dtype_mismatch(lib, kind):
    regex = r"RNN input dtype .* does not match weight dtype .* Convert input: input\.to\(.*\), or convert model: "
    with pytest.raises(ValueError, match=regex + r"model\.to\(.*\)"):
        lib[kind](3, 5)(torch.randn(2, 4, 3, dtype=torch.float64))


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_args_check(lib, kind):
    """test_rnn_args_check: a size of 7 anywhere in input or hidden is a RuntimeError; test_cudnn_forward_exception's
    messages."""
    model = lib[kind](3, 5, 2)
    good_h = (2, 4, 5)
    cases = [((6, 7, 3), good_h), ((6, 4, 3), (2, 7, 5)), ((6, 4, 7), good_h), ((6, 4, 3), (2, 4, 7))]
    cases.append(((6, 4, 3), (7, 4, 5)))
    for x_shape, h_shape in cases:
        states = [hidden(kind, *h_shape)]
        if kind == "LSTM" and h_shape != good_h:  # a bad h with a good c, and the reverse
            states = [(torch.zeros(h_shape), torch.zeros(good_h)), (torch.zeros(good_h), torch.zeros(h_shape))]
        for hx in states:
            with pytest.raises(RuntimeError):
                model(torch.randn(x_shape), hx)
    batch_first = lib[kind](10, 20, batch_first=True)
    with pytest.raises(RuntimeError, match=r"Expected hidden.*size.*got"):
        batch_first(torch.randn(2, 3, 10), hidden(kind, 1, 2, 19))
    with pytest.raises(RuntimeError, match=re.escape("input.size(-1) must be equal to input_size")):
        batch_first(torch.randn(2, 3, 3))


def test_projections_args_check(lib):
    """test_projections_lstm_args_check."""
    model = lib["LSTM"](3, 5, 2, proj_size=2)
    x, h, c = torch.randn(6, 4, 3), torch.zeros(2, 4, 2), torch.zeros(2, 4, 5)
    model(x, (h, c))
    bad = [
        (torch.randn(6, 7, 3), (h, c)),
        (x, (torch.zeros(2, 7, 2), torch.zeros(2, 7, 5))),
        (torch.randn(6, 4, 7), (h, c)),
        (x, (torch.zeros(2, 4, 7), torch.zeros(2, 4, 7))),
        (x, (torch.zeros(7, 4, 2), torch.zeros(7, 4, 5))),
        (x, (torch.zeros(2, 4, 5), c)),  # h sized as c
        (x, (h, torch.zeros(7, 4, 5))),
    ]
    for inp, hx in bad:
        with pytest.raises(RuntimeError):
            model(inp, hx)


def test_sequence_length_zero_and_batch_zero(lib):
    """test_error_RNN_seq_len_zero and test_RNN_input_size_zero (batch 0: empty output, backward works)."""
    for kind in ("RNN", "LSTM", "GRU"):
        for bidirectional in (False, True):
            with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0 in RNN"):
                lib[kind](5, 6, bidirectional=bidirectional)(torch.ones(0, 10, 5))
        x = torch.zeros(5, 0, 3, requires_grad=True)
        out = lib[kind](input_size=3, hidden_size=4)(x)
        assert out[0].shape == (5, 0, 4)
        out[0].sum().backward()


# -- values -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_zero_initial_hidden_state_is_no_state(lib, kind):
    """test_rnn_initial_hidden_state and test_projections_lstm_initial_hidden_state."""
    torch.manual_seed(0)
    configs = [{}] + ([{"proj_size": 10, "bidirectional": b} for b in (False, True)] if kind == "LSTM" else [])
    for cfg in configs:
        rnn = lib[kind](30, 20, 2, **cfg)
        D, H = 1 + cfg.get("bidirectional", False), cfg.get("proj_size") or 20
        x = torch.randn(10, 32, 30)
        hx = hidden(kind, 2 * D, 32, H, shape_c=(2 * D, 32, 20))
        a, b = rnn(x, hx), rnn(x)
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dropout_between_layers_only_and_read_at_call_time(lib):
    """test_RNN_dropout and test_RNN_change_dropout: all weights 1, relu, no bias; dropout acts on the input of layer 2
    only, scaled by 1/(1-p), and ``rnn.dropout`` set after construction takes effect."""
    rnn = lib["RNN"](10, 100, 2, bias=False, dropout=0.0, nonlinearity="relu")
    with torch.no_grad():
        for w in rnn.parameters():
            w.fill_(1)
    x, hx = torch.ones(1, 1, 10), torch.zeros(2, 1, 100)
    out, hy = rnn(x, hx)
    assert out.min() == out.max() == 1000 and (hy[0] == 10).all()
    rnn.dropout = 1.0
    out, hy = rnn(x, hx)
    assert (out == 0).all() and (hy[0] == 10).all()
    rnn.dropout = 0.5
    torch.manual_seed(1)
    out, hy = rnn(x, hx)
    assert 0 < out.min() == out.max() and float(out[0, 0, 0]) % 20 == 0  # a sum of 10 * 2 per kept unit
    rnn.eval()
    torch.testing.assert_close(rnn(x, hx), rnn(x, hx))
    assert rnn(x, hx)[0].max() == 1000


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_unbatched_input_equals_a_batch_of_one(lib, kind):
    """common_modules' no-batch-dim references: input (T, F), hx passed (also as an explicit None)."""
    torch.manual_seed(0)
    for batch_first in (False, True):
        for bidirectional in (False, True):
            rnn = lib[kind](2, 3, 2, batch_first=batch_first, bidirectional=bidirectional)
            D = 2 if bidirectional else 1
            x = torch.randn(3, 2)
            for hx in (None, hidden(kind, 2 * D, 3)):
                out, h = rnn(x, hx)
                bd = 0 if batch_first else 1
                batched_hx = (
                    None if hx is None else tuple(t.unsqueeze(1) for t in hx) if kind == "LSTM" else hx.unsqueeze(1)
                )
                ref_out, ref_h = rnn(x.unsqueeze(bd), batched_hx)
                torch.testing.assert_close(out, ref_out.squeeze(bd))
                squeeze = (lambda s: tuple(t.squeeze(1) for t in s)) if kind == "LSTM" else (lambda s: s.squeeze(1))
                torch.testing.assert_close(h, squeeze(ref_h))


@pytest.mark.parametrize("proj_size", [0, 2])
@pytest.mark.parametrize(
    ("enforce_sorted", "lengths"),
    [(True, [5]), (False, [5]), (True, [10, 10, 6, 2, 2, 1, 1]), (False, [2, 1, 3, 2, 10, 5, 3])],
)
def test_variable_sequence(lib, proj_size, enforce_sorted, lengths):
    """test_variable_sequence: a packed batch (sorted or not, with or without a given state) equals running each
    sequence alone, outputs, final states and gradients."""
    torch.manual_seed(0)
    lstm = lib["LSTM"](3, 4, bidirectional=True, num_layers=2, proj_size=proj_size)
    lstm2 = copy.deepcopy(lstm)
    B, T, H = len(lengths), max(lengths), proj_size or 4
    x = torch.randn(T, B, 3, requires_grad=True)
    for given in (False, True):
        hx = (torch.randn(4, B, H), torch.randn(4, B, 4)) if given else None
        seq_outs, seq_h, seq_c = [], [], []
        for i, n in enumerate(lengths):
            h_i = None if hx is None else (hx[0][:, i : i + 1], hx[1][:, i : i + 1])
            out, (h, c) = lstm2(x[:n, i : i + 1], h_i)
            seq_outs.append(F.pad(out, (0, 0, 0, 0, 0, T - n)))
            seq_h.append(h)
            seq_c.append(c)
        packed_out, (h, c) = lstm(pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted), hx)
        unpacked, unpacked_len = pad_packed_sequence(packed_out)
        torch.testing.assert_close(unpacked, torch.cat(seq_outs, 1), atol=1e-5, rtol=0)
        torch.testing.assert_close(h, torch.cat(seq_h, 1), atol=1e-5, rtol=0)
        torch.testing.assert_close(c, torch.cat(seq_c, 1), atol=1e-5, rtol=0)
        assert unpacked_len.tolist() == lengths
    grads = torch.autograd.grad(unpacked.sum(), [x, *lstm.parameters()])
    ref = torch.autograd.grad(torch.cat(seq_outs, 1).sum(), [x, *lstm2.parameters()])
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r, atol=2e-4, rtol=0)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_non_contiguous_input_and_state(lib, kind):
    """test_modules.test_non_contiguous_tensors."""
    torch.manual_seed(0)
    rnn = lib[kind](4, 3, 2, bidirectional=True)
    x, h = torch.randn(5, 2, 4), torch.randn(4, 2, 3)
    hx = (h, h.clone()) if kind == "LSTM" else h

    def noncontig(t):
        return t.repeat_interleave(2, -1)[..., ::2]

    nx = noncontig(x)
    nhx = tuple(noncontig(t) for t in hx) if kind == "LSTM" else noncontig(hx)
    assert not nx.is_contiguous()
    torch.testing.assert_close(rnn(nx, nhx), rnn(x, hx))


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_grad_and_gradgrad(lib, kind):
    """test_LSTM_grad_and_gradgrad / test_GRU_grad_and_gradgrad, and test_modules.test_grad's one parameter at a
    time (float64)."""
    torch.manual_seed(0)
    for bias in (True, False):
        rnn = lib[kind](4, 4, bias=bias, dtype=torch.float64)
        x = torch.rand(1, 3, 4, dtype=torch.float64, requires_grad=True)

        def flat(inp, rnn=rnn):
            out, state = rnn(inp)
            return (out, *state) if kind == "LSTM" else (out, state)

        assert torch.autograd.gradcheck(flat, (x,), check_batched_grad=False)
        assert torch.autograd.gradgradcheck(flat, (x,), check_batched_grad=False)
    params = list(rnn.parameters())
    for p in params:
        for q in params:
            q.requires_grad_(q is p)
        assert torch.autograd.gradcheck(
            lambda w, p=p: torch.func.functional_call(rnn, {n: w for n, q in rnn.named_parameters() if q is p}, (x,))[
                0
            ],
            (p,),
        )
    for q in params:
        q.requires_grad_(True)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_retain_variables(lib, kind):
    """test_rnn_retain_variables: backward five times through one graph gives the same gradients."""
    torch.manual_seed(0)
    rnn = lib[kind](10, 20, num_layers=2, dtype=torch.float64)
    x = torch.randn(5, 6, 10, dtype=torch.float64, requires_grad=True)
    output = rnn(x)
    output[0].sum().backward(retain_graph=True)
    first = [t.grad.clone() for t in [x, *rnn.parameters()]]
    for _ in range(4):
        rnn.zero_grad()
        x.grad.zero_()
        output[0].sum().backward(retain_graph=True)
        for t, g in zip([x, *rnn.parameters()], first, strict=True):
            torch.testing.assert_close(t.grad, g, rtol=0, atol=0)


def test_differentiable_backward_through_twenty_layers(lib):
    """test_LSTM_differentiable_backward_using_oneDNN: a gradient of the input taken with create_graph, then
    differentiated again, with oneDNN on and off."""
    torch.manual_seed(0)
    lstm = lib["LSTM"](3, 3, 20, batch_first=True)
    x = torch.rand(10, 12, 3)
    results = []
    for mkldnn in (False, True):
        with torch.backends.mkldnn.flags(enabled=mkldnn):
            xi = x.clone().requires_grad_()
            out = lstm(xi)[0]
            (der,) = torch.autograd.grad(out, xi, torch.ones_like(out), create_graph=True)
            der.sum().backward()
            results.append((der.detach(), xi.grad))
    torch.testing.assert_close(results[0], results[1])


# -- module plumbing: weights by name, weight_norm, parametrizations, save, devices ------------------------


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_parameter_names_and_flat_weights_are_torch_s(kind):
    kwargs = {"proj_size": 2} if kind == "LSTM" else {}
    ours, theirs = (
        RNNKIT[kind](3, 4, 2, bidirectional=True, **kwargs),
        TORCH[kind](3, 4, 2, bidirectional=True, **kwargs),
    )
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours._parameters) == list(theirs._parameters)
    assert ours._flat_weights_names == theirs._flat_weights_names
    assert [[w.shape for w in ws] for ws in ours.all_weights] == [[w.shape for w in ws] for ws in theirs.all_weights]
    assert not list(ours.named_buffers()) and ours.state_dict().keys() == theirs.state_dict().keys()
    ours.flatten_parameters()  # exists; a no-op off CUDA


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("LSTM", {}),
        ("LSTM", {"proj_size": 3, "num_layers": 2, "bidirectional": True}),
        ("GRU", {"num_layers": 2, "bias": False, "batch_first": True, "dropout": 0.5}),
        ("RNN", {}),
    ],
)
def test_repr_is_torch_s(kind, kwargs):
    assert repr(RNNKIT[kind](4, 5, **kwargs)) == repr(TORCH[kind](4, 5, **kwargs))


@pytest.mark.parametrize("name", ["weight_ih_l0", "weight_hr_l0"])
def test_weight_norm(lib, name):
    """test_rnn_weight_norm: the normalised weight is a plain tensor in _flat_weights, and removal restores it."""
    kwargs = {"proj_size": 16} if name == "weight_hr_l0" else {}
    lstm = lib["LSTM"](32, 32, **kwargs)
    n_params = len(lstm._flat_weights)
    with pytest.warns(FutureWarning):  # torch.nn.utils.weight_norm is deprecated for parametrizations
        lstm = torch.nn.utils.weight_norm(lstm, name=name)
    assert sum(isinstance(p, nn.Parameter) for p in lstm._flat_weights) == n_params - 1
    lstm(torch.randn(3, 2, 32))
    lstm = torch.nn.utils.remove_weight_norm(lstm, name=name)
    assert sum(isinstance(p, nn.Parameter) for p in lstm._flat_weights) == n_params
    assert lstm._parameters[name] is not None and name in dict(lstm.named_parameters())
    assert name + "_g" not in dict(lstm.named_parameters()) and name + "_v" not in lstm._parameters


def _same_weights(kind, ours, **kwargs):
    torch.manual_seed(0)
    theirs = TORCH[kind](5, 6, 2, bidirectional=True, **kwargs)
    mine = ours(5, 6, 2, bidirectional=True, **kwargs)
    mine.load_state_dict(theirs.state_dict())
    return theirs, mine


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
@pytest.mark.parametrize("fused", ["auto", False], ids=["fused", "loop"])
@pytest.mark.parametrize(
    "apply",
    [
        lambda m: parametrizations.orthogonal(m, "weight_hh_l0_reverse"),
        lambda m: parametrizations.spectral_norm(m, "weight_hh_l1"),
        lambda m: parametrizations.weight_norm(m, "weight_ih_l0"),
    ],
    ids=["orthogonal", "spectral_norm", "weight_norm"],
)
def test_parametrizations_act_as_on_torch(kind, fused, apply):
    """A parametrized weight (by its torch name) gives torch.nn's outputs and gradients, on both paths."""
    theirs, mine = _same_weights(kind, lambda *a, **kw: RNNKIT[kind](*a, fused=fused, **kw))
    torch.manual_seed(1)
    apply(theirs)
    torch.manual_seed(1)
    apply(mine)
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    # eval: spectral_norm's power iteration runs at every read of the weight in training, and torch.nn.LSTM reads
    # it more than once per call (its _flat_weights check), so the two would see different iterates
    theirs.eval(), mine.eval()
    x = torch.randn(7, 3, 5)
    out_t, out_m = theirs(x)[0], mine(x)[0]
    torch.testing.assert_close(out_m, out_t, atol=1e-5, rtol=1e-5)
    grads_t = torch.autograd.grad(out_t.square().sum(), list(theirs.parameters()))
    grads_m = torch.autograd.grad(out_m.square().sum(), list(mine.parameters()))
    for a, b in zip(grads_m, grads_t, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


class _Symmetric(nn.Module):
    def forward(self, w):
        return w.triu() + w.triu(1).transpose(0, 1)


@pytest.mark.parametrize("fused", ["auto", False], ids=["fused", "loop"])
def test_own_parametrization(fused):
    """A user's parametrization (register_parametrization) on weight_hh_l0: the layer computes with it."""
    rnn = rnnkit.RNN(4, 4, fused=fused)
    torch.nn.utils.parametrize.register_parametrization(rnn, "weight_hh_l0", _Symmetric())
    assert torch.equal(rnn.weight_hh_l0, rnn.weight_hh_l0.T)
    x = torch.randn(3, 2, 4)
    reference = torch.nn.RNN(4, 4)
    reference.load_state_dict(
        {k.replace("parametrizations.", "").replace(".original", ""): v for k, v in rnn.state_dict().items()}
    )
    with torch.no_grad():
        reference.weight_hh_l0.copy_(rnn.weight_hh_l0)
    torch.testing.assert_close(rnn(x), reference(x))


@pytest.mark.parametrize("fused", ["auto", False], ids=["fused", "loop"])
def test_weight_drop_by_replacing_a_named_parameter(fused):
    """AWD-LSTM's WeightDrop: the raw weight is a new parameter and each forward puts a dropped copy under the old
    name; the layer computes with the dropped copy, as torch.nn.LSTM does."""

    def weight_drop(module):
        raw = module._parameters.pop("weight_hh_l0")
        module.register_parameter("weight_hh_l0_raw", nn.Parameter(raw.data))
        module.register_forward_pre_hook(lambda m, args: setattr(m, "weight_hh_l0", F.dropout(m.weight_hh_l0_raw, 0.5)))
        return module

    theirs, mine = _same_weights("LSTM", lambda *a, **kw: rnnkit.LSTM(*a, fused=fused, **kw))
    weight_drop(theirs), weight_drop(mine)
    assert "weight_hh_l0_raw" in dict(mine.named_parameters()) and "weight_hh_l0" not in dict(mine.named_parameters())
    x = torch.randn(4, 2, 5)
    torch.manual_seed(3)
    out_t = theirs(x)[0]
    torch.manual_seed(3)
    out_m = mine(x)[0]
    torch.testing.assert_close(out_m, out_t, atol=1e-5, rtol=1e-5)
    (grad,) = torch.autograd.grad(out_m.sum(), [mine.weight_hh_l0_raw])
    assert (grad == 0).float().mean() > 0.3  # the dropped entries get no gradient


def test_name_based_optimizer_groups():
    """Recipes that find recurrent weights by name (weight decay on weight_hh only) see torch's names."""
    model = rnnkit.LSTM(3, 4, 2)
    decay = [p for n, p in model.named_parameters() if n.startswith("weight_hh")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("weight_hh")]
    assert len(decay) == 2 and len(rest) == 6
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 0.1}, {"params": rest}], lr=0.1)
    model(torch.randn(2, 1, 3))[0].sum().backward()
    opt.step()


def test_deleted_weight_then_restored():
    """test_partial_flat_weights (CPU form): a deleted weight leaves a None in _flat_weights, .to() still works, and
    assigning the weight back gives the original output."""
    torch.manual_seed(0)
    for cls in (nn.LSTM, rnnkit.LSTM):
        m = cls(10, 6, 2)
        x = torch.randn(3, 2, 10)
        expected = m(x)[0]
        orig = m.weight_hh_l0
        del m.weight_hh_l0
        assert not hasattr(m, "weight_hh_l0") and "weight_hh_l0" in m._flat_weights_names
        m.to(torch.float32)
        assert m._flat_weights[1] is None
        m.weight_hh_l0 = orig
        torch.testing.assert_close(m(x)[0], expected)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_save_and_load(lib, kind):
    """test_modules.test_save_load: the whole module through torch.save, and the state_dict with weights_only."""
    torch.manual_seed(0)
    m = lib[kind](3, 4, 2)
    x = torch.randn(5, 2, 3)
    buffer = io.BytesIO()
    torch.save(m, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.load(buffer, weights_only=False)(x), m(x))
    buffer = io.BytesIO()
    torch.save(m.state_dict(), buffer)
    buffer.seek(0)
    fresh = lib[kind](3, 4, 2)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(fresh(x), m(x))


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_factory_kwargs_meta_device_and_to_empty(lib, kind):
    """test_factory_kwargs, test_device_ctx_init and test_to_empty."""
    m = lib[kind](3, 4, 2, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in m.parameters())
    with torch.device("meta"):
        meta = lib[kind](3, 4, 2, bidirectional=True)
    cpu = lib[kind](3, 4, 2, bidirectional=True)
    assert all(p.is_meta for p in meta.parameters())
    assert [(p.shape, p.stride(), p.dtype) for p in meta.parameters()] == [
        (p.shape, p.stride(), p.dtype) for p in cpu.parameters()
    ]
    meta.to_empty(device="cpu")
    assert all(isinstance(p, nn.Parameter) and p.device.type == "cpu" for p in meta.parameters())
    meta.reset_parameters()
    assert meta(torch.randn(2, 1, 3))[0].isfinite().all()


@pytest.mark.parametrize("swap", [False, True])
def test_to_keeps_parameters(lib, swap):
    """test_modules.test_to: half and back, float64; parameters stay the same Parameter objects."""
    m = lib["LSTM"](3, 4, 2)
    ids = [id(p) for p in m.parameters()]
    m(torch.randn(2, 1, 3))[0].sum().backward()
    previous = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(swap)
    try:
        m.to(dtype=torch.half).to(torch.float32).to(torch.float64)
    finally:
        torch.__future__.set_swap_module_params_on_conversion(previous)
    assert [id(p) for p in m.parameters()] == ids
    assert all(isinstance(p, nn.Parameter) and p.dtype == torch.float64 for p in m.parameters())
    assert m(torch.randn(2, 1, 3, dtype=torch.float64))[0].dtype == torch.float64


# -- torch's tools: compile, trace, export ---------------------------------------------------------------
# Most compile tests use the aot_eager backend: Dynamo's tracing and AOT autograd, which is what rnnkit's code must
# allow, without Inductor's C++ code generation (10-25 s a model on a cold cache here). One test uses Inductor.


@pytest.fixture
def dynamo():
    """A fresh torch.compile state: each test's models compile on their own (Dynamo recompiles a code object
    at most 8 times in a process, and rnnkit's layers share Recurrent.forward)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_default_compile_equals_eager_fused_and_loop(dynamo):
    """What a user types: torch.compile(model) with Inductor. The fused kernel runs between compiled parts."""
    torch.manual_seed(0)
    x = torch.randn(5, 2, 4)
    for m in (rnnkit.LSTM(4, 6, 2, bidirectional=True).eval(), rnnkit.GRU(4, 6, fused=False).eval()):
        torch.testing.assert_close(torch.compile(m)(x), m(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.LSTM(4, 6, 2, bidirectional=True),
        lambda: rnnkit.GRU(4, 6, fused=False),
        lambda: rnnkit.RNN(4, 6, nonlinearity="identity"),
        lambda: rnnkit.Recurrent("jordan", 4, 6, output_size=3),
    ],
    ids=["lstm-fused", "gru-loop", "rnn-identity-loop", "jordan"],
)
def test_compile_trace_and_export_equal_eager(make, dynamo):
    torch.manual_seed(0)
    m, x = make().eval(), torch.randn(5, 2, 4)
    expected = m(x)[0]
    torch.testing.assert_close(torch.compile(m, backend="aot_eager")(x)[0], expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(torch.jit.trace(m, (x,), check_trace=False)(x)[0], expected)
    torch.testing.assert_close(torch.export.export(m, (x,)).module()(x)[0], expected)


@pytest.mark.parametrize("cell", list(rnnkit.CELLS))
def test_every_cell_compiles_as_one_graph(cell, dynamo):
    """fullgraph=True on every cell's layer (stacked, bidirectional, padded with lengths): the fast paths that
    torch.compile cannot trace (the scan's in-place sweep, Clockwork's ticking by value) dispatch to the
    reference loop while compiling. Outputs and gradients equal eager."""
    torch.manual_seed(0)
    kwargs = {"output_size": 3} if cell == "jordan" else {}
    m = rnnkit.Recurrent(cell, 4, 8, num_layers=2, bidirectional=True, **kwargs)
    x, lengths = torch.randn(5, 2, 4), torch.tensor([5, 3])
    out = torch.compile(m, fullgraph=True, backend="aot_eager")(x, lengths=lengths)[0]
    expected = m(x, lengths=lengths)[0]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), list(m.parameters()))
    for a, b in zip(grads, torch.autograd.grad(expected.square().sum(), list(m.parameters())), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_compile_fullgraph_needs_the_loop_for_the_torch_classes(dynamo):
    """As with torch.nn.LSTM, fullgraph fails on the fused kernel; fused=False gives one graph."""
    x = torch.randn(5, 2, 4)
    with pytest.raises(Exception, match="_fused_outside_graph"):
        torch.compile(rnnkit.LSTM(4, 6), fullgraph=True, backend="aot_eager")(x)
    m = rnnkit.LSTM(4, 6, fused=False)
    torch.testing.assert_close(torch.compile(m, fullgraph=True, backend="aot_eager")(x), m(x))


# -- cells: torch.nn.RNNCell / LSTMCell / GRUCell's tests on rnnkit.torch_cells -----------------------------

TORCH_CELLS = {"RNNCell": nn.RNNCell, "GRUCell": nn.GRUCell, "LSTMCell": nn.LSTMCell}
RNNKIT_CELLS = {"RNNCell": torch_cells.RNNCell, "GRUCell": torch_cells.GRUCell, "LSTMCell": torch_cells.LSTMCell}


@pytest.fixture(params=["torch", "rnnkit"])
def cells(request):
    return TORCH_CELLS if request.param == "torch" else RNNKIT_CELLS


def _hx(kind, *shape):
    return (torch.randn(*shape), torch.randn(*shape)) if kind == "LSTMCell" else torch.randn(*shape)


@pytest.mark.parametrize("kind", ["RNNCell", "GRUCell", "LSTMCell"])
@pytest.mark.parametrize(
    ("x_shape", "h_shape", "error", "regex"),
    [
        ((3, 11), (3, 20), RuntimeError, "input has inconsistent input_size: got 11 expected 10"),
        ((3, 10), (3, 21), RuntimeError, "hidden0 has inconsistent hidden_size: got 21, expected 20"),
        ((3, 10), (5, 20), RuntimeError, "Input batch size 3 doesn't match hidden0 batch size 5"),
        ((1, 3, 10), (3, 20), ValueError, "Expected input to be 1D or 2D, got 3D instead"),
        ((3, 10), (1, 3, 1, 20), ValueError, r"Expected (hidden|hx\[0\]) to be 1D or 2D, got 4D instead"),
        ((3, 10), (1, 20), RuntimeError, "Input batch size 3 doesn't match hidden0 batch size 1"),  # no broadcasting
    ],
)
def test_cell_errors(cells, kind, x_shape, h_shape, error, regex):
    with pytest.raises(error, match=regex):
        cells[kind](10, 20)(torch.randn(x_shape), _hx(kind, *h_shape))


def test_lstm_cell_checks_c_too(cells):
    with pytest.raises(RuntimeError, match="hidden1 has inconsistent hidden_size: got 21, expected 20"):
        cells["LSTMCell"](10, 20)(torch.randn(3, 10), (torch.randn(3, 20), torch.randn(3, 21)))


@pytest.mark.parametrize("kind", ["RNNCell", "GRUCell", "LSTMCell"])
def test_cells_match_torch_batched_and_unbatched(kind):
    torch.manual_seed(0)
    theirs = TORCH_CELLS[kind](5, 10)
    mine = RNNKIT_CELLS[kind](5, 10)
    mine.load_state_dict(theirs.state_dict())
    assert repr(mine) == repr(theirs)
    x, hx = torch.randn(3, 5), _hx(kind, 3, 10)
    torch.testing.assert_close(mine(x, hx), theirs(x, hx))
    torch.testing.assert_close(mine(x), theirs(x))
    one = (hx[0][0], hx[1][0]) if kind == "LSTMCell" else hx[0]
    torch.testing.assert_close(mine(x[0], one), theirs(x[0], one))


def test_cell_sequences_and_options(cells):
    """test_RNN_cell, test_LSTM_cell (six steps, then backward, with and without bias); the third positional
    argument is bias; hidden_size 0 works; repr with options."""
    for bias in (True, False):
        for kind in ("RNNCell", "GRUCell"):
            cell, hx = cells[kind](10, 20, bias), torch.randn(3, 20)
            for _ in range(6):
                hx = cell(torch.randn(3, 10), hx)
            hx.sum().backward()
        lstm, (h, c) = cells["LSTMCell"](10, 20, bias=bias), (torch.randn(3, 20), torch.randn(3, 20))
        for _ in range(6):
            h, c = lstm(torch.randn(3, 10), (h, c))
        (h + c).sum().backward()
    assert cells["RNNCell"](10, 20, "relu").nonlinearity == "tanh"  # 'relu' is the bias argument here
    for kind in ("RNNCell", "GRUCell"):
        assert cells[kind](10, 0)(torch.randn(3, 10), torch.randn(3, 0)).shape == (3, 0)
    assert (
        repr(cells["RNNCell"](3, 4, bias=False, nonlinearity="relu")) == "RNNCell(3, 4, bias=False, nonlinearity=relu)"
    )


def test_cell_forward_does_not_read_training(cells):
    """test_modules.test_if_train_and_eval_modes_differ: the cells' forward is the same in both modes."""
    for kind in ("RNNCell", "GRUCell", "LSTMCell"):
        cell = cells[kind](5, 10)
        delattr(cell, "training")
        cell(torch.randn(5))


def test_lstm_cell_backward_from_one_output(cells):
    """test_lstmcell_backward_only_one_output_grad (float64)."""
    cell = cells["LSTMCell"](2, 3).double()
    s = torch.randn(1, 2, dtype=torch.float64, requires_grad=True)
    for i in range(2):
        cell(s)[i].sum().backward()
        assert s.grad is not None and s.grad.abs().sum() > 0
        s.grad = None


@pytest.mark.parametrize("kind", ["RNNCell", "GRUCell", "LSTMCell"])
def test_cell_gradcheck_and_compile(kind, dynamo):
    torch.manual_seed(0)
    cell = RNNKIT_CELLS[kind](3, 4, dtype=torch.float64)
    x, hx = torch.randn(2, 3, dtype=torch.float64, requires_grad=True), _hx(kind, 2, 4)
    hx = tuple(t.double().requires_grad_() for t in hx) if kind == "LSTMCell" else hx.double().requires_grad_()
    state = hx if kind == "LSTMCell" else (hx,)
    assert torch.autograd.gradcheck(lambda x, *s: cell(x, s if kind == "LSTMCell" else s[0]), (x, *state))
    compiled = torch.compile(cell, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, hx), cell(x, hx))


class _Counting(nn.Module):
    calls = 0

    def forward(self, w):
        _Counting.calls += 1
        return w


@pytest.mark.parametrize("fused", ["auto", False], ids=["fused", "loop"])
def test_a_forward_reads_a_parametrized_weight_once(fused):
    """Each read runs the parametrization (spectral_norm's power iteration in training): one per forward."""
    rnn = rnnkit.LSTM(3, 4, 2, fused=fused)
    torch.nn.utils.parametrize.register_parametrization(rnn, "weight_hh_l1", _Counting())
    _Counting.calls = 0
    rnn(torch.randn(5, 2, 3))
    assert _Counting.calls == 1
