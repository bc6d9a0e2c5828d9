"""The dead-letter record builder (sinks/deadletter.py `dead_letter`)."""
from __future__ import annotations

import base64

import orjson
import pytest

from core.deadletters import INVALID, OVERSIZE, REJECTED, dead_letter

FIELDS = {"reason", "connector", "event_type", "event_id", "error", "size", "payload", "at"}


def test_letter_has_every_field_of_the_contract() -> None:
    letter = dead_letter(REJECTED, "HTTP 400: bad event", b'{"id":"e1"}', connector="amp",
                         event_type="users.messages.email.Send", event_id="e1", at=0)
    assert letter == {"reason": "rejected", "connector": "amp", "event_type": "users.messages.email.Send",
                      "event_id": "e1", "error": "HTTP 400: bad event", "size": 11, "payload": '{"id":"e1"}',
                      "at": "1970-01-01T00:00:00.000Z"}


def test_optional_fields_default_to_null() -> None:
    letter = dead_letter(INVALID, "not JSON", b"nope")
    assert set(letter) == FIELDS
    assert letter["connector"] is None and letter["event_type"] is None and letter["event_id"] is None


def test_at_is_iso_utc_with_milliseconds() -> None:
    assert dead_letter(INVALID, "e", b"x", at=1_700_000_000.25)["at"] == "2023-11-14T22:13:20.250Z"


def test_utf8_payload_is_kept_as_text() -> None:
    letter = dead_letter(INVALID, "e", "zoë".encode())
    assert letter["payload"] == "zoë"
    assert "payload_encoding" not in letter


def test_non_utf8_payload_is_base64_with_payload_encoding() -> None:
    raw = b'{"id": "\xff\xfe"}'
    letter = dead_letter(INVALID, "not JSON", raw)
    assert letter["payload_encoding"] == "base64"
    assert base64.b64decode(letter["payload"]) == raw
    assert letter["size"] == len(raw)


def test_dict_payload_is_serialized_as_json() -> None:
    event = {"id": "e1", "event_type": "a.B", "time": 1, "name": "zoë"}
    letter = dead_letter(REJECTED, "400", event, connector="amp")
    assert orjson.loads(letter["payload"]) == event
    assert letter["size"] == len(orjson.dumps(event))


def test_str_payload_is_kept_and_sized_in_utf8_bytes() -> None:
    letter = dead_letter(INVALID, "e", "zoë")
    assert letter["payload"] == "zoë"
    assert letter["size"] == 4


@pytest.mark.parametrize("payload", [b"", b"x" * 1000, "é" * 10])
def test_size_is_the_payload_length_in_bytes(payload: bytes | str) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    assert dead_letter(OVERSIZE, "e", payload)["size"] == len(data)


def test_letter_is_one_json_line() -> None:
    line = orjson.dumps(dead_letter(INVALID, "bad\nerror", b"a\nb\xff"))
    assert b"\n" not in line
