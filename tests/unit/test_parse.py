"""Bytes → event, and the guards in front of every connector (docs/contract.md "Input events", README "Dead
letters")."""
from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from apache_beam.pvalue import TaggedOutput
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from core.records import Replay

from transforms.parse import DEAD, MAX_TIME, InvalidRecord, ParseEvents, parse_event

HOUR = 3600
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def record(**fields: Any) -> bytes:
    event = {"id": "ev-1", "event_type": "users.messages.email.Send", "time": T0}
    event.update(fields)
    return orjson.dumps({k: v for k, v in event.items() if v is not ...})


def run(fn: ParseEvents, *records: Any, timestamp: Timestamp = Timestamp(T0)) -> list[Any]:
    fn.start_bundle()
    out: list[Any] = []
    for r in records:
        out.extend(fn.process(r, timestamp=timestamp))
    fn.finish_bundle()
    return out


def dead(outputs: list[Any]) -> list[dict[str, Any]]:
    letters = [o.value for o in outputs if isinstance(o, TaggedOutput)]
    assert all(o.tag == DEAD for o in outputs if isinstance(o, TaggedOutput))
    return letters


# --- parse_event ------------------------------------------------------------------------------------------------

def test_valid_event_is_returned_with_all_its_fields() -> None:
    event = parse_event(record(email_address="a@example.com", extra={"nested": 1}))
    assert event == {"id": "ev-1", "event_type": "users.messages.email.Send", "time": T0,
                     "email_address": "a@example.com", "extra": {"nested": 1}}


def test_event_type_is_taken_from_attributes_when_the_event_has_none() -> None:
    event = parse_event(record(event_type=...), {"event_type": "users.behaviors.CustomEvent"})
    assert event["event_type"] == "users.behaviors.CustomEvent"


def test_event_type_in_the_event_wins_over_the_attribute() -> None:
    event = parse_event(record(), {"event_type": "users.behaviors.CustomEvent"})
    assert event["event_type"] == "users.messages.email.Send"


@pytest.mark.parametrize("data, error", [
    (b"not json at all", "not JSON"),
    (b'{"id": "ev-1", "event_type": "x.Y", "time": 1', "not JSON"),
    (b'{"id": "\xff\xfe", "event_type": "x.Y", "time": 1}', "not JSON"),
    (b'[{"id": "ev-1", "event_type": "x.Y", "time": 1}]', "not a JSON object but list"),
    (b'"just a string"', "not a JSON object but str"),
], ids=["garbage", "truncated", "non-utf8", "array", "string"])
def test_record_that_is_not_a_json_object_is_invalid(data: bytes, error: str) -> None:
    with pytest.raises(InvalidRecord, match=error):
        parse_event(data)


@pytest.mark.parametrize("fields", [{"id": ...}, {"id": ""}, {"id": 42}, {"id": None}, {"id": ["ev-1"]}],
                         ids=["missing", "empty", "int", "null", "list"])
def test_id_must_be_a_non_empty_string(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecord, match="'id' must be a non-empty string"):
        parse_event(record(**fields))


@pytest.mark.parametrize("value", ["1700000000", True, False, 1700000000.5, 1700000000.0, None, ...],
                         ids=["string", "true", "false", "float", "integral-float", "null", "missing"])
def test_time_must_be_an_integer(value: Any) -> None:
    with pytest.raises(InvalidRecord, match="'time' must be an integer"):
        parse_event(record(time=value))


@pytest.mark.parametrize("event_type", ["users/messages/Send", "users messages", "../etc", "", ".hidden",
                                        "x" * 201, 7, None, ...],
                         ids=["slash", "space", "dotdot", "empty", "leading-dot", "too-long", "int", "null",
                              "missing"])
def test_event_type_must_be_a_safe_name(event_type: Any) -> None:
    with pytest.raises(InvalidRecord, match="'event_type'"):
        parse_event(record(event_type=event_type))


