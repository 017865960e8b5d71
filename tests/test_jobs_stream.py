"""The job stream's file form and the demo's mix."""

from __future__ import annotations

import json

import pytest

from skyrack.errors import UserError
from skyrack.jobs.stream import demo_stream, fields_of, read_stream


def test_a_stream_file_is_read_in_time_order_and_its_payloads_decoded(tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text(
        "# two jobs\n\n"
        + json.dumps({"at_s": 1800, "customer": "t", "kind": "infer", "payload_text": '["hi"]'})
        + "\n"
        + json.dumps({"at_s": 900, "customer": "f", "kind": "screen", "payload_b64": "AAE=", "priority": 8})
        + "\n"
    )
    first, second = read_stream(path)
    assert first["at_s"] == 900 and second["at_s"] == 1800
    assert fields_of(first)["payload"] == b"\x00\x01" and fields_of(second)["payload"] == b'["hi"]'
    assert fields_of(first)["priority"] == 8


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not JSON"),
        ('{"at_s": 1, "kind": "screen"}', "customer is required"),
        ('{"at_s": -5, "customer": "a", "kind": "screen"}', "at_s"),
        ('{"at_s": 1, "customer": "a", "kind": "screen", "colour": 1}', "unknown key"),
        ('{"at_s": 1, "customer": "a", "kind": "screen", "payload_b64": "!!"}', "not base64"),
        ('{"at_s": 1, "customer": "a", "kind": "screen", "deadline_in_s": 1, "deadline_t": 2}', "not both"),
    ],
)
def test_a_bad_stream_line_is_one_clear_error_naming_the_line(tmp_path, line, message):
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"at_s": 0, "customer": "a", "kind": "screen"}\n' + line + "\n")
    with pytest.raises(UserError, match=message) as err:
        read_stream(path)
    assert f"{path}:2" in str(err.value)


def test_the_demo_mix_is_seeded_and_holds_screens_inferences_and_refusals_on_purpose():
    day = demo_stream(1337, 86400.0)
    assert day == demo_stream(1337, 86400.0)
    kinds = [e["kind"] for e in day]
    assert kinds.count("screen") > kinds.count("infer") > 0
    assert len({e["customer"] for e in day}) == 3
    assert any(e.get("deadline_in_s") == 120 for e in day)  # no link meets these
    assert any(e.get("avoid_saa") for e in day)
    assert all(e["at_s"] < 86400.0 for e in day) and day == sorted(day, key=lambda e: e["at_s"])
