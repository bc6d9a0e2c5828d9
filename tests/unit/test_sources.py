"""`--source` parsing and dead-letter replay (pipeline/sources.py)."""
from __future__ import annotations

import base64

import orjson
import pytest

from pipeline.sources import DeadLetterSource, FileSource, GenerateSource, parse_source, replay_record
from core.deadletters import dead_letter
from core.records import Replay

# --- accepted forms ---------------------------------------------------------------------------------------------


def test_file_source_keeps_its_glob() -> None:
    spec = parse_source("file:events/*.jsonl.gz")
    assert spec == FileSource("events/*.jsonl.gz")
    assert spec.bounded is True


def test_file_source_glob_may_be_a_url_with_colons() -> None:
    assert parse_source("file:gs://bucket/events/*.jsonl") == FileSource("gs://bucket/events/*.jsonl")


def test_deadletter_source_keeps_its_glob() -> None:
    spec = parse_source("deadletter:out/dead-letter/**/*.jsonl")
    assert spec == DeadLetterSource("out/dead-letter/**/*.jsonl")
    assert spec.bounded is True


def test_generate_source_with_every_parameter() -> None:
    spec = parse_source("generate:count=10,seed=3,rate=5,invalid=1,oversize=1")
    assert spec == GenerateSource(count=10, seed=3, rate=5.0, invalid=1, oversize=1)
    assert spec.bounded is False


def test_generate_source_with_count_only_is_bounded_with_defaults() -> None:
    spec = parse_source("generate:count=10")
    assert spec == GenerateSource(count=10, seed=0, rate=None, invalid=0, oversize=0)
    assert spec.bounded is True


def test_generate_rate_may_be_fractional() -> None:
    assert parse_source("generate:count=1,rate=0.5").rate == 0.5


def test_generate_invalid_plus_oversize_may_equal_count() -> None:
    assert parse_source("generate:count=2,invalid=1,oversize=1").count == 2


# --- rejected forms: the message names --source -----------------------------------------------------------------

@pytest.mark.parametrize("spec, detail", [
    (None, "--source is required"),
    ("", "--source is required"),
    ("events.jsonl", "expected KIND:ARGS"),
    ("ftp:host/events", "unknown kind 'ftp'"),
    ("file:", "needs a glob"),
    ("deadletter:", "needs a glob"),
    ("generate:", "count=N (N >= 0) is required"),
    ("generate:seed=3", "count=N (N >= 0) is required"),
    ("generate:count=-1", "count=N (N >= 0) is required"),
    ("generate:count=ten", "count must be a number, got 'ten'"),
    ("generate:count=1.5", "count must be a number"),
    ("generate:count=10,rate=fast", "rate must be a number"),
    ("generate:count=10,rate=0", "rate must be > 0"),
    ("generate:count=10,colour=red", "unknown or malformed parameter 'colour=red'"),
    ("generate:count=10,seed", "unknown or malformed parameter 'seed'"),
    ("generate:count=10,invalid=-1", "invalid and oversize must be >= 0"),
    ("generate:count=3,invalid=2,oversize=2", "invalid + oversize cannot exceed count"),
], ids=lambda v: repr(v) if not isinstance(v, str) or ":" in v or not v else v)
def test_bad_source_is_rejected_naming_the_option(spec: str, detail: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_source(spec)
    assert "--source" in str(info.value)
    assert detail in str(info.value)


@pytest.mark.parametrize("rate", ["nan", "inf"])
def test_generate_rate_must_be_finite(rate: str) -> None:
    with pytest.raises(ValueError, match="--source"):
        parse_source(f"generate:count=10,rate={rate}")


# --- replay_record ----------------------------------------------------------------------------------------------

def line(letter: dict) -> bytes:
    return orjson.dumps(letter)


def test_replay_returns_the_original_payload_bytes() -> None:
    raw = b'{"id":"e1","event_type":"a.B","time":"bad"}'
    assert replay_record(line(dead_letter("invalid", "bad time", raw))) == raw


def test_replay_decodes_a_base64_payload() -> None:
    raw = b'{"id":"\xff"}'
    letter = dead_letter("invalid", "not JSON", raw)
    assert letter["payload_encoding"] == "base64"
    assert replay_record(line(letter)) == raw


def test_replay_of_a_connector_letter_aims_the_record_at_that_connector() -> None:
    event = {"id": "e1", "event_type": "a.B", "time": 1}
    replay = replay_record(line(dead_letter("rejected", "HTTP 400", event, connector="amp")))
    assert isinstance(replay, Replay) and replay.connector == "amp"
    assert orjson.loads(replay.data) == event


def test_replay_of_a_letter_without_connector_has_no_attributes() -> None:
    assert isinstance(replay_record(line(dead_letter("oversize", "big", b"{}"))), bytes)


def test_replay_keeps_non_ascii_text_payload_as_utf8() -> None:
    assert replay_record(line(dead_letter("invalid", "e", "zoë".encode()))) == "zoë".encode()


@pytest.mark.parametrize("text", [b'{"id":"e1","event_type":"a.B","time":1}', b"not json", b"[1, 2]", b'"str"',
                                  b'{"payload": 5}', b""],
                         ids=["plain-event", "garbage", "array", "string", "payload-not-text", "empty"])
def test_a_line_that_is_not_a_dead_letter_is_passed_on_as_is(text: bytes) -> None:
    assert replay_record(text) == text


def test_replay_round_trips_through_a_written_base64_line() -> None:
    raw = bytes(range(256))
    letter = {"reason": "invalid", "payload": base64.b64encode(raw).decode(), "payload_encoding": "base64"}
    assert replay_record(line(letter)) == raw