@pytest.mark.parametrize("value", [-1, MAX_TIME + 1, 10 ** 18, -(10 ** 18)])
def test_time_outside_year_0_to_9999_unix_seconds_is_invalid(value: int) -> None:
    with pytest.raises(InvalidRecord, match="'time'"):
        parse_event(record(time=value))


@pytest.mark.parametrize("value", [0, MAX_TIME])
def test_time_at_the_ends_of_the_range_is_accepted(value: int) -> None:
    assert parse_event(record(time=value))["time"] == value


def test_max_time_is_the_last_second_of_year_9999() -> None:
    assert time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(MAX_TIME)) == "9999-12-31T23:59:59"


# --- ParseEvents DoFn -------------------------------------------------------------------------------------------

def test_valid_record_becomes_event_hour_its_own_json_and_no_connector() -> None:
    data = record()
    [(event, hour, json, only)] = run(ParseEvents(921_600, "publish"), data)
    assert event["id"] == "ev-1"
    assert hour == T0 // HOUR
    assert json is data
    assert only is None


def test_record_with_a_raw_newline_is_not_passed_on_as_json() -> None:
    data = record().replace(b",", b",\n", 1)
    [(event, _, json, _)] = run(ParseEvents(921_600, "publish"), data)
    assert event["id"] == "ev-1" and json is None


def test_oversize_record_is_a_dead_letter_with_best_effort_id_and_type() -> None:
    data = record(padding="x" * 500)
    [letter] = dead(run(ParseEvents(100, "publish"), data))
    assert letter["reason"] == "oversize"
    assert letter["event_id"] == "ev-1"
    assert letter["event_type"] == "users.messages.email.Send"
    assert letter["size"] == len(data)
    assert str(len(data)) in letter["error"] and "100" in letter["error"]
    assert letter["payload"] == data.decode()


def test_record_exactly_at_the_limit_is_not_oversize() -> None:
    data = record()
    [(event, _, _, _)] = run(ParseEvents(len(data), "publish"), data)
    assert event["id"] == "ev-1"


def test_an_event_type_taken_from_an_attribute_is_encoded_again_not_passed_on_as_read() -> None:
    data = record(event_type=...)
    [(event, _, json, _)] = run(ParseEvents(921_600, "publish"), (data, {"event_type": "users.behaviors.CustomEvent"}))
    assert event["event_type"] == "users.behaviors.CustomEvent" and json is None


def test_oversize_check_comes_before_parsing() -> None:
    data = b"not json " * 50
    [letter] = dead(run(ParseEvents(100, "publish"), data))
    assert letter["reason"] == "oversize"
    assert letter["event_id"] is None and letter["event_type"] is None


def test_invalid_record_is_a_dead_letter_with_the_error_text() -> None:
    data = record(time="yesterday")
    [letter] = dead(run(ParseEvents(921_600, "publish"), data))
    assert letter["reason"] == "invalid"
    assert "'time' must be an integer" in letter["error"]
    assert letter["payload"] == data.decode()
    assert letter["connector"] is None


def test_non_utf8_record_is_an_invalid_dead_letter_with_base64_payload() -> None:
    data = b'{"id": "\xff"}'
    [letter] = dead(run(ParseEvents(921_600, "publish"), data))
    assert letter["reason"] == "invalid"
    assert letter["payload_encoding"] == "base64"


def test_bad_records_do_not_stop_the_good_ones() -> None:
    outputs = run(ParseEvents(921_600, "publish"), b"nope", record(id="a"), b"[]", record(id="b"))
    assert [o[0]["id"] for o in outputs if not isinstance(o, TaggedOutput)] == ["a", "b"]
    assert [letter["reason"] for letter in dead(outputs)] == ["invalid", "invalid"]


def test_publish_mode_takes_the_hour_from_the_element_timestamp() -> None:
    published = Timestamp(T0 + 5 * HOUR)
    [(_, hour, _, _)] = run(ParseEvents(921_600, "publish"), record(time=T0), timestamp=published)
    assert hour == T0 // HOUR + 5


