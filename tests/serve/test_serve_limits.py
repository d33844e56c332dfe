"""Bad input, each kind once: every answer is a 4xx with a one-line ``detail`` saying what to change, and the
server keeps serving after it (the next good request is answered)."""

import io

import numpy as np
import soundfile as sf

from rnnkit.errors import RnnkitError

JSON = {"content-type": "application/json"}


def check(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    assert all(w in detail for w in words), detail


def still_serves(c) -> None:
    assert c.post("/predict", json={"texts": ["a movie"]}).status_code == 200


def test_wrong_types_unknown_fields_and_malformed_json_are_422(client):
    c = client("classify")
    check(c.post("/predict", json={"texts": "a movie"}), 422, "body.texts", "valid list")
    check(c.post("/predict", json={"texts": [3]}), 422, "body.texts.0", "valid string")
    check(c.post("/predict", json=["a movie"]), 422, "body")
    check(c.post("/predict", json={}), 422, "body.texts", "Field required")
    check(c.post("/predict", json={"texts": []}), 422, "body.texts")
    check(c.post("/predict", json={"texts": ["a"], "label": "pos"}), 422, "body.label", "Extra inputs")
    check(c.post("/predict", content=b'{"texts": ["a movie"', headers=JSON), 422, "JSON decode error")
    check(c.post("/predict", content=b"[" * 50_000, headers=JSON), 400)  # nested past the parser's depth
    errors = c.post("/predict", json={"texts": [1, 2]}).json()["errors"]
    assert [e["loc"] for e in errors] == [["body", "texts", 0], ["body", "texts", 1]]
    still_serves(c)


def test_options_out_of_range_and_strict_types_are_422(client):
    c = client("lm")
    check(c.post("/sample", json={"temperature": -1}), 422, "body.temperature")
    check(c.post("/sample", json={"length": "5"}), 422, "body.length", "valid integer")
    check(c.post("/sample", json={"stream": 1}), 422, "body.stream", "valid boolean")
    check(c.post("/sample", content=b'{"temperature": NaN}', headers=JSON), 422, "body.temperature")
    check(c.post("/sample", json={"top_p": 0}), 422, "body.top_p")
    check(client("translate").post("/translate", json={"texts": ["a"], "beam_size": 2, "n_best": 3}), 422, "n_best")
    check(client("music").post("/generate", json={"chord": [200]}), 422, "body.chord.0")


def test_empty_text_is_422_and_huge_text_413(client):
    c = client("classify", max_chars=100, max_texts=3)
    check(c.post("/predict", json={"texts": ["a movie", "  \t"]}), 422, "text 2 is empty")
    check(c.post("/predict", json={"texts": ["x" * 101]}), 413, "101 characters", "--max-chars 100")
    check(c.post("/predict", json={"texts": ["a"] * 4}), 413, "4 texts", "--max-texts 3")
    lm = client("lm", max_chars=100, max_length=50)
    check(lm.post("/sample", json={"prime": "x" * 101}), 413, "prime", "--max-chars")
    check(lm.post("/sample", json={"length": 51}), 413, "--max-length 50")
    check(lm.post("/score", json={"texts": [""]}), 422, "text 1 is empty")
    check(client("music", max_length=50).post("/generate", json={"steps": 51}), 413, "--max-length 50")
    still_serves(c)


def test_a_body_over_the_limit_is_413_before_it_is_parsed(client, live_server, loaded):
    c = client("classify", max_body_bytes=2048)
    check(c.post("/predict", json={"texts": ["a " * 1100]}), 413, "--max-body-bytes 2,048")
    still_serves(c)
    import httpx

    from rnnkit.serve.app import create_app
    from rnnkit.serve.options import ServeOptions

    def chunks():  # no Content-Length: the limit is kept while the body streams in
        yield b'{"texts": ["'
        for _ in range(10):
            yield b"a " * 200
        yield b'"]}'

    app = create_app(loaded("classify"), ServeOptions(max_body_bytes=2048), task="classify")
    with live_server(app) as url:
        response = httpx.post(f"{url}/predict", content=chunks(), headers=JSON, timeout=10)
        check(response, 413, "--max-body-bytes")
        assert httpx.post(f"{url}/predict", json={"texts": ["a movie"]}, timeout=10).status_code == 200


def test_invalid_utf8_and_lone_surrogates_are_refused(client):
    c = client("classify")
    check(c.post("/predict", content=b'{"texts": ["caf\xe9"]}', headers=JSON), 400, "not UTF-8", "0xe9", "offset 15")
    check(c.post("/predict", content=b'{"texts": ["a\\ud800b"]}', headers=JSON), 422, "lone surrogate", "\\ud800")
    assert c.post("/predict", content='{"texts": ["café ☕"]}'.encode(), headers=JSON).status_code == 200


def wav_bytes(audio: np.ndarray, rate: int = 16000, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def test_audio_that_is_not_audio_too_long_or_too_big(client, tone):
    c = client("ctc", max_audio_seconds=1.0, max_audio_bytes=64 * 1024)
    check(c.post("/transcribe", files={"file": ("a.wav", b"RIFF....WAVEfmt nonsense", "audio/wav")}), 400,
          "not audio", "WAV")  # fmt: skip
    check(c.post("/transcribe", content=b"just text, not a sound"), 400, "not audio")
    check(c.post("/transcribe", content=b""), 400, "empty")
    check(c.post("/transcribe", content=wav_bytes(tone(1.5, 300))), 413, "1.5 s", "--max-audio-seconds 1")
    check(c.post("/transcribe", content=wav_bytes(tone(0.9, 300, rate=48000), 48000)), 413, "--max-audio-bytes 65,536")
    nan = tone(0.2, 300)
    nan[5] = np.nan
    check(c.post("/transcribe", content=wav_bytes(nan, subtype="FLOAT")), 400, "NaN")
    check(c.post("/transcribe", files={"file": ("a.wav", wav_bytes(tone(0.3, 300)))}, data={"lang": "en"}), 422,
          "unknown field", "lang")  # fmt: skip
    check(c.post("/transcribe", files={"audio": ("a.wav", wav_bytes(tone(0.3, 300)))}), 422)
    check(c.post("/transcribe?language=en", content=wav_bytes(tone(0.3, 300))), 422, "language")
    check(c.post("/transcribe?beam_size=0", content=wav_bytes(tone(0.3, 300))), 422, "beam_size")
    assert c.post("/transcribe", content=wav_bytes(tone(0.3, 300))).status_code == 200


def test_rnnkit_errors_are_400_and_other_errors_500_without_stopping_the_server(client):
    c = client("classify")
    batcher = c.app.state.batcher
    original = batcher.handlers["predict"]

    def fails(kind):
        def handler(items, options):
            raise kind("the texts are bad: send better ones")

        return handler

    batcher.handlers["predict"] = fails(RnnkitError)
    check(c.post("/predict", json={"texts": ["a"]}), 400, "the texts are bad")
    batcher.handlers["predict"] = fails(RuntimeError)
    check(c.post("/predict", json={"texts": ["a"]}), 500, "internal error (RuntimeError)", "the texts are bad")
    batcher.handlers["predict"] = lambda items, options: []  # a handler that loses results fails its requests
    check(c.post("/predict", json={"texts": ["a"]}), 500, "no result")

    def boom():
        raise KeyError("escaped the endpoint")

    c.app.add_api_route("/boom", boom)
    check(c.get("/boom"), 500, "KeyError")
    batcher.handlers["predict"] = original
    still_serves(c)
    check(c.get("/predict"), 405)
    check(c.post("/nothing", json={}), 404)
