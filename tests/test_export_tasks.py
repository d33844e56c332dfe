"""``rnnkit export`` of the sequence tasks: onnxruntime's results equal torch's within 1e-4 at several batch sizes
and lengths (padding in every batch but one), the CRF's Viterbi path and seq2seq's greedy output equal torch's,
custom cells export, and bad input is one line. Tiny runs of a few steps: the numbers, not the quality, count."""

import json
import random

import numpy as np
import pytest
import torch

from rnnkit.export_layers import run_layer
from rnnkit.tasks.classify import make_batch as classify_batch
from rnnkit.tasks.registry import load_run
from rnnkit.tasks.seq2seq.model import make_batch as seq2seq_batch
from rnnkit.tasks.tag import collate

TOL = 1e-4
SHAPES = [(1, 1), (2, 5), (4, 9)]  # (batch, longest length); each batch but the first mixes lengths
FLAGS = ["--epochs", "1", "--batch-size", "8", "--no-progress"]
TRANSLATORS = {"translate": "general", "translate_dot": "dot", "translate_none": "none"}
WORDS = ["the", "a", "film", "plot", "was", "very", "good", "bad", "story", "dull", "fun"]
OTHER_WORDS = ["good", "bad", "film", "plot", "an", "awful", "great", "song", "the"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, train_cli):
    tmp, rng = tmp_path_factory.mktemp("export_tasks"), random.Random(0)
    texts = [[rng.choice(WORDS) for _ in range(rng.randint(1, 6))] for _ in range(24)]
    (tmp / "c.tsv").write_text("".join(f"{'pos' if 'good' in t else 'neg'}\t{' '.join(t)}\n" for t in texts))
    rows = [{"tokens": t, "tags": [_tag(w) for w in t], "intent": "pos" if "good" in t else "neg"} for t in texts]
    (tmp / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    small = ["--hidden", "8", "--embed", "6"]
    chars = ["--char", "--char-embed", "4", "--char-hidden", "3"]
    (tmp / "lm.txt").write_text("".join(" ".join(t) + "\n" for t in texts))
    others = [[rng.choice(OTHER_WORDS) for _ in range(rng.randint(1, 6))] for _ in range(24)]  # another vocabulary
    (tmp / "c2.tsv").write_text("".join(f"{'pos' if 'good' in t else 'neg'}\t{' '.join(t)}\n" for t in others))
    rows = [{"tokens": t, "tags": [_tag(w) for w in t], "intent": "pos" if "good" in t else "neg"} for t in others]
    (tmp / "t2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train_cli("lm", "train", "--train", tmp / "lm.txt", "--out", tmp / "char_lm", "--level", "char", "--hidden", "5",
              "--embed", "3", "--max-steps", "2", "--batch-size", "4", "--bptt", "10", "--no-progress")  # fmt: skip
    lm = ["--char-lm", tmp / "char_lm", "--char-lm-backward", tmp / "char_lm"]  # (one LM both ways: the plumbing)
    train = {
        "classify": ["classify", "train", "--train", tmp / "c.tsv", *small, "--bidirectional", "--pooling",
                     "attention", *chars],
        "classify_jordan": ["classify", "train", "--train", tmp / "c.tsv", *small, "--cell", "jordan", "--pooling",
                            "max"],
        "classify_labels": ["classify", "train", "--train", tmp / "c.tsv", *small, "--pooling", "label_attention"],
        "tag": ["tag", "train", "--train", tmp / "t.jsonl", *small, "--bidirectional", "--crf", "--intent",
                "--window", "1", *chars],
        "tag_clockwork": ["tag", "train", "--train", tmp / "t.jsonl", *small, "--cell", "clockwork"],
        "classify_charlm": ["classify", "train", "--train", tmp / "c.tsv", *small, "--pooling", "mean", *lm],
        "tag_charlm": ["tag", "train", "--train", tmp / "t.jsonl", *small, "--crf", "--window", "1", *chars, *lm],
        "classify_other": ["classify", "train", "--train", tmp / "c2.tsv", *small, "--pooling", "last"],
        "tag_other": ["tag", "train", "--train", tmp / "t2.jsonl", *small, "--crf", "--intent", "--cell", "gru"],
    }  # fmt: skip
    for name, argv in train.items():
        train_cli(*argv, "--out", tmp / name, *FLAGS)
    for side, suffix in (("src", "fo"), ("tgt", "en")):
        lines = [" ".join(t if side == "tgt" else [w[::-1] for w in reversed(t)]) for t in texts]
        (tmp / f"pairs.{suffix}").write_text("\n".join(lines) + "\n")
    for name, attention in TRANSLATORS.items():
        train_cli("translate", "train", "--train", tmp / "pairs", "--src-lang", "fo", "--tgt-lang", "en", *small,
                  "--attention", attention, "--dropout", "0", "--lr", "0.03", "--out", tmp / name,
                  *FLAGS[2:], "--epochs", "4")  # fmt: skip
    train_cli("ctc", "train", "--train", _manifest(tmp), "--out", tmp / "ctc", "--hidden", "8", "--layers", "1",
              "--channels", "8", "--n-mels", "16", "--cell", "mingru", *FLAGS[:2], "--batch-size", "4",
              "--no-progress")  # fmt: skip
    return {name: tmp / name for name in [*train, *TRANSLATORS, "ctc"]}


def _tag(word: str) -> str:
    return {"good": "B-POS", "bad": "B-NEG", "film": "B-THING", "plot": "B-THING"}.get(word, "O")


def _manifest(tmp):
    """Six noise recordings with short transcripts: enough for a CTC model's plumbing."""
    from rnnkit.data.speech import write_wav

    rng, rows = np.random.default_rng(0), []
    for i, text in enumerate(["one", "no", "on", "one no", "noon", "no one"]):
        write_wav(tmp / f"{i}.wav", 0.1 * rng.standard_normal(1600 + 800 * i).astype(np.float32))
        rows.append(json.dumps({"path": f"{i}.wav", "text": text}))
    (tmp / "manifest.jsonl").write_text("\n".join(rows) + "\n")
    return tmp / "manifest.jsonl"


def export(cli, run, out, *more):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    code, _, err = cli("export", run, "--format", "onnx", "--out", out, *more)
    assert code == 0, err
    return err


def session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def metadata(path):
    import onnx

    return json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["rnnkit"])


