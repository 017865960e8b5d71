"""The ground API under attack: every route of a real `skyrack serve` on loopback, fuzzed from
the server's own OpenAPI description with schemathesis (valid and invalid requests alike).

What must hold for every request: no server error (5xx), no traceback or Python exception text
in a response, and every 4xx a JSON body {"error", "detail"} whose detail says what was wrong.
The stream (GET /api/stream) never ends, so it is fuzzed here by hand: its two inputs, the
`after` cursor and the Last-Event-ID header, with hypothesis, reading the first lines only.

Bounded: EXAMPLES requests per operation and mode (about 1,000 in all), each capped by a
timeout; a minute or so on two quiet cores.
"""

from __future__ import annotations

import json
import os
import re

import httpx
import pytest
import schemathesis
from ground_flight import Flight
from ground_helpers import ground_server
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

pytestmark = pytest.mark.slow

# SKYRACK_FUZZ_EXAMPLES=500 fuzzes deeper, with fresh random requests each run.
DEEPER = os.environ.get("SKYRACK_FUZZ_EXAMPLES")
EXAMPLES = int(DEEPER or 40)
TIMEOUT_S = 30.0
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not DEEPER,  # by default the same requests every run: a failure here reproduces
    phases=[Phase.explicit, Phase.generate],  # no shrinking: one minimal example is not worth minutes
    suppress_health_check=list(HealthCheck),
)
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+|\b\w+Error: ")


@pytest.fixture(scope="module")
def ground(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    flight = Flight(runs / "fuzzed")
    flight.step(60)  # a running mission with an hour of frames: commands are accepted
    # Rate limits off the table (they are tested on their own): every request reaches a route.
    args = ("--run", "fuzzed", "--assistant", "composed", "--rate", "100000", "--burst", "100000")
    with ground_server(runs, *args) as server:
        yield server


def _operations(ground):
    schema = schemathesis.openapi.from_url(f"{ground.url}/openapi.json", timeout=TIMEOUT_S)
    operations = [result.ok() for result in schema.get_all_operations()]
    return [op for op in operations if op.path != "/api/stream"]


def _content_type(headers) -> str:
    """schemathesis gives each header as a list of values."""
    value = headers.get("content-type") or headers.get("Content-Type") or ""
    return value[0] if isinstance(value, list) else value


def assert_sound(response_status: int, content_type: str, text: str, request: str) -> None:
    """The three properties every answer of the ground server has."""
    assert response_status < 500, f"{request}: server error {response_status}: {text[:300]}"
    assert not TRACEBACK.search(text), f"{request}: a traceback in the response: {text[:300]}"
    if 400 <= response_status < 500:
        assert content_type.startswith("application/json"), f"{request}: {response_status} as {content_type}"
        body = json.loads(text)
        assert set(body) == {"error", "detail"}, f"{request}: {body}"
        assert isinstance(body["error"], str) and body["error"], f"{request}: {body}"
        detail = body["detail"]
        if isinstance(detail, list):  # validation errors: where, and what is wrong there
            assert detail and all(d.get("where") is not None and d.get("problem") for d in detail), body
        else:
            assert isinstance(detail, str) and len(detail) >= 8, f"{request}: an unclear message {body}"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_route_survives_fuzzing(ground, mode):
    """Requests that fit the OpenAPI description, then requests that break it, on every route."""
    operations = _operations(ground)
    assert len(operations) >= 12, [op.label for op in operations]
    failures = []
    for operation in operations:

        @FUZZ_SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case):
            # The token goes with every request: without it the commands route only ever says 401.
            response = case.call(headers={"Authorization": f"Bearer {ground.token}"}, timeout=TIMEOUT_S)
            request = f"{case.method} {case.formatted_path} {case.query or ''} {str(case.body)[:200]}"
            assert_sound(response.status_code, _content_type(response.headers), response.text, request)

        try:
            fuzz()
        except Unsatisfiable:  # negative mode: an operation without inputs has nothing to break
            assert mode == GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every operation is fuzzed; all that failed are reported together
            failures.append(f"{operation.label}: {str(exc).splitlines()[0][:500]}")
    assert not failures, "\n".join(failures)


cursors = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.from_regex(r"\A-?\d{1,25}-\d{1,25}\Z"),
    st.builds(lambda a, b: f"{a}-{b}", st.integers(-(2**70), 2**70), st.integers(-(2**70), 2**70)),
)
# What an HTTP client can send as a header value: visible ASCII, spaces only inside.
header_safe = st.from_regex(r"\A([!-~]([ -~]{0,38}[!-~])?)?\Z")


@FUZZ_SETTINGS
@given(after=cursors, last_event_id=st.one_of(st.none(), header_safe))
def test_the_stream_survives_odd_cursors(ground, after, last_event_id):
    params = {} if after is None else {"after": after}
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
    with httpx.Client(base_url=ground.url, timeout=TIMEOUT_S) as client:
        with client.stream("GET", "/api/stream", params=params, headers=headers) as response:
            if response.status_code != 200:
                text = response.read().decode()
                assert_sound(
                    response.status_code, response.headers.get("content-type", ""), text, str(params)
                )
                return
            first = next(response.iter_lines())
            assert first.startswith("retry: "), first
