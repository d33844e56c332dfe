"""Decoding speed and BLEU of a trained translator: greedy, beam 5 exhaustive, beam 5 with early stop, and beam 5
with early stop and a shrinking beam (one live hypothesis fewer per finished one, as GroundHog and Nematus search).

    python benchmarks/translate_search_speed.py --run runs/bench/translate_additive --rounds 3

Each round translates the whole Multi30k validation set once per search, the searches alternating, in one
process on one thread; the table gives the median sentences per second over the rounds, the median over the
rounds of each search's speed over greedy's in the same round, and sacrebleu's BLEU of each search's output (the
outputs do not change between rounds). Writes benchmarks/results/translate_search_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import torch
from common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "multi30k" / "tok"
SEARCHES = {
    "greedy": {"beam_size": 1},
    "beam5_exhaustive": {"beam_size": 5, "early_stop": False},
    "beam5_early_stop": {"beam_size": 5, "early_stop": True},
    "beam5_shrink": {"beam_size": 5, "early_stop": True, "shrink": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=str(ROOT / "runs" / "bench" / "translate_additive"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from rnnkit.tasks.seq2seq.bleu import corpus_scores
    from rnnkit.tasks.translate_run import load_run

    run = load_run(args.run)
    src = (DATA / "val.lc.norm.tok.de").read_text(encoding="utf-8").splitlines()
    ref = (DATA / "val.lc.norm.tok.en").read_text(encoding="utf-8").splitlines()
    speeds: dict[str, list[float]] = {name: [] for name in SEARCHES}
    bleu: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, search in SEARCHES.items():
            start = time.perf_counter()
            out = run.translate(src, **search)
            speeds[name].append(len(src) / (time.perf_counter() - start))
            with warnings.catch_warnings():  # tokenised Multi30k: scored as `rnnkit translate eval` scores it
                warnings.simplefilter("ignore")
                bleu[name] = round(corpus_scores([o[0]["text"] for o in out], ref)["bleu"], 2)
    table = {n: {"sentences_per_s": round(statistics.median(s), 1), "bleu": bleu[n]} for n, s in speeds.items()}
    for name, row in table.items():  # each round's ratio, then their median: drift between rounds cancels
        ratios = [b / g for b, g in zip(speeds[name], speeds["greedy"], strict=True)]
        row["of_greedy"] = round(statistics.median(ratios), 3)
    payload = {"setting": machine() | {"run": args.run, "rounds": args.rounds, "threads": 1}, "table": table}
    payload["speeds"] = speeds
    path = write_result("translate_search_speed", payload)
    print(json.dumps(table, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
