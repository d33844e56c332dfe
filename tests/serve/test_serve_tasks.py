"""Every endpoint of every served task on a tiny run: the shapes a client (or a page) reads, and that they
agree with the run's own methods."""

import io
import json

import mido
import pytest
import soundfile as sf

from rnnkit.data.music import read_midi


@pytest.mark.parametrize("task", ["classify", "tag", "lm", "translate", "music", "ctc"])
def test_info_health_and_openapi_describe_the_run(task, client):
    c = client(task)
    info = c.get("/info").json()
    expected = {
        "classify": ["/predict"], "tag": ["/predict"], "lm": ["/score", "/sample"], "translate": ["/translate"],
        "music": ["/generate"], "ctc": ["/transcribe"],
    }[task]  # fmt: skip
    assert info["task"] == task and info["endpoints"] == ["/health", "/info", "/openapi.json", *expected]
    assert info["parameters"] > 0 and {"model", "train", "data"} <= set(info["config"])
    assert info["limits"]["max_batch"] == 32 and all(n > 0 for n in info["vocab_sizes"].values())
    health = c.get("/health").json()
    assert health["status"] == "ok" and health["queue"] == 0 and health["batches"] == {}
    paths = c.get("/openapi.json").json()["paths"]
    assert set(expected) <= set(paths)
    assert c.get("/docs").status_code == 404  # Swagger UI needs a CDN: not served (see rnnkit.serve.app)


def test_classify_predict_matches_the_run_and_shows_attention(client, loaded):
    texts = ["the very movie", "a plot was a story"]
    results = client("classify").post("/predict", json={"texts": texts}).json()["results"]
    expected = loaded("classify").predict(texts)
    assert [r["label"] for r in results] == [r["label"] for r in expected]
    assert results[0]["probabilities"].keys() == {"neg", "pos"}
    assert results[0]["probability"] == pytest.approx(expected[0]["probability"], abs=1e-6)
    assert [token for token, _ in results[1]["attention"]] == texts[1].split()


def test_tag_predict_gives_tokens_with_tags(client):
    (result,) = client("tag").post("/predict", json={"texts": ["the  movie was\ta film"]}).json()["results"]
    assert result["tokens"] == ["the", "movie", "was", "a", "film"]
    assert len(result["tags"]) == len(result["confidence"]) == 5 and isinstance(result["spans"], list)


@pytest.mark.filterwarnings("ignore:3 priming token")
def test_lm_sample_score_and_stream(client, loaded):
    c, run = client("lm"), loaded("lm")
    body = {"prime": "the ", "length": 12, "seed": 3, "temperature": 0.8}
    sample = c.post("/sample", json=body).json()
    assert sample["text"] == run.sample("the ", length=12, seed=3, temperature=0.8)
    assert sample["text"].startswith("the ") and sample["tokens"] <= 12 and sample["unknown_tokens"] == 0
    response = c.post("/sample", json=body | {"stream": True})
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0] == {"piece": "the "} and lines[-1]["done"] is True
    assert "".join(line["piece"] for line in lines[:-1]) == lines[-1]["text"] == sample["text"]
    assert c.post("/sample", json={"prime": "qqq", "length": 0}).json()["unknown_tokens"] == 3

    scored = c.post("/score", json={"texts": ["the movie", "zq zq zq zq"]}).json()["results"]
    assert [r["rank"] for r in scored] == [1, 2] and scored[0]["logprob"] > scored[1]["logprob"]
    assert scored[0]["text"] == "the movie" and scored[0]["tokens"] == len("the movie") + 1


def test_translate_gives_n_best_and_attention(client, loaded):
    texts = ["eht eivom", "a yrots saw"]
    results = client("translate").post("/translate", json={"texts": texts, "n_best": 2, "attention": True})
    results = results.json()["results"]
    assert [len(r["translations"]) for r in results] == [2, 2]
    best = loaded("translate").translate(texts, n_best=2)
    assert [r["translations"][0]["text"] for r in results] == [n[0]["text"] for n in best]
    attention = results[1]["attention"]
    assert attention["source"] == texts[1].split() and attention["target"][-1] == "<eos>"
    assert len(attention["weights"]) == len(attention["target"]) and all(len(row) == 3 for row in attention["weights"])
    assert all(sum(row) == pytest.approx(1, abs=1e-4) for row in attention["weights"])