def random_batches(vocab_size, num_chars=0, seed=0):
    """For each of SHAPES: id lists of random lengths (the longest first) and, with ``num_chars``, each token's
    characters; and the same as padded arrays (chars (B, T, C), their lengths (B, T))."""
    g = torch.Generator().manual_seed(seed)
    for batch, steps in SHAPES:
        lengths = [steps, *torch.randint(1, steps + 1, (batch - 1,), generator=g).tolist()]
        seqs = [torch.randint(4, vocab_size, (n,), generator=g).tolist() for n in lengths]
        chars = [[torch.randint(1, max(num_chars, 2), (int(torch.randint(1, 5, (1,), generator=g)),),
                                generator=g).tolist() for _ in s] for s in seqs]  # fmt: skip
        grid, sizes = np.zeros((batch, steps, 4), np.int64), np.ones((batch, steps), np.int64)
        for b, words in enumerate(chars):
            for t, word in enumerate(words):
                grid[b, t, : len(word)], sizes[b, t] = word, len(word)
        yield seqs, (chars if num_chars else None), {"chars": grid, "char_lengths": sizes} if num_chars else {}


@pytest.mark.parametrize("name", ["classify", "classify_jordan", "classify_labels", "classify_charlm"])
def test_classifier_probabilities_equal_torch(runs, name, tmp_path, cli):
    assert "classify graph" in export(cli, runs[name], tmp_path / "c.onnx")
    run, s, meta = load_run(runs[name]), session(tmp_path / "c.onnx"), metadata(tmp_path / "c.onnx")
    assert meta["task"] == "classify" and meta["labels"] == list(run.labels.names)
    assert [i["name"] for i in meta["inputs"]] == [i.name for i in s.get_inputs()]
    for seqs, chars, extra in random_batches(len(run.vocab), len(run.chars or ())):
        batch = classify_batch(seqs, chars=chars)
        want = run.model.predict(batch)
        got = s.run(None, {"ids": batch.ids.numpy(), "lengths": batch.lengths.numpy(), **extra})
        assert np.abs(got[0] - want.probabilities.numpy()).max() < TOL
        if want.attention is not None:
            assert np.abs(got[1] - want.attention.numpy()).max() < TOL


