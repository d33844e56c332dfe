"""Taggers of several seeds, each alone and as one ensemble (``rnnkit ensemble`` into one run folder, then
``rnnkit tag eval`` of it), on the validation data, as a user runs them.

    python benchmarks/tag_ensemble.py --data-set inspec --seeds 0 1 2 --jobs 2 -- --rare-word-dropout 0.25
    python benchmarks/tag_ensemble.py --data-set conll2003 --seeds 0 1 2 --jobs 2
    python benchmarks/tag_ensemble.py --data-set conll2000 --seeds 0 1 2 --jobs 2   # validated on tag_conll2000.py's
                                                                                     # split of train.txt
    python benchmarks/tag_ensemble.py --data-set inspec --seeds 0 1 2 --reuse   # train only the runs not there
    python benchmarks/tag_ensemble.py --data-set inspec --seeds 0 --char-lms    # + the character LMs' features
    python benchmarks/tag_ensemble.py --data-set inspec --seeds 0 --char-lms inspec   # those fine-tuned on Inspec

Each seed trains ``rnnkit tag train --config CONFIG --seed N`` into runs/bench/<config>_<tag>_seed<N> (``--jobs 2``:
two at a time, one thread each; ``--reuse``: a run already trained there is kept), then every run is evaluated
alone and all together, the seeds kept as runs/bench/<config>_<tag>_ensemble (replaced on every run of the
script). The ensemble averages the members' CRF scores and decodes once (rnnkit.tasks.tag_ensemble). Writes
benchmarks/results/
tag_ensemble_<config>_<tag>.json, ``<tag>`` naming the extra flags (``--name``).
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import add_char_lms_flag, char_lm_features, machine, rnnkit_cli, run_task, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SETS = {  # name: (train, valid, default config)
    "inspec": ("inspec/train.jsonl", "inspec/valid.jsonl", "configs/tag/inspec_bilstm_crf.toml"),
    "conll2003": ("conll2003/eng.train", "conll2003/eng.testa", "configs/tag/conll2003_bilstm_crf.toml"),
    "atis": ("atis/train", "atis/dev", "configs/tag/atis_bilstm_crf.toml"),
    "conll2000": ("conll2000/train.txt", None, "configs/tag/conll2000_bilstm_crf.toml"),  # valid: split off train
}


def summary(metrics: dict) -> dict:
    """Span F1, precision and recall, and for keyphrases F1@5/@10/@M against all and the present gold ones."""
    out = {k: round(metrics[k], 4) for k in ("f1", "precision", "recall", "intent_accuracy") if k in metrics}
    for target, scores in metrics.get("keyphrases", {}).items():
        out |= {f"{target} {k}": round(v, 4) for k, v in scores.items() if k.startswith("f1")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-set", choices=SETS, required=True)
    parser.add_argument("--config", default=None, help="default: the data set's benchmark config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="trainings at a time (each on --threads threads)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: 1 with --jobs > 1)")
    parser.add_argument("--name", default=None, help="names the runs and the result (default: from the flags)")
    parser.add_argument("--reuse", action="store_true", help="keep the seeds' runs already trained in runs/bench")
    add_char_lms_flag(parser)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit tag train, after --")
    args = parser.parse_args()
    train_path, valid_path, default_config = SETS[args.data_set]
    if valid_path is None:  # CoNLL-2000 has no development set: tag_conll2000.py's split of its train.txt
        from tag_conll2000 import SPLIT, VALID_SENTENCES, split

        try:
            train, valid = split(Path(args.data) / train_path, VALID_SENTENCES, SPLIT)
        except ValueError as e:
            parser.error(str(e))
    else:
        train, valid = Path(args.data) / train_path, Path(args.data) / valid_path
    config = args.config or str(ROOT / default_config)
    threads = args.threads or (1 if args.jobs > 1 else None)
    tag = args.name or ("".join(args.extra).replace("--", "_").strip("_") or "plain")
    tag = (
        ("charlm" + ("" if args.char_lms == "pretrain" else f"-{args.char_lms}") + f"_{tag}") if args.char_lms else tag
    )
    features = char_lm_features(args.char_lms) if args.char_lms else []
    stem = f"{Path(config).stem}_{tag}"
    outs = {seed: ROOT / "runs" / "bench" / f"{stem}_seed{seed}" for seed in args.seeds}

    def one(seed: int) -> dict:
        flags = ["--config", config, "--seed", str(seed), *features, *args.extra]
        there = args.reuse and (outs[seed] / "best.safetensors").is_file()
        return run_task("tag", train, valid, outs[seed], flags, threads=threads, skip_training=there)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        members = dict(zip(args.seeds, pool.map(one, args.seeds), strict=True))
    first, *rest = (str(outs[seed]) for seed in args.seeds)
    ensemble_args = ["tag", "eval", first]
    if rest:  # the seeds kept as one run folder (rnnkit ensemble), evaluated as a user evaluates any run
        folder = str(ROOT / "runs" / "bench" / f"{stem}_ensemble")
        rnnkit_cli("ensemble", first, *rest, "--out", folder, "--force", threads=threads, capture=True)
        ensemble_args = ["tag", "eval", folder]
    ensemble = json.loads(rnnkit_cli(*ensemble_args, "--data", str(valid), "--json", threads=threads, capture=True))
    rows = {f"seed {seed}": summary(r["metrics"]) for seed, r in members.items()}
    rows["ensemble"] = summary(ensemble)
    for name, row in rows.items():
        print(json.dumps({"run": name} | row), flush=True)
    payload = {
        "setting": machine()
        | {"config": config, "extra": [*features, *args.extra], "seeds": args.seeds}
        | {"threads": threads},
        "valid": rows,
        "members": {seed: {k: v for k, v in r.items() if k != "metrics"} for seed, r in members.items()},
        "ensemble_command": "rnnkit " + " ".join([*ensemble_args, "--data", str(valid), "--json"]),
    }
    print(f"written {write_result(f'tag_ensemble_{stem}', payload)}")


if __name__ == "__main__":
    main()
