"""Endpoints of the tasks that read texts and answer per text: ``/predict`` (classify, tag) and ``/translate``.

All three batch well: every request's texts go to the run's list method in one call (which buckets them by
length), and the results are split back per request.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request

from rnnkit.errors import RnnkitError
from rnnkit.serve.endpoints import Endpoints, batcher, flat, options, split
from rnnkit.serve.guards import check_texts
from rnnkit.serve.schemas import PredictRequest, TranslateRequest


def classify_endpoints(run: Any) -> Endpoints:
    router = APIRouter(tags=["classify"])

    def predict(items: list[list[str]], _: dict) -> list[list[dict]]:
        return split(run.predict(flat(items)), items)

    @router.post("/predict")
    async def predict_labels(body: PredictRequest, request: Request) -> dict:
        """Each text's label: ``{"results": [{"label", "probability", "probabilities": {label: p}}, ...]}``; a
        multi-label run adds ``labels`` (those at or above its threshold), attention pooling adds ``attention``:
        ``[[token, weight], ...]``, the weight each word had in the decision."""
        check_texts(body.texts, options(request))
        return {"results": await batcher(request).submit("predict", body.texts)}

    return Endpoints(router, {"predict": predict})


def tag_endpoints(run: Any) -> Endpoints:
    router = APIRouter(tags=["tag"])

    def predict(items: list[list[str]], _: dict) -> list[list[dict]]:
        return split(run.predict([text.split() for text in flat(items)], scores=True), items)

    @router.post("/predict")
    async def predict_tags(body: PredictRequest, request: Request) -> dict:
        """Each text's words (split on whitespace) with their tags: ``{"results": [{"tokens", "tags",
        "confidence", "spans": [{"type", "start", "end", "text", "score"}]}, ...]}`` (``end`` exclusive,
        ``confidence``: each tag's probability); a run with an intent head adds ``intent``."""
        check_texts(body.texts, options(request))
        return {"results": await batcher(request).submit("predict", body.texts)}

    return Endpoints(router, {"predict": predict})


def translate_endpoints(run: Any) -> Endpoints:
    router = APIRouter(tags=["translate"])

    def translate(items: list[list[str]], opts: dict) -> list[list[dict]]:
        search = {k: opts[k] for k in ("beam_size", "length_penalty")}
        n_best = run.translate(flat(items), n_best=opts["n_best"], **search)
        results = [{"translations": hyps} for hyps in n_best]
        if opts["attention"]:
            for text, result in zip(flat(items), results, strict=True):
                source, target, weights = run.attention(text, **search)
                result["attention"] = {"source": source, "target": target, "weights": weights}
        return split(results, items)

    @router.post("/translate")
    async def translate_texts(body: TranslateRequest, request: Request) -> dict:
        """Each text's ``n_best`` translations, best first: ``{"results": [{"translations": [{"text", "score",
        "log_prob"}, ...]}, ...]}``. With ``"attention": true`` each result adds ``attention``: ``{"source":
        [tokens], "target": [tokens, "<eos>"], "weights": [[...]]}``, one row per target token, one column per
        source token, of the best translation."""
        check_texts(body.texts, options(request))
        if body.attention and run.model_config.attention == "none":
            raise RnnkitError('this run\'s model has no attention (attention = none): leave out "attention"')
        opts = body.model_dump(exclude={"texts"})
        return {"results": await batcher(request).submit("translate", body.texts, **opts)}

    return Endpoints(router, {"translate": translate})
