"""Every speed benchmark in one run (``make bench``): one JSON and one Markdown table, with date, machine and torch.

    python benchmarks/suite.py                  # the full suite, about 4 minutes on 2 cores
    python benchmarks/suite.py --quick          # small sizes and few repeats: checks that everything runs
    python benchmarks/suite.py --only layers generation

Sections, each measured interleaved against its baseline in the same process, so that machine drift hits both:

- **layers**: forward and forward+backward tokens/s of each rnnkit layer beside torch.nn's (batch 32, T 100, hidden
  256 and 512), and the GFLOP/s each achieves as a fraction of this machine's sgemm peak (the faster of torch.mm
  and oneDNN's product of two 2048 x 2048 float32 matrices, measured first): the distance to the physical limit.
  A layer's forward does 2 FLOPs per weight-matrix entry per token (its matrix-vector products; elementwise work
  is not counted), and forward + backward three times that (the gradients of the inputs and of the weights each
  cost a forward).
- **lm_train**: ``rnnkit lm train``'s training loop (``Trainer.fit``: checkpoint, log, checks) against the plain
  PyTorch loop of pytorch/examples' word_language_model, same 2 x 200 LSTM, same batches (random ids over 10,000
  words: speed does not depend on the text).
- **generation**: batch-1 sampling tokens/s, every cell through ``LanguageModel.stepper()`` (what ``rnnkit lm
  sample`` runs) and the LSTM through the model's own forward, against torch.nn.LSTM stepped by hand
  (2 x 512, 10,000 words; see benchmarks/generation_speed.py).
- **serve**: requests/s of ``rnnkit serve`` with micro-batching and one request at a time, 32 clients
  (benchmarks/serve_load.py, run as its own process).
- **memory**: the peak resident memory one training step adds, full backpropagation through time against
  truncated BPTT (chunks of 100), on one 10,000-step sequence (LSTM, hidden 256, batch 1), each in a fresh
  process (Linux's high-water mark, reset after the imports).

Writes benchmarks/results/bench.json and benchmarks/results/bench.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.utils.mkldnn as mkldnn_utils
from common import RESULTS, ReferenceLoop, RNNWithReadout, interleaved_medians, machine, write_result
from generation_speed import plain_lstm, rnnkit_sampler
from lm_speed import plain_round, rnnkit_round
from torch import nn

import rnnkit
from rnnkit.cells import CELLS
from rnnkit.data import StreamBatches
from rnnkit.tasks.lm import LanguageModel, LMConfig

HERE = Path(__file__).resolve().parent


def sgemm_peak(size: int = 2048, repeats: int = 7) -> float:
    """GFLOP/s of a float32 matrix product at this process's torch threads, the faster of torch.mm (MKL) and
    oneDNN's (what torch's fused RNN kernels use): the machine's practical peak. On an AVX-512 AMD CPU the two
    differ by 2x (measured 2026-12-03 on 2 Zen 5 cores: 200 against 440 GFLOP/s), and the fused LSTM runs above
    the first, so the first alone is not a ceiling."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    fns = {"mm": lambda: torch.mm(a, b)}
    if torch.backends.mkldnn.is_available():
        linear = mkldnn_utils.to_mkldnn(nn.Linear(size, size, bias=False).eval())
        x = a.to_mkldnn()

        def onednn() -> None:
            with torch.no_grad():
                linear(x)

        fns["onednn"] = onednn
    seconds = min(interleaved_medians(fns, repeats, warmup=2).values())
    return 2 * size**3 / seconds / 1e9


def forward_flops(layer: nn.Module) -> int:
    """FLOPs per token of one forward pass: two per entry of every weight matrix (module docstring)."""
    return sum(2 * p.numel() for p in layer.parameters() if p.dim() == 2)