def test_music_generate_answers_midi_json_or_a_stream(client, tmp_path):
    c = client("music")
    response = c.post("/generate", json={"chord": [60, 64, 67], "steps": 6, "seed": 1})
    assert response.status_code == 200 and response.headers["content-type"] == "audio/midi"
    (tmp_path / "g.mid").write_bytes(response.content)
    assert mido.MidiFile(tmp_path / "g.mid").type == 0
    as_json = c.post("/generate", json={"chord": [60, 64, 67], "steps": 6, "seed": 1, "format": "json"}).json()
    assert as_json["seed_steps"] == 1 and len(as_json["steps"]) == 7 and as_json["steps"][0] == [60, 64, 67]
    assert read_midi(tmp_path / "g.mid").shape[0] <= 7  # trailing silent steps write no notes
    seeded = c.post("/generate", json={"seed_steps": [[60], [62], [64]], "steps": 2, "format": "json"}).json()
    assert seeded["seed_steps"] == 3 and seeded["steps"][:3] == [[60], [62], [64]]
    lines = [json.loads(x) for x in c.post("/generate", json={"steps": 6, "seed": 1, "stream": True}).text.splitlines()]
    assert [x["pitches"] for x in lines[:-1]] == as_json["steps"][1:]
    assert lines[-1] == {"done": True, "seed_steps": 1, "steps": 6}


def test_ctc_transcribes_a_wav_upload_or_body(client, loaded, tone):
    buffer = io.BytesIO()
    sf.write(buffer, tone(0.4, 300, rate=8000), 8000, format="WAV")  # another rate: resampled as files are
    wav = buffer.getvalue()
    c = client("ctc")
    upload = c.post("/transcribe", files={"file": ("a.wav", wav, "audio/wav")}).json()
    assert upload["seconds"] == pytest.approx(0.4, abs=0.01) and isinstance(upload["text"], str)
    raw = c.post("/transcribe?timestamps=true", content=wav, headers={"content-type": "audio/wav"})
    assert raw.status_code == 200 and "".join(ch["char"] for ch in raw.json()["chars"]) == raw.json()["text"]
    assert isinstance(c.post("/transcribe?beam_size=4", content=wav).json()["text"], str)
    assert upload["text"] == loaded("ctc").transcribe([tone(0.4, 300)])[0]["text"]


def test_the_page_and_its_script_are_served_and_unknown_paths_stay_404(client):
    c = client("tag")
    page = c.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="static/app.js"></script>' in page.text
    script = c.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert 'fetch("/info")' in script.text
    missing = c.get("/nope")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}


@pytest.mark.parametrize("task", ["tag", "classify"])
def test_an_ensemble_is_served_as_it_predicts(task, runs, tmp_path, train_cli, capsys):
    """``rnnkit serve RUN --ensemble RUN2``: /predict answers what the ensemble's own predict does, /info names
    the runs; other tasks, or runs of another task, are one line before anything is served."""
    from fastapi.testclient import TestClient

    import rnnkit.cli
    from rnnkit.serve.app import create_app
    from rnnkit.serve.options import ServeOptions
    from rnnkit.tasks.registry import ensemble_loader

    first = runs(task)
    data = first.parent / ("train.txt" if task == "tag" else "train.tsv")
    train_cli(task, "train", "--train", data, "--out", tmp_path / "second", "--no-progress", "--hidden", "6",
              "--embed", "5", "--epochs", "1", "--seed", "1", "--lr", "0.05")  # fmt: skip
    run = ensemble_loader(first, [tmp_path / "second"], what="serves")()
    texts = ["the very movie", "a plot was a film story"]
    with TestClient(create_app(run, ServeOptions(), task=task)) as client:
        assert client.get("/info").json()["ensemble"] == [first.name, "second"]
        served = client.post("/predict", json={"texts": texts}).json()["results"]
    if task == "tag":  # (the confidences: an ensemble's, not the first run's alone)
        expected, alone = (r.predict([t.split() for t in texts], scores=True) for r in (run, run.members[0]))
        assert [r["tags"] for r in served] == [r["tags"] for r in expected]
        scores = [[c for r in results for c in r["confidence"]] for results in (served, expected, alone)]
    else:
        expected, alone = run.predict(texts), run.members[0].predict(texts)
        assert [r["label"] for r in served] == [r["label"] for r in expected]
        scores = [[r["probability"] for r in results] for results in (served, expected, alone)]
    assert scores[0] == pytest.approx(scores[1], abs=1e-6) and scores[0] != pytest.approx(scores[2], abs=1e-3)
    other = runs("classify" if task == "tag" else "tag")
    for argv, message in (
        ([runs("lm"), "--ensemble", first], f"--ensemble serves taggers and classifiers; {runs('lm')} is a lm run"),
        ([first, "--ensemble", other], f"--ensemble: {other} is a {'classify' if task == 'tag' else 'tag'} run"),
    ):
        assert rnnkit.cli.main(["serve", *map(str, argv), "--port", "0"]) == 2
        assert message in capsys.readouterr().err
