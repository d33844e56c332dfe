"""Forward + backward speed of rnnkit's layers against torch.nn's, measured in one run.

    python benchmarks/speed_layers.py                 # batch 32, T 100, hidden 256 (the issue's setting)
    python benchmarks/speed_layers.py --hidden 512 --repeats 21
    python benchmarks/speed_layers.py --only SCRN Jordan      # the rows whose name contains one of these (printed,
                                                              # results/speed_layers.json left as it was)

Each row times one forward and backward pass (sum of the outputs) of an rnnkit layer and of its torch.nn
baseline, interleaved, and reports median tokens/s (batch * T / time) and the ratio rnnkit / torch.
Rows marked "loop" force rnnkit's loop (``fused=False``): the speed a custom cell gets; for Elman, SCRN, LSTM
and Jordan cells that loop backpropagates by hand (rnnkit.bptt), and the "reference loop" rows run autograd
through every step instead (:func:`rnnkit.bptt.reference_loop`), to show what that gains; "Python elementwise"
runs the LSTM loop's per-step elementwise work as torch operations instead of rnnkit.native's kernels.
Targets (foundation issue): RNN/LSTM/GRU >= 0.9x torch.nn; Jordan >= 0.5x torch.nn.RNN. SCRN and Clockwork
(issue 4) are reported next to torch.nn.RNN at the same hidden size.
Writes benchmarks/results/speed_layers.json and prints a markdown table for the README.
"""

from __future__ import annotations

import argparse

import torch
from common import PythonElementwise, ReferenceLoop, RNNWithReadout, fwd_bwd, interleaved_medians, machine, write_result
from torch import nn

import rnnkit


def cases(size: int) -> list[tuple[str, nn.Module, str, nn.Module, float | None]]:
    """(rnnkit name, rnnkit layer, baseline name, baseline layer, target ratio)."""
    H = size
    lstm, lstm_loop = nn.LSTM(H, H), rnnkit.LSTM(H, H, fused=False)
    return [
        ("rnnkit.LSTM", rnnkit.LSTM(H, H), "torch.nn.LSTM", nn.LSTM(H, H), 0.9),
        ("rnnkit.GRU", rnnkit.GRU(H, H), "torch.nn.GRU", nn.GRU(H, H), 0.9),
        ("rnnkit.RNN", rnnkit.RNN(H, H), "torch.nn.RNN", nn.RNN(H, H), 0.9),
        ("rnnkit.Jordan", rnnkit.Jordan(H, H, H), "torch.nn.RNN", nn.RNN(H, H), 0.5),
        ("rnnkit.SCRN", rnnkit.SCRN(H, H), "torch.nn.RNN", nn.RNN(H, H), None),  # context 40 beside H
        ("rnnkit.Clockwork", rnnkit.Clockwork(H, H), "torch.nn.RNN", nn.RNN(H, H), None),  # periods 1, 2, 4, 8
        ("rnnkit.Jordan", rnnkit.Jordan(H, H, H), "torch.nn.RNN + Linear", RNNWithReadout(H, H, H), None),
        ("rnnkit.Jordan (reference loop)", ReferenceLoop(rnnkit.Jordan(H, H, H)), "torch.nn.RNN", nn.RNN(H, H), None),
        ("rnnkit.LSTM (loop)", rnnkit.LSTM(H, H, fused=False), "torch.nn.LSTM", nn.LSTM(H, H), None),
        (
            "rnnkit.LSTM (hard_sigmoid)",
            rnnkit.LSTM(H, H, recurrent_activation="hard_sigmoid"),
            "torch.nn.LSTM",
            lstm,
            None,
        ),
        ("rnnkit.LSTM (loop, Python elementwise)", PythonElementwise(lstm_loop), "torch.nn.LSTM", lstm, None),
        ("rnnkit.LSTM (reference loop)", ReferenceLoop(rnnkit.LSTM(H, H, fused=False)), "torch.nn.LSTM", lstm, None),
        ("rnnkit.GRU (loop)", rnnkit.GRU(H, H, fused=False), "torch.nn.GRU", nn.GRU(H, H), None),
        ("rnnkit.RNN (loop)", rnnkit.RNN(H, H, fused=False), "torch.nn.RNN", nn.RNN(H, H), None),
        (
            "rnnkit.RNN (reference loop)",
            ReferenceLoop(rnnkit.RNN(H, H, fused=False)),
            "torch.nn.RNN",
            nn.RNN(H, H),
            None,
        ),
        ("rnnkit.SCRN (reference loop)", ReferenceLoop(rnnkit.SCRN(H, H)), "torch.nn.RNN", nn.RNN(H, H), None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", nargs="+", metavar="TEXT", help="only the layers whose name contains one of these")
    args = parser.parse_args()
    names = list(dict.fromkeys(name for name, *_ in cases(args.hidden)))
    if args.only and not any(text in name for name in names for text in args.only):
        known = ", ".join(names)
        parser.exit(2, f"speed_layers.py: --only {' '.join(args.only)} names no layer; the layers: {known}\n")
    torch.manual_seed(0)
    B, T, H = args.batch, args.steps, args.hidden
    x = torch.randn(T, B, H)
    rows = []
    for name, layer, base_name, base, target in cases(H):
        if args.only and not any(text in name for text in args.only):
            continue
        med = interleaved_medians({"rnnkit": fwd_bwd(layer, x), "torch": fwd_bwd(base, x)}, args.repeats)
        tok = {k: B * T / v for k, v in med.items()}
        ratio = tok["rnnkit"] / tok["torch"]
        rows.append(
            {
                "layer": name,
                "baseline": base_name,
                "rnnkit_tok_s": round(tok["rnnkit"]),
                "torch_tok_s": round(tok["torch"]),
                "ratio": round(ratio, 3),
                "target": target,
                "met": None if target is None else ratio >= target,
            }
        )
        print(f"{name:20s} {tok['rnnkit']:9.0f} tok/s   {base_name:14s} {tok['torch']:9.0f} tok/s   {ratio:.2f}x")
    info = machine() | {"batch": B, "steps": T, "hidden": H, "repeats": args.repeats}
    if args.only:  # a subset does not replace the full table's results
        print("\n(--only: benchmarks/results/speed_layers.json left as it was)\n")
    else:
        path = write_result("speed_layers", {"setting": info, "rows": rows})
        print(f"\nwritten {path}\n")
    print(
        f"Forward+backward, batch {B}, T {T}, hidden {H}, {info['cpu']}, {info['torch_threads']} threads, "
        f"torch {info['torch']}, {info['date']}; median of {args.repeats} interleaved runs.\n"
    )
    print("| layer | baseline | rnnkit tok/s | baseline tok/s | ratio | target |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        target = "" if r["target"] is None else f">= {r['target']}"
        cells = [r["layer"], r["baseline"], f"{r['rnnkit_tok_s']:,}", f"{r['torch_tok_s']:,}", f"{r['ratio']:.2f}x"]
        print("| " + " | ".join([*cells, target]) + " |")


if __name__ == "__main__":
    main()
