"""minGRU / minLSTM (parallel scan and step-by-step loop) against torch.nn.GRU / LSTM, forward + backward.

    python benchmarks/mingru_speed.py            # batch 16, hidden 256, T = 128, 512, 2048
    python benchmarks/mingru_speed.py --sweeps   # also: the scan's per-step and chunked sweeps by width

Interleaved runs in one process; medians. Issue 4's goal: minGRU at least 3x faster than nn.GRU at every
T, the parallel form never slower than the sequential one. Writes benchmarks/results/mingru_speed.json.
"""

from __future__ import annotations

import argparse
import math
from functools import partial

import torch
from common import interleaved_medians, machine, write_result
from torch import nn

import rnnkit
from rnnkit.cells.base import Cell
from rnnkit.scan import sweep, sweep_chunked


def sequential(cell: Cell, xs: torch.Tensor) -> torch.Tensor:
    """The step-by-step form (what generation runs), for comparison."""
    return Cell.sequence(cell, cell.project_inputs(xs), cell.initial_state(xs.shape[1]))[0]


def fwd_bwd(fn, params):
    def run() -> None:
        for p in params:
            p.grad = None
        fn().sum().backward()

    return run


def make_cases(x: torch.Tensor, H: int) -> dict:
    gru, lstm = nn.GRU(H, H), nn.LSTM(H, H)
    mingru, minlstm = rnnkit.MinGRU(H, H), rnnkit.MinLSTM(H, H)
    mingru_log = rnnkit.MinGRU(H, H, scan="log")
    return {
        "nn.GRU": fwd_bwd(lambda: gru(x)[0], list(gru.parameters())),
        "minGRU scan": fwd_bwd(lambda: mingru(x)[0], list(mingru.parameters())),
        "minGRU log-scan": fwd_bwd(lambda: mingru_log(x)[0], list(mingru_log.parameters())),
        "minGRU loop": fwd_bwd(lambda: sequential(mingru.cells[0], x), list(mingru.parameters())),
        "nn.LSTM": fwd_bwd(lambda: lstm(x)[0], list(lstm.parameters())),
        "minLSTM scan": fwd_bwd(lambda: minlstm(x)[0], list(minlstm.parameters())),
        "minLSTM loop": fwd_bwd(lambda: sequential(minlstm.cells[0], x), list(minlstm.parameters())),
    }


def sweeps(repeats: int, T: int = 2048) -> list[dict]:
    """Forward sweep of h_t = a_t h_{t-1} + b_t, step by step against chunked, by width (numbers a step):
    where choose_chunk's threshold comes from."""
    rows = []
    for width in (64, 256, 1024, 2048, 4096, 16384):
        args = (torch.rand(T, width), torch.rand(T, width), torch.zeros(width))
        fns = {"per step": partial(sweep, *args), "chunked": partial(sweep_chunked, *args, math.isqrt(T))}
        med = interleaved_medians(fns, repeats)
        rows.append({"T": T, "width": width} | {k: round(v * 1e3, 3) for k, v in med.items()})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sweeps", action="store_true", help="also time sweep vs sweep_chunked by step width")
    args = parser.parse_args()
    torch.manual_seed(0)
    B, H = args.batch, args.hidden
    rows = []
    for T in args.steps:
        fns = make_cases(torch.randn(T, B, H), H)
        med = interleaved_medians(fns, args.repeats, warmup=1)
        row = {"T": T} | {k: round(v * 1e3, 2) for k, v in med.items()}
        row |= {"speedup_minGRU_vs_GRU": round(med["nn.GRU"] / med["minGRU scan"], 2)}
        row |= {"speedup_minLSTM_vs_LSTM": round(med["nn.LSTM"] / med["minLSTM scan"], 2)}
        rows.append(row)
        print(row, flush=True)
    result = {"setting": machine() | {"batch": B, "hidden": H, "repeats": args.repeats}, "rows_ms": rows}
    if args.sweeps:
        result["sweeps_ms"] = sweeps(args.repeats)
    path = write_result("mingru_speed", result)
    print(f"written {path}")


if __name__ == "__main__":
    main()
