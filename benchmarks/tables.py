"""The README's tables of the tagging, classification and keyphrase benchmarks, from benchmarks/results/*.json.

    python benchmarks/tables.py

Each benchmark script writes its result file; this only reads them, so a table is always the figures the last
run of its script measured.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def training(r: dict) -> list:
    epochs = max((e["epoch"] for e in r["epochs"]), default=0)
    return [r["train_minutes"], epochs, f"{r['train_tokens_per_s']:,}" if r["train_tokens_per_s"] else "-"]


def atis() -> list[str]:
    names = {
        "elman": "Elman RNN",
        "jordan": "Jordan RNN (output fed back)",
        "bi-elman": "bidirectional Elman RNN",
        "window": "feed-forward window (k = 3), no recurrence",
        "bilstm-crf": "BiLSTM-CRF",
        "best": "BiLSTM-CRF + characters + intent (configs/tag/atis_bilstm_crf.toml)",
    }
    lines = [
        row("model", "minutes", "epochs", "train words/s", "dev slot F1", "intent acc.", "sentence acc."),
        row(*["---"] * 7),
    ]
    for key, name in names.items():
        r = load(f"tag_atis_{key}")
        if r:
            m = r["metrics"]
            lines.append(
                row(name, *training(r), pct(m["f1"]), pct(m.get("intent_accuracy")), pct(m.get("sentence_accuracy")))
            )
    return lines


def single(prefix: str, metric_names: dict[str, str], unit: str) -> list[str]:
    lines = [
        row("config", "minutes", "epochs", f"train {unit}/s", *metric_names.values()),
        row(*["---"] * (3 + 1 + len(metric_names))),
    ]
    for path in sorted(RESULTS.glob(f"{prefix}*.json")):
        r = json.loads(path.read_text())
        name = Path(r["setting"].get("config", path.stem)).name
        extra = r["setting"].get("extra", [])
        name += " + LM-pretrained embeddings" if "--embeddings" in extra else ""
        name += " + encoder from the forward and backward LMs" if "--encoder" in extra else ""
        name += " + character LM features" if "--char-lm" in extra else ""
        lines.append(row(name, *training(r), *(pct(r["metrics"].get(k)) for k in metric_names)))
    return lines


def inspec() -> list[str]:
    names = {
        "tfidf": "TF-IDF (unsupervised)",
        "tag": "BIO tagging: BiLSTM-CRF + characters",
        "tag_lm": "BIO tagging: BiLSTM-CRF + characters, encoder from the forward and backward LMs",
        "classify": "many-to-one: attention over a keyphrase vocabulary",
        "classify_pw20": (
            "many-to-one: attention over a keyphrase vocabulary, `--pos-weight 20 --early-stop 40 --max-minutes 12`"
        ),
        "classify_inspec_keywords_labels": "many-to-one: one attention per keyphrase (label attention)",
        "classify_inspec_keywords_labels_pw20": "many-to-one: label attention, `--pos-weight 20 --early-stop 40`",
        "ceiling": "many-to-one at best: its vocabulary's gold keyphrases exactly",
    }
    head = [
        "span F1 (1)",
        "F1@5 all (2)",
        "F1@10 all (2)",
        "F1@M all (2)",
        "F1@5 present (3)",
        "F1@10 present (3)",
        "F1@M present (3)",
    ]
    lines = [row("method", "minutes", *head), row(*["---"] * (2 + len(head)))]
    for key, name in names.items():
        r = load(f"keyphrase_inspec_{key}")
        if not r:
            continue
        kp = r["metrics"]["keyphrases"]
        cells = [pct(r["metrics"].get("f1"))] + [
            pct(kp[t][f"f1@{k}"]) for t in ("all", "present") for k in ("5", "10", "M")
        ]
        lines.append(row(name, r.get("train_minutes", "-"), *cells))
    return lines


def ensembles() -> list[str]:
    """benchmarks/tag_ensemble.py's results: each seed's run alone and the runs as one."""
    head = ["span F1", "P", "R", "F1@M present"]
    lines = [row("config", "extra flags", "run", *head), row(*["---"] * (3 + len(head)))]
    for path in sorted(RESULTS.glob("tag_ensemble_*.json")):
        r = json.loads(path.read_text())
        flags = [Path(x).name if "/" in x else x for x in r["setting"]["extra"]]  # a run folder by its name
        config, extra = Path(r["setting"]["config"]).name, " ".join(flags) or "-"
        for run, scores in r["valid"].items():
            if run == "ensemble" and len(r["valid"]) == 2:  # one seed: its own row says it all
                continue
            cells = [pct(scores.get(k)) for k in ("f1", "precision", "recall", "present f1@M")]
            lines.append(row(config, extra, run, *cells))
    return lines


def speed() -> list[str]:
    r = load("tag_speed")
    if not r:
        return []
    lines = [row("model", "how", "sentences/s"), row("---", "---", "---")]
    for measured in r["runs"]:
        m = measured["model"]
        name = (
            f"BiLSTM{'-CRF' * m['crf']}{' + characters' * m['char']}{' + intent' * m['intent']}, hidden {m['hidden']}"
        )
        for size, rate in measured["in_process_sentences_per_s"].items():
            lines.append(row(name, f"in process, `TagRun.predict`, batches of {size}", f"{rate:,}"))
        n = f"{measured['end_to_end_sentences']:,}"
        lines.append(
            row(
                name,
                f"`rnnkit tag predict` on {n} sentences, start included",
                f"{measured['end_to_end_sentences_per_s']:,}",
            )
        )
    return lines


def main() -> None:
    sections = {
        "ATIS (python benchmarks/tag_atis.py)": atis(),
        "CoNLL-2003 (python benchmarks/tag_conll2003.py)": single(
            "tag_conll2003_", {"f1": "dev F1", "precision": "P", "recall": "R"}, "words"
        ),
        "SST-2 (python benchmarks/classify_sst2.py)": single(
            "classify_sst2_", {"accuracy": "dev accuracy", "macro_f1": "macro-F1"}, "texts"
        ),
        "Inspec (python benchmarks/keyphrase_inspec.py)": inspec(),
        "Ensembles of taggers (python benchmarks/tag_ensemble.py)": ensembles(),
        "tag predict speed (python benchmarks/tag_speed.py)": speed(),
    }
    for title, lines in sections.items():
        print(f"{title}\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
