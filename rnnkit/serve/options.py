"""What ``rnnkit serve`` may be asked to do: batching, queueing and the limits on a request, as one dataclass.

The fields are the command's flags (:func:`rnnkit.config.add_flags`) and :func:`rnnkit.serve.app.create_app`'s
options, and ``/info`` reports them, so a client (or the page served later) knows the limits before it hits
one. This module imports no web framework: ``rnnkit serve --help`` works without ``rnnkit[serve]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit.config import check_fields, option


@dataclass
class ServeOptions:
    max_batch: int = option(32, "most requests of one endpoint run as one model call (1: one at a time)", ge=1, le=1024)
    batch_wait_ms: float = option(
        5.0, "after a request arrives, wait at most this long for more to batch with it", ge=0, le=1000
    )
    queue_size: int = option(256, "requests waiting for the model beyond this are answered 503 (busy)", ge=1)
    max_streams: int = option(16, "streamed samples at once; more are answered 503", ge=1)
    max_body_bytes: int = option(1 << 20, "a JSON request body larger than this is answered 413", ge=1024)
    max_texts: int = option(64, "texts in one request", ge=1)
    max_chars: int = option(10_000, "characters in one text (or sampling prime)", ge=1)
    max_length: int = option(2000, "tokens one /sample may draw, and steps one /generate may add", ge=1)
    max_audio_bytes: int = option(10 << 20, "a /transcribe upload larger than this is answered 413", ge=1024)
    max_audio_seconds: float = option(60.0, "a /transcribe upload longer than this is answered 413", gt=0)

    def __post_init__(self) -> None:
        check_fields(self)