@pytest.mark.parametrize("name", ["tag", "tag_clockwork", "tag_charlm"])
def test_tagger_emissions_and_viterbi_equal_torch(runs, name, tmp_path, cli):
    export(cli, runs[name], tmp_path / "t.onnx")
    run, s, meta = load_run(runs[name]), session(tmp_path / "t.onnx"), metadata(tmp_path / "t.onnx")
    model = run.model.eval()
    assert meta["crf"] == (model.crf is not None) and meta["tags"] == list(model.tag_names)
    for seqs, chars, extra in random_batches(len(run.vocabs.words), len(run.vocabs.chars or ()), seed=1):
        batch = collate(seqs, chars=chars)
        with torch.no_grad():
            emissions, intents = model(batch)
        decoded = model.decode(batch)
        got = s.run(None, {"words": batch.words.numpy(), "lengths": batch.lengths.numpy(), **extra})
        real = (batch.words != 0).numpy() | (np.arange(batch.words.shape[1]) < batch.lengths.numpy()[:, None])
        assert np.abs(got[0] - emissions.numpy())[real].max() < TOL
        np.testing.assert_array_equal(got[1], decoded.tags.numpy())  # Viterbi (or argmax), -1 after each length
        if intents is not None:
            assert np.abs(got[2] - intents.softmax(-1).numpy()).max() < TOL


def _encode(texts, vocab, lowercase):
    """Texts (lists of words) as the padded arrays an exported graph reads, in its vocabularies' ids (the
    metadata's): ids (B, T), lengths (B,), chars (B, T, C) and char_lengths (B, T) when ``vocab`` has "chars"."""
    ids = {t: i for i, t in enumerate(vocab["vocab"]["tokens"])}
    B, T = len(texts), max(map(len, texts))
    words, lengths = np.zeros((B, T), np.int64), np.array([len(t) for t in texts])
    for b, text in enumerate(texts):
        words[b, : len(text)] = [ids.get(w.lower() if lowercase else w, vocab["vocab"]["unk_id"]) for w in text]
    if "chars" not in vocab:
        return words, lengths, {}
    char_ids, C = {t: i for i, t in enumerate(vocab["chars"]["tokens"])}, max(len(w) for t in texts for w in t)
    grid, sizes = np.zeros((B, T, C), np.int64), np.ones((B, T), np.int64)
    for b, text in enumerate(texts):
        for t, word in enumerate(text):
            grid[b, t, : len(word)] = [char_ids.get(c, vocab["chars"]["unk_id"]) for c in word]
            sizes[b, t] = len(word)
    return words, lengths, {"chars": grid, "char_lengths": sizes}


ENSEMBLE_TEXTS = [  # both vocabularies' words, words neither run knows, a character only one knows ("w", "z")
    ["the", "awful", "film", "was", "good"],
    ["a", "great", "song"],
    ["zzz"],
    ["fun", "story", "wow", "an", "dull", "plot", "bad"],
]