def layer_cases(H: int) -> list[tuple[str, nn.Module, str, nn.Module]]:
    rnn, lstm, gru = nn.RNN(H, H), nn.LSTM(H, H), nn.GRU(H, H)
    return [
        ("rnnkit.LSTM", rnnkit.LSTM(H, H), "torch.nn.LSTM", lstm),
        ("rnnkit.GRU", rnnkit.GRU(H, H), "torch.nn.GRU", gru),
        ("rnnkit.RNN", rnnkit.RNN(H, H), "torch.nn.RNN", rnn),
        ("rnnkit.LSTM (loop)", rnnkit.LSTM(H, H, fused=False), "torch.nn.LSTM", lstm),
        ("rnnkit.LSTM (hard_sigmoid)", rnnkit.LSTM(H, H, recurrent_activation="hard_sigmoid"), "torch.nn.LSTM", lstm),
        ("rnnkit.LSTM (reference loop)", ReferenceLoop(rnnkit.LSTM(H, H, fused=False)), "torch.nn.LSTM", lstm),
        ("rnnkit.GRU (loop)", rnnkit.GRU(H, H, fused=False), "torch.nn.GRU", gru),
        ("rnnkit.RNN (loop)", rnnkit.RNN(H, H, fused=False), "torch.nn.RNN", rnn),
        ("rnnkit.Jordan", rnnkit.Jordan(H, H, H), "torch.nn.RNN", rnn),
        ("rnnkit.Jordan", rnnkit.Jordan(H, H, H), "torch.nn.RNN + Linear", RNNWithReadout(H, H, H)),
        ("rnnkit.Jordan (reference loop)", ReferenceLoop(rnnkit.Jordan(H, H, H)), "torch.nn.RNN", rnn),
        ("rnnkit.SCRN", rnnkit.SCRN(H, H), "torch.nn.RNN", rnn),
        ("rnnkit.Clockwork", rnnkit.Clockwork(H, H), "torch.nn.RNN", rnn),
        ("rnnkit.MinGRU", rnnkit.MinGRU(H, H), "torch.nn.GRU", gru),
        ("rnnkit.MinLSTM", rnnkit.MinLSTM(H, H), "torch.nn.LSTM", lstm),
    ]


def layers(args: argparse.Namespace, peak: float) -> list[dict]:
    rows = []
    B, T = args.batch, args.steps
    for H in args.hidden:
        torch.manual_seed(0)
        x = torch.randn(T, B, H)
        for name, layer, base_name, base in layer_cases(H):
            for mode in ("forward", "forward+backward"):
                fns = {"rnnkit": _timed(layer, x, mode), "torch": _timed(base, x, mode)}
                seconds = interleaved_medians(fns, args.repeats)
                flops = {
                    k: forward_flops(m) * B * T * (3 if mode != "forward" else 1)
                    for k, m in (("rnnkit", layer), ("torch", base))
                }
                row = {"hidden": H, "mode": mode, "layer": name, "baseline": base_name}
                for k in ("rnnkit", "torch"):
                    row[f"{k}_tok_s"] = round(B * T / seconds[k])
                    row[f"{k}_gflop_s"] = round(flops[k] / seconds[k] / 1e9, 2)
                    row[f"{k}_of_peak"] = round(flops[k] / seconds[k] / 1e9 / peak, 3)
                row["ratio"] = round(row["rnnkit_tok_s"] / row["torch_tok_s"], 3)
                rows.append(row)
                print(
                    f"  H{H} {mode:16s} {name:28s} {row['rnnkit_tok_s']:>9,} tok/s  {row['ratio']:.2f}x {base_name}",
                    flush=True,
                )
    return rows


def _timed(layer: nn.Module, x: torch.Tensor, mode: str):
    def forward() -> None:
        with torch.no_grad():
            layer(x)

    def forward_backward() -> None:
        layer.zero_grad(set_to_none=True)
        layer(x)[0].sum().backward()

    return forward if mode == "forward" else forward_backward


