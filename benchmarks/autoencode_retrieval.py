"""Does a sequence autoencoder's code keep word order, which a bag of words loses? Multi30k English captions.

    python benchmarks/autoencode_retrieval.py --threads 1                      # train, then evaluate
    python benchmarks/autoencode_retrieval.py --run runs/bench/autoencode_multi30k_en   # evaluate a trained run

Training: ``rnnkit autoencode train`` on the lowercased, tokenised English side of Multi30k train
(configs/autoencode/multi30k_en.toml). Evaluation on the 1,014 val captions, all built here, deterministic:

- **Swapped twins.** Each caption's *twin* swaps its first and last content words (alphabetic, 3+ letters, not a
  function word, different): "a man rides a horse ." -> "a horse rides a man .". The twin has exactly the caption's
  bag of words, so its bag-of-words cosine is 1.0; the score is the code's mean cosine between caption and twin.
- **Word-order retrieval.** The index holds every caption and its twin (2N lines). Each query is its caption with
  one content word removed (a near-duplicate, as a user's query would be). A hit is the caption itself at rank 1;
  its twin or any other line is a miss. A bag of words cannot rank a caption above its twin (the same vector): its
  accuracy counts a tie as half a hit (the expected accuracy of breaking the tie at random).
- **Plain retrieval** (no twins in the index), the same queries: where a bag of words is strong, for honesty.

Writes benchmarks/results/autoencode_retrieval.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from common import machine, run_task, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "multi30k" / "tok"
FUNCTION_WORDS = {"the", "and", "with", "are", "his", "her", "its", "their", "from", "into", "onto", "over", "under"}
FUNCTION_WORDS |= {"near", "while", "for", "this", "that"}


def content_positions(words: list[str]) -> list[int]:
    return [i for i, w in enumerate(words) if w.isalpha() and len(w) > 2 and w not in FUNCTION_WORDS]


def twin(words: list[str]) -> list[str] | None:
    """The caption with its first and last content words swapped, or None if they are the same word."""
    spots = content_positions(words)
    if len(spots) < 2 or words[spots[0]] == words[spots[-1]]:
        return None
    out = list(words)
    out[spots[0]], out[spots[-1]] = out[spots[-1]], out[spots[0]]
    return out


def bag_of_words(lines: list[str], vocab: dict[str, int]) -> np.ndarray:
    rows = np.zeros((len(lines), len(vocab)), dtype=np.float32)
    for r, line in enumerate(lines):
        for w, n in Counter(line.split()).items():
            if w in vocab:
                rows[r, vocab[w]] = n
    return rows


def top1(sims: np.ndarray, target: list[int], twin_of: dict[int, int] | None = None) -> float:
    """Rank-1 accuracy; a tie between the target and its twin counts half."""
    hits = 0.0
    for q, t in enumerate(target):
        best = sims[q].max()
        if sims[q, t] < best - 1e-6:
            continue
        tied = twin_of is not None and abs(sims[q, twin_of[t]] - sims[q, t]) <= 1e-6
        hits += 0.5 if tied else 1.0
    return hits / len(target)


def evaluate(run_path: Path, lines: list[str], seed: int = 0) -> dict:
    sys.path.insert(0, str(ROOT))
    from rnnkit.tasks.autoencode_run import load_run
    from rnnkit.tasks.retrieval import cosine

    run = load_run(run_path)
    pairs = [(line, " ".join(t)) for line in lines if (t := twin(line.split())) is not None]
    captions, twins = [a for a, _ in pairs], [b for _, b in pairs]
    rng = random.Random(seed)
    queries = []
    for c in captions:
        words = c.split()
        drop = rng.choice(content_positions(words))
        queries.append(" ".join(words[:drop] + words[drop + 1 :]))
    index = captions + twins
    n = len(captions)
    twin_of = {i: i + n for i in range(n)} | {i + n: i for i in range(n)}
    codes = run.embed(index + queries)
    code_index, code_queries = codes[: 2 * n], codes[2 * n :]
    vocab = {w: i for i, w in enumerate(sorted({w for line in index for w in line.split()}))}
    bow_index, bow_queries = bag_of_words(index, vocab), bag_of_words(queries, vocab)
    twin_cos = np.einsum(
        "ij,ij->i", *(c / np.linalg.norm(c, axis=1, keepdims=True) for c in (codes[:n], codes[n : 2 * n]))
    )
    return {
        "pairs": n,
        "twin_cosine_code_mean": float(twin_cos.mean()),
        "twin_cosine_code_max": float(twin_cos.max()),
        "twin_cosine_bow": 1.0,
        "order_retrieval_code": top1(cosine(code_queries, code_index), list(range(n)), twin_of),
        "order_retrieval_bow": top1(cosine(bow_queries, bow_index), list(range(n)), twin_of),
        "plain_retrieval_code": top1(cosine(code_queries, code_index[:n]), list(range(n))),
        "plain_retrieval_bow": top1(cosine(bow_queries, bow_index[:n]), list(range(n))),
        "examples": [{"caption": captions[i], "twin": twins[i], "query": queries[i]} for i in range(3)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/autoencode/multi30k_en.toml"))
    parser.add_argument("--run", help="evaluate this trained run instead of training one")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit autoencode train, after --")
    args = parser.parse_args()
    train, valid = Path(args.data) / "train.lc.norm.tok.en", Path(args.data) / "val.lc.norm.tok.en"
    result: dict = {}
    run = Path(args.run) if args.run else ROOT / "runs" / "bench" / f"autoencode_{Path(args.config).stem}"
    if not args.run:
        result = run_task("autoencode", train, valid, run, ["--config", args.config, *args.extra], threads=args.threads)
    scores = evaluate(run, valid.read_text(encoding="utf-8").splitlines())
    payload = {"setting": machine() | {"config": args.config, "extra": args.extra, "run": str(run)}, "valid": scores}
    path = write_result("autoencode_retrieval", payload | result)
    print(json.dumps({k: v for k, v in scores.items() if k != "examples"}))
    print(f"written {path}")


if __name__ == "__main__":
    main()
