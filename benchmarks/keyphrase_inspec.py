"""Inspec keyphrase extraction three ways, scored alike on the validation abstracts (the test split is held out).

    python benchmarks/keyphrase_inspec.py                        # tfidf, tag and classify
    python benchmarks/keyphrase_inspec.py --methods tag --threads 1
    python benchmarks/keyphrase_inspec.py --methods tag --pretrained   # the encoder from the LMs of pretrain_lm.py
    python benchmarks/keyphrase_inspec.py --methods classify \
        --classify-config configs/classify/inspec_keywords_labels.toml    # one attention per keyphrase
    python benchmarks/keyphrase_inspec.py --methods classify --name pw20 -- --pos-weight 20 --early-stop 40

- ``tfidf``: the unsupervised floor, :class:`rnnkit.tasks.keyphrase.TfIdf` (document frequencies from the 1,000
  training abstracts; candidates are runs of content words, as no part-of-speech model can be downloaded here).
- ``tag``: BIO tagging with ``rnnkit tag`` (configs/tag/inspec_bilstm_crf.toml); spans ranked by their tags'
  probability (CRF marginals) for F1@5/@10.
- ``classify``: the tutorials' many-to-one model with ``rnnkit classify`` (configs/classify/inspec_keywords.toml):
  encoder -> attention -> MLP scoring every training keyphrase on 2 or more abstracts; or, with
  ``--classify-config configs/classify/inspec_keywords_labels.toml``, one attention per keyphrase (label attention).
- ``ceiling``: what the many-to-one model could reach at best, its label vocabulary's gold keyphrases exactly.

Scores (../shared/data/inspec/README.md): protocol 1 is span F1 against the gold tags (tag only); protocol 2 is
keyphrase F1@5/@10/@M against all gold keyphrases, Porter-stemmed, macro over documents; protocol 3 the same
against the present gold keyphrases only. Published test figures: BiLSTM-CRF + GloVe / FastText 0.457 / 0.524
(Sahrawat et al. 2020, protocol unclear), TfIdf F1@10 35.0 (pke, noun-phrase candidates) to 36.5.
Writes benchmarks/results/keyphrase_inspec_<method>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import machine, pretrained_encoders, run_task, write_result

from rnnkit.data.formats import read_inspec
from rnnkit.tasks.keyphrase import TfIdf, keyphrase_scores, tokenize

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "inspec"
METHODS = ["tfidf", "tag", "classify", "ceiling"]  # ceiling: after classify, from its labels
CONFIGS = {"tag": "configs/tag/inspec_bilstm_crf.toml", "classify": "configs/classify/inspec_keywords.toml"}


def tfidf(train: Path, valid: Path) -> dict:
    ranker = TfIdf(d.tokens for d in read_inspec(train))
    documents = read_inspec(valid)
    ranked = [ranker.rank(d.tokens) for d in documents]
    tokens, gold = [d.tokens for d in documents], [d.keyphrases for d in documents]
    # F1@M of a ranker: its top 10 (a ranker has no threshold of its own)
    return {"metrics": {"keyphrases": keyphrase_scores(tokens, gold, ranked, kept=[10] * len(ranked))}}


def ceiling(train: Path, valid: Path) -> dict:
    """The best the many-to-one model can do: each document's gold keyphrases that are labels of the run."""
    labels = set(json.loads((ROOT / "runs" / "bench" / "inspec_classify" / "labels.json").read_text())["names"])
    documents = read_inspec(valid)
    known = [[tuple(tokenize(k)) for k in d.keyphrases if k in labels] for d in documents]
    tokens, gold = [d.tokens for d in documents], [d.keyphrases for d in documents]
    return {"metrics": {"keyphrases": keyphrase_scores(tokens, gold, known)}, "labels": len(labels)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: torch's)")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="tag: configs/tag/inspec_bilstm_crf_lm.toml, its encoder from benchmarks/pretrain_lm.py's two LMs",
    )
    parser.add_argument("--classify-config", default=CONFIGS["classify"], help="classify: another config")
    parser.add_argument("--name", default="", help="added to the run's and the result's names (with extra flags)")
    parser.add_argument("extra", nargs="*", help="more flags for rnnkit tag/classify train, after --")
    args = parser.parse_args()
    train, valid = Path(args.data) / "train.jsonl", Path(args.data) / "valid.jsonl"
    for method in args.methods:
        pretrained, name = args.pretrained and method == "tag", method
        if method in ("tfidf", "ceiling"):
            result = {"tfidf": tfidf, "ceiling": ceiling}[method](train, valid)
        else:
            config = CONFIGS[method].replace(".toml", "_lm.toml") if pretrained else CONFIGS[method]
            if method == "classify" and args.classify_config != CONFIGS["classify"]:
                config, name = args.classify_config, f"classify_{Path(args.classify_config).stem}"
            name += f"_{args.name}" if args.name else ""
            out = ROOT / "runs" / "bench" / f"inspec_{name}{'_lm' * pretrained}"
            flags = ["--config", str(ROOT / config), *(pretrained_encoders() if pretrained else []), *args.extra]
            result = run_task(method, train, valid, out, flags, threads=args.threads)
        metrics = result["metrics"]
        for bulky in ("per_class", "confusion", "labels", "unknown_labels"):  # 514 labels: the file would be 270 kB
            metrics.pop(bulky, None)
        summary = {
            f"{target} {k}": round(v, 4)
            for target, scores in metrics["keyphrases"].items()
            for k, v in scores.items()
            if k.startswith("f1")
        }
        if method == "tag":
            summary["span f1 (protocol 1)"] = round(metrics["f1"], 4)
        payload = {"setting": machine(), "method": method, "valid": summary} | result
        path = write_result(f"keyphrase_inspec_{name}{'_lm' * pretrained}", payload)
        print(json.dumps({"method": method} | summary), flush=True)
        print(f"written {path}")


if __name__ == "__main__":
    main()
