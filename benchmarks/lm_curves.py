"""Validation curves of language-model runs against wall time, as one PNG.

    python benchmarks/lm_curves.py runs/bench/shakespeare [runs/bench/ptb_2h ...] --out benchmarks/results/lm_curves.png

Each run folder's metrics.jsonl gives one curve: validation nats per character (a character model) or perplexity
(a word model) after each epoch, against the minutes of training. Runs trained by
this rnnkit log ``time_s`` with every validation; for older runs the time is rebuilt from the logged throughput
(tokens per second of each logging window), which leaves the evaluations out, and the legend says so.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def curve(run: Path) -> tuple[list[float], list[float], bool]:
    """(minutes, validation loss) per validation, and whether the minutes are rebuilt from throughput."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    config = json.loads((run / "config.json").read_text())
    tokens_per_step = config["train"]["batch_size"] * config["train"]["bptt"]
    minutes, losses, seconds, last_step, rebuilt = [], [], 0.0, 0, False
    for r in records:
        if "tok_s" in r:  # a logging window: its steps at its speed
            seconds += (r["step"] - last_step) * tokens_per_step / r["tok_s"]
            last_step = r["step"]
        if "valid_loss" in r:
            rebuilt |= "time_s" not in r
            minutes.append(r.get("time_s", seconds) / 60)
            losses.append(r["valid_loss"])
    return minutes, losses, rebuilt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="lm run folders")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lm_curves.png")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.runs), figsize=(5 * len(args.runs), 3.8), squeeze=False)
    for ax, run in zip(axes[0], args.runs, strict=True):
        minutes, losses, rebuilt = curve(run)
        level = json.loads((run / "config.json").read_text())["data"]["level"]
        values = losses if level == "char" else [math.exp(v) for v in losses]
        label = "nats per character" if level == "char" else "perplexity"
        ax.plot(minutes, values, marker="o", label=f"{run.name}{' (time rebuilt from throughput)' * rebuilt}")
        best = min(values)
        ax.axhline(best, color="grey", linewidth=0.6, linestyle=":")
        ax.set(xlabel="minutes of training", ylabel=f"validation {label}", title=f"{run.name}: best {best:.4g}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
