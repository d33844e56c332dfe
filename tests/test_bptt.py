"""Backpropagation through time written out by hand in NumPy for a 3-step tanh Elman RNN with a linear
readout, against autograd, in float64."""

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit


def bptt(W, U, b_ih, b_hh, V, c, xs, h0, targets, every_step):
    """Forward and backward by hand. xs (T, B, I); loss = 1/2 sum of squared errors (every step or the last)."""
    T = xs.shape[0]
    hs, ys = [h0], []
    for t in range(T):
        hs.append(np.tanh(xs[t] @ W.T + b_ih + hs[-1] @ U.T + b_hh))
        ys.append(hs[-1] @ V.T + c)
    loss = sum(0.5 * np.sum((ys[t] - targets[t]) ** 2) for t in range(T) if every_step or t == T - 1)
    grads = {k: np.zeros_like(v) for k, v in {"W": W, "U": U, "b_ih": b_ih, "b_hh": b_hh, "V": V, "c": c}.items()}
    dh_next = np.zeros_like(h0)
    for t in reversed(range(T)):
        dy = ys[t] - targets[t] if every_step or t == T - 1 else np.zeros_like(ys[t])
        grads["V"] += dy.T @ hs[t + 1]
        grads["c"] += dy.sum(0)
        dh = dy @ V + dh_next
        da = dh * (1 - hs[t + 1] ** 2)  # tanh' = 1 - tanh^2
        grads["W"] += da.T @ xs[t]
        grads["U"] += da.T @ hs[t]
        grads["b_ih"] += da.sum(0)
        grads["b_hh"] += da.sum(0)
        dh_next = da @ U
    grads["h0"] = dh_next
    return loss, np.stack(hs[1:]), grads


@pytest.mark.parametrize("every_step", [True, False], ids=["every-step", "last-step"])
def test_hand_bptt_matches_autograd(every_step):
    torch.manual_seed(0)
    T, B, I, H, O = 3, 2, 2, 3, 2
    cell = rnnkit.ElmanCell(I, H, dtype=torch.float64)
    readout = nn.Linear(H, O, dtype=torch.float64)
    xs = torch.randn(T, B, I, dtype=torch.float64)
    targets = torch.randn(T, B, O, dtype=torch.float64)
    h0 = torch.randn(1, B, H, dtype=torch.float64, requires_grad=True)

    hs, _ = rnnkit.Recurrent(cell)(xs, rnnkit.ElmanState(h0))
    ys = readout(hs)
    err = (ys - targets) if every_step else (ys - targets)[-1:]
    loss = 0.5 * err.square().sum()
    loss.backward()

    n = {k: v.detach().numpy() for k, v in dict(cell.named_parameters()).items()}
    np_loss, np_hs, g = bptt(
        n["weight_ih"],
        n["weight_hh"],
        n["bias_ih"],
        n["bias_hh"],
        readout.weight.detach().numpy(),
        readout.bias.detach().numpy(),
        xs.numpy(),
        h0.detach().numpy()[0],
        targets.numpy(),
        every_step,
    )
    np.testing.assert_allclose(np_hs, hs.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert np_loss == pytest.approx(loss.item(), rel=1e-12)
    pairs = {
        "W": cell.weight_ih.grad,
        "U": cell.weight_hh.grad,
        "b_ih": cell.bias_ih.grad,
        "b_hh": cell.bias_hh.grad,
        "V": readout.weight.grad,
        "c": readout.bias.grad,
        "h0": h0.grad[0],
    }
    for name, autograd in pairs.items():
        np.testing.assert_allclose(g[name], autograd.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
        assert np.abs(g[name]).max() > 1e-3, name  # every gradient is really exercised


def test_last_step_loss_ignores_earlier_targets():
    """With the loss on the last step only, the earlier targets have no gradient path: changing them
    leaves every gradient unchanged, while with the loss on every step it does not."""
    rng = np.random.default_rng(0)
    W, U, V = rng.normal(size=(3, 2)), rng.normal(size=(3, 3)), rng.normal(size=(2, 3))
    b, c = rng.normal(size=3), rng.normal(size=2)
    xs, h0, targets = rng.normal(size=(3, 1, 2)), np.zeros((1, 3)), rng.normal(size=(3, 1, 2))
    other = targets.copy()
    other[:2] += 5.0
    _, _, g1 = bptt(W, U, b, b, V, c, xs, h0, targets, every_step=False)
    _, _, g2 = bptt(W, U, b, b, V, c, xs, h0, other, every_step=False)
    _, _, g3 = bptt(W, U, b, b, V, c, xs, h0, other, every_step=True)
    _, _, g4 = bptt(W, U, b, b, V, c, xs, h0, targets, every_step=True)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])
    assert not np.allclose(g3["W"], g4["W"])