def test_field_mode_takes_the_hour_from_the_event_time() -> None:
    [(_, hour, _, _)] = run(ParseEvents(921_600, "field"), record(time=T0 - 30 * HOUR),
                            timestamp=Timestamp(T0))
    assert hour == (T0 - 30 * HOUR) // HOUR


def test_publish_mode_without_a_timestamp_uses_arrival_time() -> None:
    before = int(time.time()) // HOUR
    [(_, hour, _, _)] = run(ParseEvents(921_600, "publish"), record(time=0), timestamp=MIN_TIMESTAMP)
    assert before <= hour <= int(time.time()) // HOUR


def test_a_replayed_record_comes_out_for_its_connector_only() -> None:
    [(_, _, _, only)] = run(ParseEvents(921_600, "publish"), Replay(record(), "warehouse"))
    assert only == "warehouse"


def test_no_message_attribute_can_aim_an_event_at_one_connector() -> None:
    message = PubsubMessage(record(), {"currents_connector": "warehouse", "connector": "warehouse"})
    [(_, _, _, only)] = run(ParseEvents(921_600, "publish"), message)
    assert only is None


def test_event_type_attribute_fills_a_missing_event_type() -> None:
    [(event, _, _, only)] = run(ParseEvents(921_600, "publish"),
                                (record(event_type=...), {"event_type": "users.behaviors.Purchase"}))
    assert event["event_type"] == "users.behaviors.Purchase"
    assert only is None


def test_field_mode_event_with_time_out_of_range_is_an_invalid_dead_letter() -> None:
    [letter] = dead(run(ParseEvents(921_600, "field"), record(time=10 ** 18)))
    assert letter["reason"] == "invalid"


VALID = {"id": "a", "event_type": "users.messages.email.Send", "time": 1_700_000_000}
FIELD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-5, max_value=MAX_TIME + 5),
                         st.sampled_from([MAX_TIME, MAX_TIME + 1, -1, 0]), st.text(max_size=6),
                         st.sampled_from(["users.messages.email.Send", "bad type", "", "a" * 201]))
LINES = st.one_of(
    st.dictionaries(st.sampled_from(["id", "event_type", "time", "x"]), FIELD_VALUES)
    .map(lambda over: orjson.dumps({**VALID, **over})),
    st.dictionaries(st.sampled_from(["id", "event_type", "time", "x"]), FIELD_VALUES).map(orjson.dumps),
    st.binary(max_size=40),
    st.sampled_from([b"[]", b"null", b'{"id": "a", "event_type": "t.T", "time": 1}\n',
                     b'{"id":"a","event_type":"t.T","time":true}']))


@settings(max_examples=600, deadline=None)
@given(st.lists(LINES, max_size=8), st.sampled_from(["publish", "field"]))
def test_a_chunk_of_lines_parses_exactly_as_each_line_alone(lines: list[bytes], event_time: str) -> None:
    chunked = run(ParseEvents(120, event_time), lines)
    one_by_one = [out for line in lines for out in run(ParseEvents(120, event_time), line)]
    events = [item for out in chunked if not isinstance(out, TaggedOutput) for item in out]
    letters = [(o.value["reason"], o.value["error"], o.value["payload"])
               for o in chunked if isinstance(o, TaggedOutput)]
    assert events == [o for o in one_by_one if not isinstance(o, TaggedOutput)]
    assert letters == [(o.value["reason"], o.value["error"], o.value["payload"]) for o in one_by_one
                       if isinstance(o, TaggedOutput)]


def test_an_event_type_ending_in_a_newline_is_invalid_not_an_object_key_with_a_newline() -> None:
    with pytest.raises(InvalidRecord, match="event_type"):
        parse_event(record(event_type="users.messages.email.Send\n"))
    [letter] = dead(run(ParseEvents(921_600, "publish"), [record(event_type="users.messages.email.Send\n")]))
    assert letter["reason"] == "invalid"
