"""What the neural cache and dynamic evaluation add to a trained PTB language model, on the validation text.

    python benchmarks/lm_adaptive_ptb.py --run runs/bench/ptb_2h

Each setting is one ``rnnkit lm eval RUN --data ptb.valid.txt --json`` with the cache or dynamic-evaluation
flags (the static perplexity comes with each). The settings form a small grid around the published ones (Grave
et al. 2017: window 2000, theta 0.6, lambda 0.1 as in AWD-LSTM's pointer.py; Krause et al. 2018: RMS-normalised
updates with a decay of 0.02), chosen on validation as the papers chose theirs, so the best of each is a
validation figure tuned on validation; the test split is held out for ``rnnkit lm eval`` with the chosen flags.
Writes benchmarks/results/lm_adaptive_ptb.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import machine, rnnkit_cli, write_result

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT.parent / "shared" / "data" / "ptb" / "ptb.valid.txt"
CACHE = [
    ["--cache-window", str(w), "--cache-theta", str(t), "--cache-lambda", str(lam)]
    for w, t, lam in [(2000, 0.6, 0.1), (2000, 0.6, 0.15), (2000, 0.4, 0.15), (3000, 0.6, 0.15)]
]
DYNAMIC = [
    ["--dynamic-lr", str(lr), "--dynamic-decay", "0.02", "--dynamic-stats", "100", "--dynamic-bptt", str(bptt)]
    for lr, bptt in [(1e-4, 35), (3e-4, 35), (1e-4, 10), (3e-4, 10), (1e-3, 10), (3e-3, 10), (1e-2, 10)]
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=str(ROOT / "runs" / "bench" / "ptb_2h"))
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--only", choices=("cache", "dynamic"), default=None)
    args = parser.parse_args()
    rows = []
    for kind, grid in (("cache", CACHE), ("dynamic", DYNAMIC)):
        if args.only not in (None, kind):
            continue
        for flags in grid:
            start = time.perf_counter()
            out = rnnkit_cli(
                "lm", "eval", args.run, "--data", str(VALID), "--json", *flags, threads=args.threads, capture=True
            )
            result = json.loads(out)
            row = {"kind": kind, "flags": " ".join(flags), "static_ppl": round(result["ppl"], 2)}
            row |= {"ppl": round(result[kind]["ppl"], 2), "seconds": round(time.perf_counter() - start, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    best = {k: min((r for r in rows if r["kind"] == k), key=lambda r: r["ppl"]) for k in ("cache", "dynamic")
            if any(r["kind"] == k for r in rows)}  # fmt: skip
    path = write_result("lm_adaptive_ptb", {"setting": machine() | {"run": args.run}, "rows": rows, "best": best})
    print(json.dumps(best, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
