"""A language model's endpoints: ``/sample`` (whole, or streamed token by token) and ``/score``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from starlette.requests import Request

from rnnkit.serve.endpoints import Endpoints, batcher, flat, options, split, stream_lines
from rnnkit.serve.guards import check_texts
from rnnkit.serve.schemas import SampleRequest, ScoreRequest


def lm_endpoints(run: Any) -> Endpoints:
    router = APIRouter(tags=["language model"])

    def score(items: list[list[str]], _: dict) -> list[list[dict]]:
        """All requests' texts in one call; each request's ranks are then among its own texts only."""
        out = split(run.score(flat(items)), items)
        for results in out:
            order = sorted(range(len(results)), key=lambda i: -results[i]["logprob"])
            for rank, i in enumerate(order, 1):
                results[i]["rank"] = rank
        return out

    def sample(items: list[dict], _: dict) -> list[dict]:
        """One sample per request: sampling one sequence is a loop of single steps that do not batch."""
        return [_sample(run, **kw) for kw in items]

    @router.post("/score")
    async def score_texts(body: ScoreRequest, request: Request) -> dict:
        """Each text's log-probability (nats), token count, perplexity and rank among the request's texts (1: the
        most probable): ``{"results": [{"text", "logprob", "tokens", "perplexity", "rank"}, ...]}``."""
        check_texts(body.texts, options(request))
        return {"results": await batcher(request).submit("score", body.texts)}

    @router.post("/sample")
    async def sample_text(body: SampleRequest, request: Request) -> Any:
        """A continuation of ``prime``: ``{"text", "prime", "tokens", "unknown_tokens"}`` (``text`` begins with the
        prime; ``unknown_tokens``: priming tokens read as <unk>). With ``"stream": true``, JSON lines as each
        token is drawn: ``{"piece": "..."}`` (the first is the prime), then ``{"done": true, "text", "tokens"}``."""
        limits = options(request)
        if len(body.prime) > limits.max_chars:
            raise HTTPException(
                413,
                f"the prime has {len(body.prime):,} characters, more than this server's --max-chars "
                f"{limits.max_chars:,}: send a shorter prime",
            )
        if body.length > limits.max_length:
            raise HTTPException(
                413, f"length {body.length:,} is more than this server's --max-length {limits.max_length:,} tokens"
            )
        kw = body.model_dump(exclude={"stream"})
        if not body.stream:
            return await batcher(request).submit("sample", kw)
        pieces: list[str] = []

        def piece(text: str) -> dict:
            pieces.append(text)
            return {"piece": text}

        def done() -> dict:
            return {"done": True, "text": "".join(pieces), "tokens": max(len(pieces) - 1, 0)}

        prime = kw.pop("prime")
        return await stream_lines(request, lambda: run.stream_sample(prime, **kw), piece, done)

    return Endpoints(router, {"score": score, "sample": sample})


def _sample(run: Any, prime: str, **kw: Any) -> dict[str, Any]:
    pieces = list(run.stream_sample(prime, **kw))
    unknown = run.vocab.unknown_count(run.tokens(prime))
    return {"text": "".join(pieces), "prime": prime, "tokens": len(pieces) - 1, "unknown_tokens": unknown}
