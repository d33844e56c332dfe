"""ATIS slot filling (and intent), as a user runs it: ``rnnkit tag train`` then ``rnnkit tag eval --json`` on dev.

    python benchmarks/tag_atis.py                       # every model below, one after another
    python benchmarks/tag_atis.py --models elman jordan --threads 1

The tutorials' comparison first, every model with the same word embeddings (100), hidden size (100), softmax output
and training budget (--minutes): an Elman RNN, a Jordan RNN (the output distribution fed back), a bidirectional
Elman RNN, the feed-forward window tagger (a word and 3 neighbours each side, no recurrence) and a plain BiLSTM-CRF
(the same sizes, the same budget; also the model of the predict speed in benchmarks/tag_speed.py). Then our best
model, configs/tag/atis_bilstm_crf.toml: a BiLSTM-CRF with character features and a joint intent head.
Published test figures: Mesnil et al. 2015 hybrid RNN 95.06 slot F1, Yao et al. 2014 deep LSTM 95.08, JointBERT
96.1 F1 / 97.5 intent / 88.2 sentence accuracy. Writes benchmarks/results/tag_atis_<model>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import machine, run_task, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "atis"
SAME = ["--embed", "100", "--hidden", "100", "--epochs", "100", "--lowercase", "--no-crf", "--no-char"]
MODELS = {
    "elman": ["--cell", "elman", *SAME],
    "jordan": ["--cell", "jordan", *SAME],
    "bi-elman": ["--cell", "elman", "--bidirectional", *SAME],
    "window": ["--cell", "none", "--window", "3", *SAME],
    "bilstm-crf": ["--cell", "lstm", "--bidirectional", "--crf", *SAME[:-2], "--no-char"],
    "best": ["--config", str(ROOT / "configs/tag/atis_bilstm_crf.toml")],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of the comparison models")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()
    for name in args.models:
        flags = MODELS[name] + ([] if name == "best" else ["--max-minutes", str(args.minutes)])
        out = ROOT / "runs" / "bench" / f"atis_{name}"
        result = run_task("tag", Path(args.data) / "train", Path(args.data) / "dev", out, flags, threads=args.threads)
        metrics = result["metrics"]
        summary = {k: metrics.get(k) for k in ("f1", "precision", "recall", "intent_accuracy", "sentence_accuracy")}
        payload = {"setting": machine(), "model": name, "valid": summary} | result
        path = write_result(f"tag_atis_{name}", payload)
        print(json.dumps({"model": name} | summary | {"minutes": result["train_minutes"]}), flush=True)
        print(f"written {path}")


if __name__ == "__main__":
    main()
