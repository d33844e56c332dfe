"""Endpoints whose input or output is not text: ``/transcribe`` (a WAV upload, CTC) and ``/generate`` (MIDI, music).

Audio is decoded off the event loop and off the model thread (starlette's thread pool): a minute of audio takes
a moment to decode and resample, and the model need not wait for it. Transcriptions batch like texts; music
generation does not (each continuation is a loop of single steps) but shares the queue and the model thread.
"""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from rnnkit.data.music import chord_roll, pitches_to_roll, roll_to_pitches, write_midi
from rnnkit.errors import RnnkitError
from rnnkit.serve.endpoints import Endpoints, batcher, options, stream_lines
from rnnkit.serve.schemas import GenerateRequest

TRANSCRIBE_QUERY = {"beam_size", "timestamps"}
TRANSCRIBE_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "audio/wav": {"schema": {"type": "string", "format": "binary"}},
        },
        "required": True,
    }
}


def ctc_endpoints(run: Any) -> Endpoints:
    router = APIRouter(tags=["speech"])

    def transcribe(items: list[np.ndarray], opts: dict) -> list[dict]:
        return run.transcribe(items, **opts)

    @router.post("/transcribe", openapi_extra=TRANSCRIBE_BODY)
    async def transcribe_audio(
        request: Request, beam_size: Annotated[int, Query(ge=1, le=64)] = 1, timestamps: bool = False
    ) -> dict:
        """The transcript of an audio file (WAV, FLAC, OGG or MP3; any rate, mono or stereo), sent as the
        multipart field ``file`` (``curl -F file=@a.wav``) or as the whole body (``--data-binary @a.wav``):
        ``{"text", "seconds"}``; ``?timestamps=true`` adds ``chars``: ``[{"char", "start", "end"}]`` in seconds;
        ``?beam_size=N`` (1..64) decodes with a prefix beam search instead of greedily."""
        unknown = sorted(set(request.query_params) - TRANSCRIBE_QUERY)
        if unknown:
            raise HTTPException(422, f"unknown query parameter(s) {unknown}: /transcribe takes beam_size, timestamps")
        data = await _upload(request)
        limits = options(request)
        audio = await run_in_threadpool(decode_audio, data, limits.max_audio_seconds)
        result = await batcher(request).submit("transcribe", audio, beam_size=beam_size, timestamps=timestamps)
        return result | {"seconds": len(audio) / 16000}

    return Endpoints(router, {"transcribe": transcribe})


async def _upload(request: Request) -> bytes:
    """The audio bytes of a multipart upload (one field, ``file``) or of the raw body."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await request.body()
    form = await request.form(max_files=1, max_fields=1)
    extra = sorted(set(form.keys()) - {"file"})
    upload = form.get("file")
    if extra or upload is None or isinstance(upload, str):
        problem = f"unknown field(s) {extra}" if extra else "no file in the field 'file'"
        raise HTTPException(422, f"{problem}: send the audio as the multipart file field 'file' (curl -F file=@a.wav)")
    return await upload.read()


def decode_audio(data: bytes, max_seconds: float) -> np.ndarray:
    """Uploaded bytes as float32 mono samples at 16 kHz, as :func:`rnnkit.data.speech.load_audio` reads a file."""
    from rnnkit.data.speech import SAMPLE_RATE, _soundfile, resample

    if not data:
        raise RnnkitError("the upload is empty: send a WAV, FLAC, OGG or MP3 file")
    sf = _soundfile()
    try:
        info = sf.info(io.BytesIO(data))
        if info.frames > max_seconds * info.samplerate:
            seconds = info.frames / info.samplerate
            raise HTTPException(
                413, f"the audio lasts {seconds:.1f} s, longer than this server's --max-audio-seconds {max_seconds:g}"
            )
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, sf.SoundFileError, RuntimeError, TypeError, ValueError, OSError) as err:
        lines = str(getattr(err, "error_string", "") or err).strip().splitlines()
        reason = lines[0].rstrip(".") if lines else type(err).__name__
        message = f"the upload is not audio rnnkit can read ({reason}): send a WAV, FLAC, OGG or MP3 file"
        raise RnnkitError(message) from None
    mono = samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    if not np.isfinite(mono).all():
        raise RnnkitError("the audio has NaN or infinite samples: send it again, made afresh")
    return resample(mono, rate, SAMPLE_RATE)


def music_endpoints(run: Any) -> Endpoints:
    router = APIRouter(tags=["music"])

    def generate(items: list[dict], _: dict) -> list[dict]:
        out = []
        for kw in items:
            roll = run.generate(kw["roll"], kw["steps"], temperature=kw["temperature"], sample_seed=kw["seed"])
            out.append({"roll": roll, "midi": midi_bytes(roll)})
        return out

    @router.post("/generate", responses={200: {"content": {"audio/midi": {}}}})
    async def generate_music(body: GenerateRequest, request: Request) -> Any:
        """The seed (``chord``, or ``seed_steps``) continued by ``steps`` sampled steps (one step is a quarter
        note), as a MIDI file (``audio/midi``); ``"format": "json"`` answers ``{"seed_steps", "steps": [[pitches],
        ...], "midi_base64"}`` instead, and ``"stream": true`` sends JSON lines as each step is drawn:
        ``{"step", "pitches"}``, then ``{"done": true, "seed_steps", "steps"}``."""
        limit = options(request).max_length
        for name, count in (("steps", body.steps), ("seed_steps", len(body.seed_steps or []))):
            if count > limit:
                raise HTTPException(413, f"{name} {count:,} is more than this server's --max-length {limit:,}")
        roll = pitches_to_roll(body.seed_steps) if body.seed_steps else chord_roll(body.chord)
        if body.stream:
            made = [0]

            def piece(step: Any) -> dict:
                made[0] += 1
                return {"step": made[0], "pitches": roll_to_pitches(step)[0]}

            def done() -> dict:
                return {"done": True, "seed_steps": len(roll), "steps": made[0]}

            make = lambda: run.stream(roll, body.steps, temperature=body.temperature, sample_seed=body.seed)  # noqa: E731
            return await stream_lines(request, make, piece, done)
        kw = {"roll": roll, "steps": body.steps, "temperature": body.temperature, "seed": body.seed}
        result = await batcher(request).submit("generate", kw)
        if body.format == "json":
            midi = base64.b64encode(result["midi"]).decode("ascii")
            return {"seed_steps": len(roll), "steps": roll_to_pitches(result["roll"]), "midi_base64": midi}
        disposition = {"Content-Disposition": 'attachment; filename="generated.mid"'}
        return Response(result["midi"], media_type="audio/midi", headers=disposition)

    return Endpoints(router, {"generate": generate})


def midi_bytes(roll: Any) -> bytes:
    """A roll as the bytes of a MIDI file (:func:`rnnkit.data.music.write_midi` writes files, atomically)."""
    with tempfile.TemporaryDirectory(prefix="rnnkit-serve-") as tmp:
        path = Path(tmp) / "generated.mid"
        write_midi(roll, path)
        return path.read_bytes()