def test_an_ensemble_exports_as_one_graph_that_answers_as_the_ensemble(runs, tmp_path, cli):
    """``rnnkit export RUN --ensemble RUN2 ...``: runs of different vocabularies, characters, cells and pooling as
    one graph over the union of their vocabularies; onnxruntime's probabilities and attention (classify), and
    emissions, Viterbi tags and intents (tag), equal the ensemble's own in torch; other tasks are one line."""
    from rnnkit.errors import RnnkitError
    from rnnkit.export_tasks import tag_graphs
    from rnnkit.tasks import classify_run, tag_run
    from rnnkit.tasks.tag_run import TaggedSentence

    names = ["classify", "classify_charlm", "classify_other"]
    err = export(cli, runs[names[0]], tmp_path / "c.onnx", "--ensemble", runs[names[1]], runs[names[2]])
    assert "classify graph of a lstm model and 2 more as one" in err, err
    meta, s = metadata(tmp_path / "c.onnx"), session(tmp_path / "c.onnx")
    run = classify_run.load_runs([runs[n] for n in names])
    assert meta["ensemble"] == names and {"awful", "story"} <= set(meta["vocab"]["tokens"])
    words, lengths, chars = _encode(ENSEMBLE_TEXTS, meta, meta["lowercase"])
    got = s.run(None, {"ids": words, "lengths": lengths, **chars})
    want = run.predict([" ".join(t) for t in ENSEMBLE_TEXTS])
    alone = run.members[0].predict([" ".join(t) for t in ENSEMBLE_TEXTS])
    probs = np.array([[r["probabilities"][k] for k in meta["labels"]] for r in want])
    assert (
        np.abs(got[0] - probs).max() < TOL
        and np.abs(probs - [list(r["probabilities"].values()) for r in alone]).max() > 1e-3
    )
    for b, result in enumerate(want):  # the mean attention of the runs that attend: here the first's alone
        assert np.abs(got[1][b, : lengths[b]] - [w for _, w in result["attention"]]).max() < TOL

    names = ["tag", "tag_other"]
    export(cli, runs[names[0]], tmp_path / "t.onnx", "--ensemble", runs[names[1]])
    meta, s = metadata(tmp_path / "t.onnx"), session(tmp_path / "t.onnx")
    run = tag_run.load_runs([runs[n] for n in names])
    words, lengths, chars = _encode(ENSEMBLE_TEXTS, meta, meta["lowercase"])
    emissions, tags, intents = s.run(None, {"words": words, "lengths": lengths, **chars})
    batch = run.encode([TaggedSentence(t, []) for t in ENSEMBLE_TEXTS], gold=False).batch(range(len(ENSEMBLE_TEXTS)))
    with torch.no_grad():
        want_emissions, want_intents = run.model.eval()(batch)
    real = np.arange(words.shape[1]) < lengths[:, None]
    assert np.abs(emissions - want_emissions.numpy())[real].max() < TOL
    assert np.abs(intents - want_intents.softmax(-1).numpy()).max() < TOL
    predicted = run.predict(ENSEMBLE_TEXTS)
    assert [[meta["tags"][i] for i in row[:n]] for row, n in zip(tags, lengths, strict=True)] == [
        r["tags"] for r in predicted
    ]
    run.members[1].data.lowercase = not run.members[0].data.lowercase  # one graph reads one lowercasing
    with pytest.raises(RnnkitError, match="the runs differ in --lowercase, so one graph cannot read their words"):
        tag_graphs(run)
    for argv, message in (
        ([runs["translate"], "--ensemble", runs["tag"]], "--ensemble exports taggers and classifiers"),
        ([runs["tag"], "--ensemble", runs["classify"]], "is a classify run, not a tag run like"),
    ):
        code, _, err = cli("export", *argv, "--format", "onnx", "--out", tmp_path / "bad.onnx")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad.onnx").exists()


@pytest.mark.parametrize("name", TRANSLATORS)
def test_seq2seq_greedy_decoding_with_onnxruntime_equals_torch(runs, name, tmp_path, cli):
    export(cli, runs[name], tmp_path / "mt.onnx")
    assert not (tmp_path / "mt.onnx").exists()
    encoder, decoder = session(tmp_path / "mt.encoder.onnx"), session(tmp_path / "mt.decoder.onnx")
    meta, run = metadata(tmp_path / "mt.decoder.onnx"), load_run(runs[name])
    assert meta["files"] == {"encoder": "mt.encoder.onnx", "decoder": "mt.decoder.onnx"} and meta["part"] == "decoder"
    state_names = [s["name"] for s in meta["state"]]
    outputs = []
    for seqs, _, _ in random_batches(len(run.src_vocab), seed=2):
        batch = seq2seq_batch(seqs, pad_id=0, bos=2, eos=3)
        want = [h[0].tokens for h in run.model.translate(batch.src, batch.src_lengths)]
        feed = {"src": batch.src.numpy(), "lengths": batch.src_lengths.numpy()}
        enc = dict(zip([o.name for o in encoder.get_outputs()], encoder.run(None, feed), strict=True))
        state, torch_state = [enc[n] for n in state_names], run.model.encode(batch.src, batch.src_lengths)
        tokens, limit = np.full(len(seqs), meta["bos_id"]), 2 * batch.src_lengths.numpy() + 10
        got, live = [[] for _ in seqs], np.ones(len(seqs), bool)
        for t in range(int(limit.max()) + 1):  # greedy search, as rnnkit.tasks.seq2seq.search does it
            fixed = {k: enc[k] for k in ("memory", "mask", "keys") if k in enc}
            log_probs, *state = decoder.run(
                None, {"tokens": tokens, **fixed, **dict(zip(state_names, state, strict=True))}
            )
            state = state[: len(state_names)]  # then the attention weights, unless there is no attention
            with torch.no_grad():
                expected, torch_state = run.model.step(torch.from_numpy(tokens), torch_state)
            assert np.abs(log_probs - expected.numpy()).max() < TOL
            tokens = log_probs.argmax(-1)
            for b in np.flatnonzero(live):
                if tokens[b] == meta["eos_id"] or t == limit[b]:
                    live[b] = False
                else:
                    got[b].append(int(tokens[b]))
            if not live.any():
                break
        assert got == want
        outputs += got
    assert len({tuple(o) for o in outputs}) > 1  # the model writes different things for different sources