def lm_train(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    vocab, steps = 10_000, args.lm_steps
    batches = StreamBatches(torch.randint(0, vocab, (20 * 20 * (steps + 1),)), 20, 20)
    times: dict[str, list[float]] = {"plain": [], "rnnkit": []}
    for _ in range(args.rounds):
        times["plain"].append(plain_round(batches, vocab, 200, steps))
        times["rnnkit"].append(rnnkit_round(batches, vocab, 200, steps))
    tok = {k: 20 * 20 * steps / sorted(v)[len(v) // 2] for k, v in times.items()}
    row = {"plain_tok_s": round(tok["plain"]), "rnnkit_tok_s": round(tok["rnnkit"])}
    row["ratio"] = round(tok["rnnkit"] / tok["plain"], 3)
    print(
        f"  plain PyTorch {row['plain_tok_s']:,} tok/s, rnnkit lm train {row['rnnkit_tok_s']:,} ({row['ratio']:.2f}x)"
    )
    return row


def generation(args: argparse.Namespace) -> dict:
    H, V, n = args.gen_hidden, args.gen_vocab, args.tokens
    fns = {"torch.nn.LSTM": plain_lstm(V, H, 2, n)}
    for cell in args.cells:
        torch.manual_seed(0)
        model = LanguageModel(V, LMConfig(cell=cell, hidden=H, layers=2)).eval()
        fns[f"{cell} stepper"] = rnnkit_sampler(model, True, n)
        if cell == "lstm":
            fns["lstm model.step"] = rnnkit_sampler(model, False, n)
    seconds = interleaved_medians(fns, args.repeats, warmup=1)
    base = n / seconds["torch.nn.LSTM"]
    rows = {
        name: {"tokens_per_s": round(n / s, 1), "vs_torch_lstm": round(n / s / base, 2)} for name, s in seconds.items()
    }
    for name, r in rows.items():
        print(f"  {name:20s} {r['tokens_per_s']:8.1f} tokens/s  {r['vs_torch_lstm']:.2f}x torch.nn.LSTM")
    return {"hidden": H, "vocab": V, "tokens": n, "rows": rows}


def serve(args: argparse.Namespace) -> dict | None:
    script = HERE / "serve_load.py"
    if not script.exists():
        print("  benchmarks/serve_load.py is missing: skipped")
        return None
    command = [sys.executable, str(script), *args.serve_args]
    print("  " + " ".join(command), flush=True)
    subprocess.run(command, check=True)
    return json.loads((RESULTS / "serve_load.json").read_text())


def memory(args: argparse.Namespace) -> dict:
    result = {"steps": args.memory_steps, "hidden": 256, "chunk": 100}
    for mode in ("full", "truncated"):
        out = subprocess.run(
            [sys.executable, __file__, "--child-memory", mode, "--memory-steps", str(args.memory_steps)],
            check=True,
            capture_output=True,
            text=True,
        )
        result[f"{mode}_mb"] = round(float(out.stdout.strip()), 1)
    print(f"  full BPTT {result['full_mb']:.0f} MB, truncated (chunks of 100) {result['truncated_mb']:.0f} MB, "
          f"on {args.memory_steps:,} steps")  # fmt: skip
    return result


def child_memory(mode: str, steps: int) -> None:
    """One training step over a ``steps``-long sequence, in this fresh process; prints the peak resident memory
    it added, in MB: Linux's high-water mark (VmHWM), reset after the imports and the model (clear_refs)."""
    torch.manual_seed(0)
    layer, x = rnnkit.LSTM(256, 256), torch.randn(steps, 1, 256)
    before = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    if mode == "full":
        layer(x)[0].sum().backward()
    elif mode == "truncated":
        state = None
        for chunk in x.split(100):
            out, state = layer(chunk, state)
            out.sum().backward()
            state = tuple(s.detach() for s in state)
    print(_status_mb("VmHWM") - before)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def markdown(payload: dict) -> str:
    s = payload["setting"]
    lines = [
        f"Measured {s['date']} on {s['cpu']}, {s['cores']} cores, {s['torch_threads']} torch threads, "
        f"torch {s['torch']}; sgemm peak {payload['sgemm_gflop_s']:.1f} GFLOP/s (the faster of MKL and oneDNN); "
        "medians of interleaved runs.",
        "",
    ]
    if "layers" in payload:
        lines += [
            "| layer | H | mode | tok/s | baseline | baseline tok/s | ratio | GFLOP/s (of peak) | baseline GFLOP/s |",
            "|---|---:|---|---:|---|---:|---:|---:|---:|",
        ]
        for r in payload["layers"]:
            lines.append(
                f"| {r['layer']} | {r['hidden']} | {r['mode']} | {r['rnnkit_tok_s']:,} | {r['baseline']} | "
                f"{r['torch_tok_s']:,} | {r['ratio']:.2f}x | {r['rnnkit_gflop_s']:.1f} "
                f"({r['rnnkit_of_peak']:.0%}) | {r['torch_gflop_s']:.1f} ({r['torch_of_peak']:.0%}) |"
            )
        lines.append("")
    if "lm_train" in payload:
        r = payload["lm_train"]
        lines += [
            f"`rnnkit lm train` loop: {r['rnnkit_tok_s']:,} tok/s against {r['plain_tok_s']:,} for the plain "
            f"PyTorch loop ({r['ratio']:.2f}x), 2 x 200 LSTM, batch 20 x 20.",
            "",
        ]
    if "generation" in payload:
        g = payload["generation"]
        lines += [
            f"Batch-1 generation, 2 x {g['hidden']}, {g['vocab']:,} words, {g['tokens']} tokens:",
            "",
            "| path | tokens/s | vs torch.nn.LSTM |",
            "|---|---:|---:|",
        ]
        lines += [f"| {name} | {r['tokens_per_s']:.0f} | {r['vs_torch_lstm']:.2f}x |" for name, r in g["rows"].items()]
        lines.append("")
    if payload.get("serve"):
        v = payload["serve"]
        lines += [
            f"`rnnkit serve` of {Path(v['run']).name}, {v['clients']} concurrent clients on loopback, POST /predict; "
            f"micro-batching gives {v.get('speedup')}x the requests/s of one request at a time:",
            "",
            "| --max-batch | requests/s | p50 ms | p99 ms | mean batch | errors |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for m, r in v["summary"].items():
            cells = [
                m,
                f"{r['requests_per_s']:.0f}",
                f"{r['p50_ms']:.1f}",
                f"{r['p99_ms']:.1f}",
                f"{r['mean_batch']:.1f}",
            ]
            lines.append("| " + " | ".join([*cells, str(r["errors"])]) + " |")
        lines.append("")
    if "memory" in payload:
        m = payload["memory"]
        lines += [
            f"Peak memory one training step adds on a {m['steps']:,}-step sequence (LSTM 256, batch 1): full BPTT "
            f"{m['full_mb']:.0f} MB, truncated BPTT in chunks of {m['chunk']} {m['truncated_mb']:.0f} MB.",
            "",
        ]
    return "\n".join(lines)


SECTIONS = ("layers", "lm_train", "generation", "serve", "memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: a smoke test")
    parser.add_argument("--child-memory", choices=("full", "truncated"), help=argparse.SUPPRESS)
    parser.add_argument("--memory-steps", type=int, default=10_000)
    args = parser.parse_args()
    if args.child_memory:
        return child_memory(args.child_memory, args.memory_steps)
    quick = args.quick
    args.batch, args.steps = (4, 10) if quick else (32, 100)
    args.hidden = [16] if quick else [256, 512]
    args.repeats = 1 if quick else 7
    args.rounds, args.lm_steps = (1, 3) if quick else (3, 100)
    args.gen_hidden, args.gen_vocab, args.tokens = (16, 100, 5) if quick else (512, 10_000, 300)
    args.cells = ["lstm", "gru"] if quick else list(CELLS)
    args.serve_args = ["--requests", "60", "--seconds", "3", "--rounds", "1"] if quick else ["--seconds", "20"]
    if quick:
        args.memory_steps = min(args.memory_steps, 300)
    peak = sgemm_peak(128 if quick else 2048)
    payload = {"setting": machine(), "sgemm_gflop_s": round(peak, 1)}
    print(f"sgemm peak: {peak:.1f} GFLOP/s", flush=True)
    for name in SECTIONS:
        if name in args.only:
            print(f"{name}:", flush=True)
            start = time.monotonic()
            payload[name] = layers(args, peak) if name == "layers" else globals()[name](args)
            print(f"  ({time.monotonic() - start:.0f} s)", flush=True)
    name = "bench_quick" if quick else "bench"
    path = write_result(name, payload)
    md = markdown(payload)
    (RESULTS / f"{name}.md").write_text(md + "\n")
    print("\n" + md + f"\nwritten {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
