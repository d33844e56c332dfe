"""CoNLL-2000 chunking, as a user runs it: ``rnnkit tag train`` then ``rnnkit tag eval --json``.

    python benchmarks/tag_conll2000.py
    python benchmarks/tag_conll2000.py --config configs/tag/conll2000_bilstm_crf.toml --threads 1

The shared task has no development set, and its test file (WSJ section 20) is held out, so the last
``--valid-sentences`` sentences of train.txt (the end of section 18: whole articles, none shared with what is
trained on) are the validation split, written once into runs/bench/conll2000_split/ (train.txt and valid.txt, the
same three columns). The tagger reads the words and the chunk tags (the first and last columns), not the POS
column. Published test F1 (conlleval): the shared task's best, an SVM with POS features, 93.48; SENNA 94.32;
Huang et al. 2015's BiLSTM-CRF with SENNA embeddings and features 94.46. Writes
benchmarks/results/tag_<config>.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import run_task, write_tagger_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "conll2000"
SPLIT = ROOT / "runs" / "bench" / "conll2000_split"
#: the last sentences of train.txt that validate (tag_ensemble.py's conll2000 runs use the same split)
VALID_SENTENCES = 1000


def split(train: Path, held_out: int, folder: Path) -> tuple[Path, Path]:
    """train.txt's sentences but the last ``held_out`` into folder/train.txt, those into folder/valid.txt (rewritten
    only when they differ, so that a rerun finds the same files). ValueError, in one line, for a file that is not
    there or a count that would leave one side empty."""
    if not train.is_file():
        raise ValueError(f"{train}: no such file (--data names the folder of CoNLL-2000's train.txt)")
    sentences = [s for s in train.read_text(encoding="utf-8").split("\n\n") if s.strip()]
    if not 0 < held_out < len(sentences):
        raise ValueError(f"--valid-sentences must lie in 1..{len(sentences) - 1}, got {held_out}")
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train.txt": sentences[:-held_out], "valid.txt": sentences[-held_out:]}
    for name, part in parts.items():
        text = "\n\n".join(s.strip("\n") for s in part) + "\n"
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
    return folder / "train.txt", folder / "valid.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/tag/conll2000_bilstm_crf.toml"))
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--data", default=str(DATA), help="the folder of train.txt")
    parser.add_argument("--valid-sentences", type=int, default=VALID_SENTENCES, help="the last N sentences validate")
    parser.add_argument("--name", default=None, help="the run's name (default: the config's)")
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit tag train, after --")
    args = parser.parse_args()
    name = args.name or Path(args.config).stem
    try:
        train, valid = split(Path(args.data) / "train.txt", args.valid_sentences, SPLIT)
    except ValueError as e:
        parser.error(str(e))  # one line, exit 2
    out = ROOT / "runs" / "bench" / name
    result = run_task("tag", train, valid, out, ["--config", args.config, *args.extra], threads=args.threads)
    setting = {"config": args.config, "extra": args.extra, "valid_sentences": args.valid_sentences}
    write_tagger_result(name, result, setting)


if __name__ == "__main__":
    main()