def test_ctc_log_probs_and_lengths_equal_torch(runs, tmp_path, cli):
    export(cli, runs["ctc"], tmp_path / "ctc.onnx")
    run, s, meta = load_run(runs["ctc"]), session(tmp_path / "ctc.onnx"), metadata(tmp_path / "ctc.onnx")
    assert meta["labels"][0] == "<blank>" and meta["features"]["n_mels"] == 16 and meta["cell"] == "mingru"
    g = torch.Generator().manual_seed(3)
    for batch, frames in [(1, 1), (2, 17), (3, 40)]:
        lengths = torch.tensor([frames, *torch.randint(1, frames + 1, (batch - 1,), generator=g).tolist()])
        features = torch.randn(batch, frames, 16, generator=g)
        with torch.no_grad():
            log_probs, out_lengths = run.model(features, lengths)
        got, got_lengths = s.run(None, {"features": features.numpy(), "lengths": lengths.numpy()})
        np.testing.assert_array_equal(got_lengths, out_lengths.numpy())
        assert np.abs(got - log_probs.numpy()).max() < TOL


@pytest.mark.parametrize("cell", ["lstm", "gru", "elman", "jordan", "scrn", "clockwork", "mingru"])
def test_unpacked_layers_equal_the_layers_for_every_cell(cell):
    """What every graph runs its layers with: outputs and each sequence's final state, no packing."""
    from rnnkit.compat import make_layer

    layer = make_layer(cell, 3, 8, num_layers=2, bidirectional=True, batch_first=True).eval()
    x, lengths = torch.randn(4, 6, 3), torch.tensor([6, 2, 1, 5])
    with torch.no_grad():
        want, want_state = layer(x, lengths=lengths)
        got, got_state = run_layer(layer, x, lengths, final=True)
    assert (got - want).abs().max() < 1e-5
    want_state = (want_state,) if isinstance(want_state, torch.Tensor) else want_state
    assert all((g - w).abs().max() < 1e-5 for g, w in zip(got_state, want_state, strict=True))


def test_an_operator_onnx_cannot_express_names_the_cell(runs, tmp_path, cli, monkeypatch):
    pytest.importorskip("onnxscript")
    from rnnkit.cells import JordanCell

    step = JordanCell.step
    monkeypatch.setattr(JordanCell, "step", lambda self, x, s: step(self, torch.special.airy_ai(x), s))
    code, _, err = cli("export", runs["classify_jordan"], "--format", "onnx", "--out", tmp_path / "j.onnx")
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "j.onnx").exists()
    assert "ONNX cannot express the classify graph of this jordan model" in err and "special_airy_ai" in err


def test_bad_runs_and_torchscript_are_one_line(runs, tmp_path, cli):
    code, _, err = cli("export", tmp_path / "nothing", "--format", "onnx", "--out", tmp_path / "x.onnx")
    assert code == 2 and "no such run folder" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("export", runs["tag"], "--format", "torchscript", "--out", tmp_path / "t.pt")
    assert code == 2 and "TorchScript cannot export a tag run" in err and "--format onnx" in err
    assert len(err.strip().splitlines()) == 1
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in runs["classify_jordan"].iterdir():
        if f.is_file():
            (broken / f.name).write_bytes(f.read_bytes())
    (broken / "best.safetensors").write_text("not weights")
    code, _, err = cli("export", broken, "--format", "onnx", "--out", tmp_path / "x.onnx")
    assert code == 2 and "best.safetensors is corrupted" in err and len(err.strip().splitlines()) == 1
    (broken / "config.json").write_text("{")
    code, _, err = cli("export", broken, "--format", "onnx", "--out", tmp_path / "x.onnx")
    assert code == 2 and "config.json is not a valid JSON run config" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()
