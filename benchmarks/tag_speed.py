"""`rnnkit tag predict` throughput on ATIS with the BiLSTM-CRF: sentences per second, in process and as a user runs it.

    python benchmarks/tag_speed.py                 # the run benchmarks/tag_atis.py --models best trained
    python benchmarks/tag_speed.py --run runs/atis --repeats 5

In process: ``TagRun.predict`` over the 500 ATIS dev sentences (batched Viterbi, no Python loop over sentences),
median of --repeats, at several batch sizes. End to end: ``rnnkit tag predict RUN FILE`` on the dev sentences
written --copies times, wall clock including Python's and torch's start and loading the run.
Writes benchmarks/results/tag_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, write_result

from rnnkit.tasks.tag_run import load_run

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "atis" / "dev" / "seq.in"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=str(ROOT / "runs" / "bench" / "atis_best"))
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=10, help="end to end: the dev sentences this many times")
    args = parser.parse_args()
    sentences = [line.split() for line in Path(args.data).read_text().splitlines()]
    run = load_run(args.run, verb="predict")
    in_process = {}
    for size in (64, 256, 1024):
        run.data.eval_batch_size = size
        run.predict(sentences)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run.predict(sentences)
            times.append(time.perf_counter() - start)
        in_process[size] = round(len(sentences) / statistics.median(times))
        print(f"in process, batch {size}: {in_process[size]:,} sentences/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "sentences.txt"
        text.write_text("\n".join(" ".join(s) for s in sentences * args.copies) + "\n")
        command = [sys.executable, "-m", "rnnkit", "tag", "predict", args.run, str(text)]
        walls = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - start)
    n = len(sentences) * args.copies
    end_to_end = round(n / statistics.median(walls))
    print(f"end to end ({n:,} sentences, start included): {end_to_end:,} sentences/s", flush=True)
    model = json.loads((Path(args.run) / "config.json").read_text())["model"]
    payload = {
        "setting": machine() | {"run": args.run, "model": model},
        "sentences": len(sentences),
        "in_process_sentences_per_s": in_process,
        "end_to_end_sentences_per_s": end_to_end,
        "end_to_end_seconds": round(statistics.median(walls), 2),
        "end_to_end_sentences": n,
        "command": " ".join(command[1:]),
    }
    print(f"written {write_result('tag_speed', payload)}")


if __name__ == "__main__":
    main()
