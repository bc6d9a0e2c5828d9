"""Bytes → event, with the guards that keep bad input out of every connector.

A record leaves the main flow as a dead letter when it is larger than `--max_event_bytes` (`oversize`), could not
be read (`unreadable`, from the file reader), or is not a JSON object with a string `id`, a string `event_type` and
an integer `time` whose values every connector can carry exactly (`invalid`: nested deeper than `MAX_NESTING`, or
an integer beyond 64 bits, which a JSON parser would silently round to a float). Nothing here raises: a bad record
must never fail a bundle (on Dataflow a failing bundle is retried forever).
"""
from __future__ import annotations

import json
import re
import time
from typing import Any, Iterator, Optional, Union

import apache_beam as beam
import orjson
from apache_beam.pvalue import TaggedOutput
from apache_beam.utils.timestamp import MIN_TIMESTAMP

from core.config import MAX_EVENT_TYPE_LENGTH
from core.deadletters import INVALID, OVERSIZE, UNREADABLE, dead_letter
from core.metrics import counter
from core.records import Parsed, Replay
from transforms.lines import PREFIX_BYTES, ReadProblem

DEAD = "dead"
ATTR_EVENT_TYPE = "event_type"
# Event types become object-key segments: keep them to the characters real types use, so no input can write
# outside its folder.
EVENT_TYPE = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_.-]{{0,{MAX_EVENT_TYPE_LENGTH - 1}}}")  # fullmatch: no "\n"
MAX_TIME = 253_402_300_799  # 9999-12-31T23:59:59Z: beyond it a time cannot name a date= hour
MAX_NESTING = 64  # levels of objects and arrays in an event; JSON encoders stop at a few hundred
FLAT = frozenset({str, int, bool, type(None)})  # value types that need no further look
_BEYOND_FLOAT_INTS = 2.0 ** 63  # orjson reads an integer outside int64/uint64 as a float at least this large


