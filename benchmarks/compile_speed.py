"""torch.compile on rnnkit's layers: compile time, and forward + backward speed compiled against eager.

    python benchmarks/compile_speed.py                  # batch 32, T 50, hidden 256, Inductor
    python benchmarks/compile_speed.py --steps 100 --backend aot_eager

Each row is one layer: its eager forward+backward (sum of the outputs), the seconds of the first compiled
call (tracing, AOT autograd and Inductor's code generation for forward and backward; Inductor's cache is a
fresh folder, so every model compiles cold), and the compiled median, interleaved with the eager one.
The reference-loop layers (``fused=False`` and the cells torch has no kernel for) unroll their loop into
one graph, so compile time grows with T; the fused rnnkit.LSTM runs torch's kernel between compiled parts,
as torch.compile does with torch.nn.LSTM (its row is the baseline). Writes results/compile_speed.json and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from common import fwd_bwd, interleaved_medians, machine, write_result
from torch import nn

import rnnkit


def cases(H: int) -> list[tuple[str, nn.Module]]:
    return [
        ("torch.nn.LSTM", nn.LSTM(H, H)),
        ("rnnkit.LSTM (fused)", rnnkit.LSTM(H, H)),
        ("rnnkit.LSTM (loop)", rnnkit.LSTM(H, H, fused=False)),
        ("rnnkit.GRU (loop)", rnnkit.GRU(H, H, fused=False)),
        ("rnnkit.RNN identity (loop)", rnnkit.RNN(H, H, nonlinearity="identity")),
        ("rnnkit.Jordan", rnnkit.Jordan(H, H, H)),
        ("rnnkit.SCRN", rnnkit.SCRN(H, H)),
        ("rnnkit.Clockwork", rnnkit.Clockwork(H, H)),
        ("rnnkit.MinGRU", rnnkit.MinGRU(H, H)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--backend", default="inductor")
    args = parser.parse_args()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="rnnkit-inductor-")  # every compile cold
    torch.manual_seed(0)
    B, T, H = args.batch, args.steps, args.hidden
    x = torch.randn(T, B, H)
    rows = []
    for name, layer in cases(H):
        torch._dynamo.reset()
        compiled = torch.compile(layer, backend=args.backend)
        start = time.perf_counter()
        fwd_bwd(compiled, x)()
        compile_s = time.perf_counter() - start
        with torch.no_grad():
            same = torch.allclose(compiled(x)[0], layer(x)[0], atol=1e-5, rtol=1e-4)
        med = interleaved_medians({"eager": fwd_bwd(layer, x), "compiled": fwd_bwd(compiled, x)}, args.repeats)
        tok = {k: B * T / v for k, v in med.items()}
        row = {"layer": name, "compile_s": round(compile_s, 1), "same_output": same}
        row |= {"eager_tok_s": round(tok["eager"]), "compiled_tok_s": round(tok["compiled"])}
        row["speedup"] = round(tok["compiled"] / tok["eager"], 3)
        rows.append(row)
        print(f"{name:28s} compile {compile_s:6.1f} s  eager {tok['eager']:9.0f}  compiled {tok['compiled']:9.0f}")
    info = machine() | {"batch": B, "steps": T, "hidden": H, "repeats": args.repeats, "backend": args.backend}
    path = write_result("compile_speed", {"setting": info, "rows": rows})
    print(f"\nwritten {path}\n")
    print(
        f"Forward+backward, batch {B}, T {T}, hidden {H}, backend {args.backend}, {info['cpu']}, "
        f"{info['torch_threads']} threads, torch {info['torch']}, {info['date']}; median of {args.repeats}.\n"
    )
    print("| layer | first compiled call (s) | eager tok/s | compiled tok/s | compiled / eager | same output |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows:
        cells = [r["layer"], f"{r['compile_s']:.1f}", f"{r['eager_tok_s']:,}", f"{r['compiled_tok_s']:,}"]
        print("| " + " | ".join([*cells, f"{r['speedup']:.2f}x", "yes" if r["same_output"] else "no"]) + " |")


if __name__ == "__main__":
    main()
