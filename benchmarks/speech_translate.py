"""German speech straight to English text, against the cascade (German recognition, then text translation).

    python benchmarks/speech_translate.py --threads 1 --minutes 25 [-- more speech-translate train flags]

1. ``rnnkit speech make-corpus --german`` into runs/bench/speech_de_en (once): German digit strings, dates, times
   and commands, with their English, spoken by espeak-ng's German voices; valid and test by voices training
   never has.
2. Direct: ``rnnkit speech-translate train`` on train.jsonl (audio and English only), at most ``--minutes``.
3. Cascade: ``rnnkit ctc train`` on the same audio with its German transcripts (at most ``--minutes``), and
   ``rnnkit translate train`` on the training split's German/English text pairs (at most ``--mt-minutes``);
   then the test audio is transcribed (``rnnkit ctc transcribe``) and the transcripts translated
   (``rnnkit translate eval``).
4. BLEU (sacrebleu) of both on valid.jsonl and test.jsonl, beam 5, and the cascade's German CER/WER.

Writes benchmarks/results/speech_translate.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import machine, write_result
from common import rnnkit_cli as rnnkit

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "runs" / "bench" / "speech_de_en"
RUNS = ROOT / "runs" / "bench"


def rows(split: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]


def train(task: str, out: Path, flags: list[str], threads: int | None) -> float:
    print(f"rnnkit {task} train --out {out} " + " ".join(flags), flush=True)
    start = time.monotonic()
    rnnkit(task, "train", "--out", str(out), "--force", "--no-progress", *flags, threads=threads)
    return round((time.monotonic() - start) / 60, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=25.0, help="training budget of each speech model")
    parser.add_argument("--mt-minutes", type=float, default=5.0, help="training budget of the text translator")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--name", default="", help="suffix of the direct model's run folder and the result file")
    parser.add_argument(
        "--reuse-cascade", action="store_true", help="keep the cascade's trained runs (ctc_de, mt_de_en) if present"
    )
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit speech-translate train, after --")
    args = parser.parse_args()
    t = args.threads
    if not (CORPUS / "train.jsonl").exists():
        rnnkit("speech", "make-corpus", "--german", "--out", str(CORPUS), threads=t)
    train_m, valid_m = str(CORPUS / "train.jsonl"), str(CORPUS / "valid.jsonl")
    common = ["--train", train_m, "--valid", valid_m, "--epochs", "500", "--max-minutes", str(args.minutes)]
    common += ["--early-stop", "15", "--batch-size", "16", "--lr", "0.001"]
    suffix = f"_{args.name}" if args.name else ""
    direct, ctc, mt = RUNS / f"speech_translate{suffix}", RUNS / "ctc_de", RUNS / "mt_de_en"
    reuse = args.reuse_cascade and (ctc / "best.safetensors").exists() and (mt / "best.safetensors").exists()
    minutes = {}
    direct_flags = [*common, "--hidden", "256", "--layers", "2", "--channels", "256", *args.extra]
    minutes["direct"] = train("speech-translate", direct, direct_flags, t)
    if not reuse:
        minutes["ctc_de"] = train("ctc", ctc, [*common, "--hidden", "256", "--layers", "3"], t)
    text = RUNS / "mt_de_en_text"
    text.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid"):
        pairs = dict.fromkeys((r["text"], r["translation"]) for r in rows(split))
        (text / f"{split}.de").write_text("".join(de + "\n" for de, _ in pairs), encoding="utf-8")
        (text / f"{split}.en").write_text("".join(en + "\n" for _, en in pairs), encoding="utf-8")
    mt_flags = ["--train", str(text / "train"), "--valid", str(text / "valid"), "--src-lang", "de", "--tgt-lang", "en"]
    mt_flags += ["--hidden", "256", "--epochs", "500", "--max-minutes", str(args.mt_minutes), "--early-stop", "10"]
    if not reuse:
        minutes["mt_de_en"] = train("translate", mt, mt_flags, t)
    results: dict = {}
    for split in ("valid", "test"):
        manifest = str(CORPUS / f"{split}.jsonl")
        scores = json.loads(rnnkit("speech-translate", "eval", str(direct), "--data", manifest, "--beam", "5",
                                   "--json", threads=t, capture=True))  # fmt: skip
        recognised = json.loads(rnnkit("ctc", "eval", str(ctc), "--data", manifest, "--json", threads=t, capture=True))
        wavs = [str(CORPUS / r["path"]) for r in rows(split)]
        heard = rnnkit("ctc", "transcribe", str(ctc), *wavs, "--json", threads=t, capture=True).splitlines()
        prefix = RUNS / f"cascade_{split}"
        Path(f"{prefix}.de").write_text("".join(json.loads(h)["text"] + "\n" for h in heard), encoding="utf-8")
        Path(f"{prefix}.en").write_text("".join(r["translation"] + "\n" for r in rows(split)), encoding="utf-8")
        if any(json.loads(h)["text"] for h in heard):
            cascade = json.loads(rnnkit("translate", "eval", str(mt), "--data", str(prefix), "--beam", "5", "--json",
                                        threads=t, capture=True))  # fmt: skip
        else:  # the recogniser heard nothing at all: every translation is empty
            cascade = {"bleu": 0.0, "chrf": 0.0}
        gold = RUNS / f"gold_{split}"  # the text translator on the true transcripts: the cascade's ceiling
        Path(f"{gold}.de").write_text("".join(r["text"] + "\n" for r in rows(split)), encoding="utf-8")
        Path(f"{gold}.en").write_text(Path(f"{prefix}.en").read_text(encoding="utf-8"), encoding="utf-8")
        ceiling = json.loads(rnnkit("translate", "eval", str(mt), "--data", str(gold), "--beam", "5", "--json",
                                    threads=t, capture=True))  # fmt: skip
        results[split] = {
            "direct_bleu": round(scores["bleu"], 2),
            "direct_chrf": round(scores["chrf"], 2),
            "cascade_bleu": round(cascade["bleu"], 2),
            "cascade_chrf": round(cascade["chrf"], 2),
            "text_translation_of_true_transcripts_bleu": round(ceiling["bleu"], 2),
            "german_cer": round(recognised["cer"], 4),
            "german_wer": round(recognised["wer"], 4),
            "direct_real_time_factor": round(scores["real_time_factor"], 4),
            "bleu_signature": scores["bleu_signature"],
        }
    payload = {"setting": machine() | {"threads": t, "direct_flags": direct_flags}, "results": results}
    payload |= {"train_minutes": minutes, "cascade_reused": reuse}
    path = write_result(f"speech_translate{suffix}", payload)
    print(json.dumps(results, indent=2))
    print(f"written {path}")


if __name__ == "__main__":
    main()
