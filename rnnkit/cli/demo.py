"""``rnnkit demo``: a short tour of the cells and layers (the language-model issue replaces it).

It reproduces the tutorials' two hand-worked examples with real rnnkit modules, then trains a tanh Elman
RNN, a GRU and an LSTM on the adding problem for a few seconds each, so the gap between plain and gated
cells is visible on the first run.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import rnnkit


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="a short tour: hand-worked examples, then three cells on the adding problem",
        description=__doc__,
        epilog="example: rnnkit demo --seconds 10",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=20.0, help="training time per cell (default 20)")
    p.add_argument("--steps", type=int, default=50, help="adding-problem sequence length (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    elman_example()
    lstm_memory_example()
    adding_race(args.steps, args.seconds)
    return 0


def elman_example() -> None:
    """2 linear hidden units, 2 linear outputs, every weight 1, every bias 0."""
    cell = rnnkit.ElmanCell(2, 2, nonlinearity="identity")
    readout = nn.Linear(2, 2)
    for p in [*cell.parameters(), *readout.parameters()]:
        nn.init.constant_(p, 1.0 if p.dim() == 2 else 0.0)
    print("Elman network, every weight 1 (the tutorial's example):")
    for order in ([1, 1, 2], [2, 1, 1]):
        x = torch.tensor([[v, v] for v in order], dtype=torch.float32).unsqueeze(1)  # (T, 1, 2)
        h, _ = rnnkit.Recurrent(cell)(x)
        with torch.no_grad():
            y = readout(h)
        print(
            f"  inputs {[[v, v] for v in order]} -> hidden {h.squeeze(1).tolist()} -> outputs {y.squeeze(1).tolist()}"
        )


def lstm_memory_example() -> None:
    """A one-unit linear LSTM that writes, holds, reads and clears one number."""
    cell = rnnkit.LSTMCell(3, 1, activation="identity")
    with torch.no_grad():
        cell.weight_hh.zero_()
        cell.bias_hh.zero_()
        # rows: i, f, g, o; columns: x1, x2, x3
        cell.weight_ih.copy_(torch.tensor([[0, 100, 0], [0, 100, 0], [1, 0, 0], [0, 0, 100]], dtype=torch.float32))
        cell.bias_ih.copy_(torch.tensor([-10, 10, 0, -10], dtype=torch.float32))
    xs = torch.tensor([[3, 1, 0], [4, 1, 0], [2, 0, 0], [1, 0, 1], [3, -1, 0]], dtype=torch.float32)
    _, _, steps = rnnkit.Recurrent(cell)(xs.unsqueeze(1), return_steps=True)
    print("One-unit LSTM memory (x2=1 writes x1, x2=-1 clears, x3=1 reads):")
    print(f"  memory  {[round(v, 2) for v in steps.c.flatten().tolist()]}")
    print(f"  outputs {[round(v, 2) for v in steps.h.flatten().tolist()]}")


def adding_batch(batch: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem: sum the two numbers marked by a 1 in the second channel."""
    values = torch.rand(batch, steps)
    marks = torch.zeros(batch, steps)
    first = torch.randint(0, steps // 2, (batch,))
    second = torch.randint(steps // 2, steps, (batch,))
    marks[torch.arange(batch), first] = 1.0
    marks[torch.arange(batch), second] = 1.0
    return torch.stack([values, marks], dim=-1), (values * marks).sum(1, keepdim=True)


def adding_race(steps: int, seconds: float) -> None:
    print(f"\nAdding problem, T={steps}, {seconds:g} s of Adam per cell (always answering 1 scores MSE 0.167):")
    x_test, y_test = adding_batch(1000, steps)
    for name, layer in [
        ("tanh RNN", rnnkit.RNN(2, 64, batch_first=True)),
        ("GRU", rnnkit.GRU(2, 64, batch_first=True)),
        ("LSTM", rnnkit.LSTM(2, 64, batch_first=True, forget_bias=1.0)),
    ]:
        head = nn.Linear(64, 1)
        params = [*layer.parameters(), *head.parameters()]
        opt = torch.optim.Adam(params, lr=3e-3)
        start, updates = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            x, y = adding_batch(64, steps)
            loss = nn.functional.mse_loss(head(layer(x)[0][:, -1]), y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            updates += 1
        with torch.no_grad():
            mse = nn.functional.mse_loss(head(layer(x_test)[0][:, -1]), y_test).item()
        print(f"  {name:9s} {updates:5d} updates  test MSE {mse:.4f}")