class InvalidRecord(ValueError):
    """Why a record is not an event, with its id and type when they could be read (for its dead letter)."""

    def __init__(self, message: str, event: Optional[dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.event_id = _readable(event, "id")
        self.event_type = _readable(event, "event_type")


def _readable(event: Optional[dict[str, Any]], name: str) -> Optional[str]:
    value = event.get(name) if isinstance(event, dict) else None
    return value[:MAX_EVENT_TYPE_LENGTH] if isinstance(value, str) and value else None


def value_problem(event: dict[str, Any], data: bytes) -> Optional[str]:
    """Why an event with nested or float values cannot be carried exactly, or None: values nested deeper than
    MAX_NESTING (encoders refuse them, and no Currents event is nested), or an integer beyond 64 bits, which
    orjson reads as a float (confirmed with Python's parser, which keeps integers exact)."""
    stack: list[tuple[Any, int]] = [(value, 1) for value in event.values()]
    rounded = False
    while stack:
        value, depth = stack.pop()
        kind = type(value)
        if kind is dict or kind is list:
            if depth >= MAX_NESTING:
                return f"values nested deeper than {MAX_NESTING} levels"
            stack.extend((v, depth + 1) for v in (value.values() if kind is dict else value))
        elif kind is float and abs(value) >= _BEYOND_FLOAT_INTS and value.is_integer():
            rounded = True
    if not rounded:
        return None
    try:
        exact = json.loads(data)
    except ValueError:
        return None
    todo: list[tuple[Any, str]] = [(exact, "")]
    while todo:
        value, path = todo.pop()
        if isinstance(value, dict):
            todo.extend((v, f"{path}.{k}" if path else str(k)) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((v, f"{path}[{i}]") for i, v in enumerate(value))
        elif type(value) is int and not -2**63 <= value < 2**64:
            digits = str(value)
            shown = digits if len(digits) <= 30 else f"{digits[:27]}..."
            return f"'{path}': integer {shown} is beyond 64 bits and would be rounded; send it as a string"
    return None


def parse_event(data: bytes, attributes: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The event in a record, or InvalidRecord saying what is wrong with it."""
    try:
        event = orjson.loads(data)  # orjson rejects invalid UTF-8 too
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord(f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise InvalidRecord(f"not a JSON object but {type(event).__name__}")
    if "event_type" not in event and attributes and attributes.get(ATTR_EVENT_TYPE):
        event["event_type"] = attributes[ATTR_EVENT_TYPE]
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidRecord("'id' must be a non-empty string", event)
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or not EVENT_TYPE.fullmatch(event_type):
        raise InvalidRecord(f"'event_type' must be 1 to {MAX_EVENT_TYPE_LENGTH} letters, digits, '.', '_' or '-'",
                            event)
    event_time = event.get("time")
    if not isinstance(event_time, int) or isinstance(event_time, bool) or not 0 <= event_time <= MAX_TIME:
        raise InvalidRecord("'time' must be an integer number of UNIX seconds (0 to 253402300799)", event)
    if not FLAT.issuperset(map(type, event.values())):
        problem = value_problem(event, data)
        if problem is not None:
            raise InvalidRecord(problem, event)
    return event


class ParseEvents(beam.DoFn):
    """Raw records → `Parsed` events (a list of them for a chunk of records); dead letters on the `dead` output."""

    def __init__(self, max_event_bytes: int, event_time: str) -> None:
        self._max = max_event_bytes
        self._from_field = event_time == "field"

    def start_bundle(self) -> None:
        self._counts = {"events_in": 0, "events_valid": 0, INVALID: 0, OVERSIZE: 0, UNREADABLE: 0}

    def finish_bundle(self) -> None:
        for name, value in self._counts.items():
            if value:
                counter(None, name).inc(value)

    def process(self, record: Union[bytes, Replay, ReadProblem, Any, list],
                timestamp=beam.DoFn.TimestampParam) -> Iterator[Any]:  # noqa: ANN001
        """One record, or a chunk (a list) of records from a batched source: a chunk is parsed in one call and
        its events leave as one list, so per-element costs are paid per chunk."""
        if self._from_field:
            default_hour = None
        elif timestamp > MIN_TIMESTAMP:
            default_hour = timestamp.micros // 3_600_000_000
        else:  # no publish time (files, generator): arrival time
            default_hour = int(time.time()) // 3600
        if isinstance(record, list):
            parsed: list[Parsed] = []
            for one in record:
                result: Union[Parsed, dict[str, Any], None] = (
                    self._parse_line(one, default_hour) if type(one) is bytes else None)
                if result is None:  # not a plain valid line: the full path parses it and says what is wrong
                    result = self._parse(one, default_hour)
                else:
                    self._counts["events_in"] += 1
                    self._counts["events_valid"] += 1
                if isinstance(result, tuple):
                    parsed.append(result)
                else:
                    yield TaggedOutput(DEAD, result)
            if parsed:
                yield parsed
            return
        result = self._parse(record, default_hour)
        yield result if isinstance(result, tuple) else TaggedOutput(DEAD, result)

    def _parse_line(self, data: bytes, default_hour: Optional[int]) -> Optional[Parsed]:
        """The common case of a line from a file, checked inline: a valid event within the size limit, or None
        for the full path (`_parse`), which decides the same and explains what is wrong."""
        if len(data) > self._max:
            return None
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if type(event) is not dict:
            return None
        event_id, event_type, event_time = event.get("id"), event.get("event_type"), event.get("time")
        if (type(event_id) is not str or not event_id or type(event_type) is not str or type(event_time) is not int
                or not 0 <= event_time <= MAX_TIME or not EVENT_TYPE.fullmatch(event_type)
                or not FLAT.issuperset(map(type, event.values()))):  # nested or float values: the full path
            return None
        return Parsed(event, event_time // 3600 if default_hour is None else default_hour,
                      data if b"\n" not in data else None, None)

    def _parse(self, record: Any, default_hour: Optional[int]) -> Union[Parsed, dict[str, Any]]:
        """The parsed event, or its dead letter."""
        counts = self._counts
        only: Optional[str] = None
        attributes: Optional[dict[str, str]] = None
        kind = type(record)
        if kind is ReadProblem:
            return self._problem(record)
        counts["events_in"] += 1
        if kind is bytes:
            data = record
        elif kind is Replay:  # only a replayed dead letter is aimed at one connector
            data, only = record.data, record.connector
        elif kind is tuple and len(record) == 2:  # (data, attributes): attributes name an event_type at most
            data, attributes = record[0], dict(record[1] or {})
        elif hasattr(record, "data") and hasattr(record, "attributes"):  # a PubsubMessage
            data, attributes = record.data, dict(record.attributes or {})
        else:
            data = record
        if not isinstance(data, bytes):
            counts[INVALID] += 1
            return dead_letter(INVALID, f"not a record of bytes but {type(data).__name__}",
                               repr(data)[:PREFIX_BYTES].encode("utf-8", "replace"))
        if len(data) > self._max:
            counts[OVERSIZE] += 1
            return dead_letter(OVERSIZE, f"record of {len(data)} bytes is over the {self._max}-byte limit",
                               data[:PREFIX_BYTES], size=len(data), event_type=_peek(data, b'"event_type"'),
                               event_id=_peek(data, b'"id"'))
        try:
            event = parse_event(data, attributes)
        except InvalidRecord as exc:
            counts[INVALID] += 1
            return dead_letter(INVALID, str(exc), data, event_type=exc.event_type or _peek(data, b'"event_type"'),
                               event_id=exc.event_id or _peek(data, b'"id"'))
        except Exception as exc:  # noqa: BLE001 - whatever a record holds, it is its own dead letter
            counts[INVALID] += 1
            return dead_letter(INVALID, f"cannot parse: {type(exc).__name__}: {exc}", data)
        counts["events_valid"] += 1
        hour = event["time"] // 3600 if default_hour is None else default_hour
        # A chunk joins events by newlines: a record with a raw newline in it (pretty-printed JSON from a
        # message) or whose event_type came from an attribute is encoded again by the router instead.
        as_is = data if (attributes is None or ATTR_EVENT_TYPE not in attributes) and b"\n" not in data else None
        return Parsed(event, hour, as_is, only)

    def _problem(self, problem: ReadProblem) -> dict[str, Any]:
        """The dead letter of a line too long to hold (an input record) or of input that could not be read."""
        if problem.reason == UNREADABLE:
            self._counts[UNREADABLE] += 1
            return dead_letter(UNREADABLE, problem.error, b"", size=0, file=problem.path, offset=problem.offset)
        self._counts["events_in"] += 1
        self._counts[OVERSIZE] += 1
        return dead_letter(OVERSIZE, f"{problem.error} (at byte {problem.offset} of {problem.path})",
                           problem.prefix, size=problem.size, event_type=_peek(problem.prefix, b'"event_type"'),
                           event_id=_peek(problem.prefix, b'"id"'), file=problem.path, offset=problem.offset)


def _peek(data: bytes, key: bytes) -> Optional[str]:
    """Best-effort id / event_type of an oversize record without parsing a megabyte of JSON."""
    at = data.find(key, 0, 4096)
    if at < 0:
        return None
    match = re.match(rb'\s*:\s*"([^"\\]{1,200})"', data[at + len(key):at + len(key) + 210])
    return match.group(1).decode("utf-8", "replace") if match else None
