"""`rnnkit tag predict` throughput on ATIS with the BiLSTM-CRF: sentences per second, in process and as a user runs it.

    python benchmarks/tag_speed.py      # the runs of benchmarks/tag_atis.py --models bilstm-crf best
    python benchmarks/tag_speed.py --runs runs/atis --repeats 5

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


def measure(run_path: str, sentences: list[list[str]], repeats: int, copies: int) -> dict:
    """Sentences/s of one run: in process at several batch sizes (medians), and end to end through the CLI."""
    run = load_run(run_path, verb="predict")
    in_process = {}
    for size in (64, 256, 1024):
        run.data.eval_batch_size = size
        run.predict(sentences)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run.predict(sentences)
            times.append(time.perf_counter() - start)
        in_process[size] = round(len(sentences) / statistics.median(times))
        print(f"{run_path}: in process, batch {size}: {in_process[size]:,} sentences/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "sentences.txt"
        text.write_text("\n".join(" ".join(s) for s in sentences * copies) + "\n")
        command = [sys.executable, "-m", "rnnkit", "tag", "predict", run_path, str(text)]
        walls = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - start)
    n = len(sentences) * copies
    end_to_end = round(n / statistics.median(walls))
    print(f"{run_path}: end to end ({n:,} sentences, start included): {end_to_end:,} sentences/s", flush=True)
    return {
        "run": run_path,
        "model": json.loads((Path(run_path) / "config.json").read_text())["model"],
        "in_process_sentences_per_s": in_process,
        "end_to_end_sentences_per_s": end_to_end,
        "end_to_end_seconds": round(statistics.median(walls), 2),
        "end_to_end_sentences": n,
        "command": " ".join(command[1:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    runs = [str(ROOT / "runs" / "bench" / name) for name in ("atis_bilstm-crf", "atis_best")]
    parser.add_argument("--runs", nargs="+", default=runs)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=10, help="end to end: the dev sentences this many times")
    args = parser.parse_args()
    sentences = [line.split() for line in Path(args.data).read_text().splitlines()]
    results = [measure(run, sentences, args.repeats, args.copies) for run in args.runs]
    payload = {"setting": machine(), "sentences": len(sentences), "runs": results}
    print(f"written {write_result('tag_speed', payload)}")


if __name__ == "__main__":
    main()
