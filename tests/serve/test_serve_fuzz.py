"""Hypothesis throws generated requests at ``/predict`` and ``/sample``: any JSON, the right keys with values of
any type, unknown keys, raw bytes. The server may refuse them, but never with a 5xx, always with a string
``detail``, and it answers a good request afterwards."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JSON = {"content-type": "application/json"}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
texts = st.lists(st.text(max_size=40), max_size=4)


def bodies(fields: dict) -> st.SearchStrategy:
    """Objects with some of ``fields`` (each a good value or any value), sometimes an unknown key; or anything."""
    known = st.fixed_dictionaries({}, optional={k: good | values for k, good in fields.items()})
    extra = st.dictionaries(st.text(max_size=8), values, max_size=2)
    return st.one_of(known, st.builds(lambda a, b: b | a, known, extra), values)


def check(response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["detail"], str)


def send(c, path: str, body, raw: bytes | None = None):
    content = raw if raw is not None else json.dumps(body).encode()  # NaN and lone surrogates included
    return c.post(path, content=content, headers=JSON)


@pytest.fixture
def fuzzed(client):
    made = {}

    def get(task: str):
        if task not in made:  # one app per test, not per example: the examples share it, as clients would
            made[task] = client(task, max_length=40, max_chars=400)
        return made[task]

    return get


@FUZZ
@given(body=bodies({"texts": texts}), raw=st.none() | st.binary(max_size=64))
def test_predict_never_answers_5xx(fuzzed, body, raw):
    for task in ("classify", "tag"):
        c = fuzzed(task)
        check(send(c, "/predict", body, raw))
        assert c.post("/predict", json={"texts": ["a movie"]}).status_code == 200


@FUZZ
@given(
    body=bodies({
        "prime": st.text(max_size=30), "length": st.integers(-5, 60), "temperature": st.floats(-1, 3),
        "top_k": st.integers(-2, 50), "top_p": st.floats(-0.5, 1.5), "seed": st.integers(-3, 2**70),
        "stream": st.booleans(),
    }),
    raw=st.none() | st.binary(max_size=64),
)  # fmt: skip
@pytest.mark.filterwarnings("ignore:.*priming token")
def test_sample_never_answers_5xx(fuzzed, body, raw):
    c = fuzzed("lm")
    response = send(c, "/sample", body, raw)
    check(response)
    if response.status_code == 200 and isinstance(body, dict) and body.get("stream") is True and raw is None:
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert lines[-1].get("done") is True, lines[-1]
    assert c.post("/sample", json={"length": 3}).status_code == 200
