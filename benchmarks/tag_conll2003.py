"""CoNLL-2003 English NER, as a user runs it: ``rnnkit tag train`` then ``rnnkit tag eval --json`` on eng.testa.

    python benchmarks/tag_conll2003.py
    python benchmarks/tag_conll2003.py --config configs/tag/conll2003_bilstm_crf.toml --threads 1
    python benchmarks/tag_conll2003.py --config configs/tag/conll2003_bilstm_crf_lm.toml --pretrained  # the encoder
        # from the forward and backward LMs of benchmarks/pretrain_lm.py (run it first)

No pretrained embeddings (none can be downloaded here). Lample et al. 2016 report test F1 83.63 with random
embeddings and characters, 90.94 with pretrained ones. eng.testa is the validation split; eng.testb (test) is
held out. Writes benchmarks/results/tag_<config>.json (the configs are named conll2003_...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import pretrained_encoders, run_task, write_tagger_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "conll2003"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/tag/conll2003_bilstm_crf.toml"))
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument(
        "--pretrained", action="store_true", help="start the encoder from benchmarks/pretrain_lm.py's two LMs"
    )
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit tag train, after --")
    args = parser.parse_args()
    name = Path(args.config).stem
    if args.pretrained:
        args.extra = [*pretrained_encoders(), *args.extra]
    out = ROOT / "runs" / "bench" / name
    train, valid = Path(args.data) / "eng.train", Path(args.data) / "eng.testa"
    result = run_task("tag", train, valid, out, ["--config", args.config, *args.extra], threads=args.threads)
    write_tagger_result(name, result, {"config": args.config, "extra": args.extra})  # tag_conll2003_bilstm_crf


if __name__ == "__main__":
    main()
