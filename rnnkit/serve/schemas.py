"""The JSON bodies the endpoints accept, as pydantic models: types, ranges, and no unknown fields.

Every model forbids extra keys (a typo such as ``"temprature"`` is a 422 naming it, not a silently ignored
option) and is strict (``"5"`` is not a number, ``1`` is not true), so a client learns of a mistake at once.
Limits that depend on the server's flags (characters per text, texts per request, tokens per sample) are
checked by the endpoints and answered 413 (:mod:`rnnkit.serve.limits`); the ranges here are those of the
options themselves. Strings must be Unicode text: JSON can carry a lone surrogate (``"\\ud800"``), which no
UTF-8 page or tokenizer can use, so it is refused here rather than failing later when the answer is encoded.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from rnnkit.data.music import HIGHEST, LOWEST


def _unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"holds a lone surrogate (\\u{ord(text[err.start]):04x}), which is not Unicode text") from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]
Pitch = Annotated[int, Field(ge=LOWEST, le=HIGHEST, description="a MIDI pitch on the piano, 21 (A0) to 108 (C8)")]
Seed = Annotated[int, Field(ge=0, lt=2**63, description="random seed: the same request gives the same answer")]
Temperature = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False, description="0 is greedy; below 1 sharper")]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TextsRequest(Request):
    texts: list[Text] = Field(min_length=1, description="one or more texts (words are split on whitespace)")


class PredictRequest(TextsRequest):
    """``/predict``: a classifier's label, or a tagger's tags, for each text."""


class ScoreRequest(TextsRequest):
    """``/score``: a language model's log-probability of each text, and their ranks (1: most probable)."""


class SampleRequest(Request):
    """``/sample``: a language model's continuation of ``prime``; ``stream`` sends it token by token (NDJSON)."""

    prime: Text = ""
    length: int = Field(200, ge=0, description="the most tokens to draw (stops earlier at <eos>)")
    temperature: Temperature = 1.0
    top_k: int | None = Field(None, ge=1, le=1_000_000)
    top_p: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    seed: Seed = 0
    stream: bool = False


class TranslateRequest(TextsRequest):
    """``/translate``: each text's best translations; ``attention`` adds where the decoder looked."""

    beam_size: int = Field(5, ge=1, le=64)
    n_best: int = Field(1, ge=1, le=64)
    length_penalty: float = Field(1.0, ge=0, le=10, allow_inf_nan=False)
    attention: bool = False

    @model_validator(mode="after")
    def _n_best_in_beam(self) -> TranslateRequest:
        if self.n_best > self.beam_size:
            raise ValueError(f"n_best ({self.n_best}) cannot exceed beam_size ({self.beam_size})")
        return self


class GenerateRequest(Request):
    """``/generate``: continue a seed (a chord, or steps of pitches) and answer MIDI, or JSON with ``format``."""

    chord: list[Pitch] = Field([60, 64, 67], max_length=88, description="a one-step seed (C major by default)")
    seed_steps: list[list[Pitch]] | None = Field(
        None, min_length=1, description="a seed of several steps, each a list of pitches (instead of chord)"
    )
    steps: int = Field(64, ge=0, description="steps (quarter notes) to add to the seed")
    temperature: Temperature = 1.0
    seed: Seed = 0
    format: Literal["midi", "json"] = "midi"
    stream: bool = False
