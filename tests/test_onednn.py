"""rnnkit.onednn: the reference loop's wide products through oneDNN give the plain loop's outputs and gradients."""

import pytest
import torch
import torch.nn.functional as F

import rnnkit
from rnnkit import onednn
from rnnkit.onednn import OneDNNMatrix

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch was built without oneDNN")


@pytest.fixture(autouse=True)
def onednn_wherever_wide(monkeypatch):
    """The oneDNN path as on a CPU where it is the faster library (on Intel's, small matrices stay with MKL)."""
    monkeypatch.setattr(onednn, "mkl_is_fast", lambda: False)


def test_where_mkl_is_faster_only_matrices_of_512_inputs_or_more_take_onednn(monkeypatch, calls):
    monkeypatch.setattr(onednn, "mkl_is_fast", lambda: True)
    rnnkit.LSTM(16, 16, fused=False)(torch.randn(5, 10, 16))
    assert calls[0] == 0
    w = torch.randn(4 * onednn.MKL_MIN_INPUTS, onednn.MKL_MIN_INPUTS)
    assert onednn._wide(w) and not onednn._wide(w[:, :-1][: 4 * (onednn.MKL_MIN_INPUTS - 1)])


@pytest.fixture
def calls(monkeypatch):
    """How many products went through oneDNN."""
    count = [0]
    forward = onednn._OneDNNLinear.forward

    def counted(ctx, *args):
        count[0] += 1
        return forward(ctx, *args)

    monkeypatch.setattr(onednn._OneDNNLinear, "forward", staticmethod(counted))
    return count


def outputs_and_grads(layer, x, lengths=None, *, enabled=True):
    layer.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    with torch.backends.mkldnn.flags(enabled=enabled):
        out, state = layer(x, lengths=lengths)
        (out.square().sum() + sum(s.square().sum() for s in state)).backward()
    return [out, *state, x.grad, *(p.grad for p in layer.parameters())]


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.LSTM(12, 16, num_layers=2, bidirectional=True, fused=False),
        lambda: rnnkit.LSTM(12, 16, recurrent_activation="hard_sigmoid", activation="relu"),
        lambda: rnnkit.LSTM(12, 16, residual=False, fused=False, proj_size=8),
    ],
    ids=["bidirectional-2-layer-loop", "hard-sigmoid-relu", "projection"],
)
def test_lstm_loops_through_onednn_equal_the_plain_loop(make, calls):
    torch.manual_seed(0)
    layer = make()
    x, lengths = torch.randn(9, 10, 12), torch.tensor([9, 3, 9, 1, 5, 9, 2, 7, 9, 4])
    fast = outputs_and_grads(layer, x, lengths)
    assert calls[0] > 0
    calls[0] = 0
    plain = outputs_and_grads(layer, x, lengths, enabled=False)
    assert calls[0] == 0
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_only_wide_float32_products_of_enough_rows_take_onednn(calls):
    torch.manual_seed(0)
    for layer in (rnnkit.GRU(16, 16, fused=False), rnnkit.Jordan(16, 16, 16), rnnkit.RNN(16, 16, fused=False)):
        layer(torch.randn(5, 10, 16))  # square or 3H x H: measured slower through oneDNN
    assert calls[0] == 0
    lstm = rnnkit.LSTM(16, 16, fused=False)
    lstm(torch.randn(5, 4, 16))  # batch 4: too few rows
    lstm.double()(torch.randn(5, 10, 16, dtype=torch.float64))  # float64: oneDNN's product is float32
    assert calls[0] == 0
    with rnnkit.bptt.reference_loop():
        lstm.float()(torch.randn(5, 10, 16))
    assert calls[0] == 1 + 5  # the input projection, then one recurrent product per step
    lstm(torch.randn(5, 10, 16))  # rnnkit.bptt's loop: its recurrent products read the packed weight directly
    assert calls[0] == 1 + 5 + 1


def test_a_onednn_matrix_sends_every_gradient_to_its_parameter():
    torch.manual_seed(0)
    w = torch.randn(40, 10, requires_grad=True)
    b = torch.randn(40, requires_grad=True)
    x = torch.randn(8, 10, requires_grad=True)
    m = OneDNNMatrix(w, 8)
    (F.linear(x, m, b).square().sum() + (m * 3).sum()).backward()  # oneDNN's product, and any other op
    got = (w.grad.clone(), b.grad.clone(), x.grad.clone())
    w.grad = b.grad = x.grad = None
    (F.linear(x, w, b).square().sum() + (w * 3).sum()).backward()
    for a, e in zip(got, (w.grad, b.grad, x.grad), strict=True):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-4)
    assert type(m * 3) is torch.Tensor
