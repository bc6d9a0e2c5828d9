"""The bare loop: the least work an export of a corpus can do, in one Python process, without Beam.

Read the corpus, `orjson.loads` every line (lines that fail, are not a flat event or are over the size limit are
skipped), group events per type, write every type's events into one in-memory Avro container of its schema
(`fastavro.parse_schema` once per type, records projected with a plain dict comprehension) and encode the
Currents HTTP body `{"events": [...]}` for every 100 events of a type. The job does all of this and more
(validation, routing, batching, dead letters, metrics, the runner), so `job events/s ÷ bare events/s` says how much
of the machine the job's overhead leaves for the work itself.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import fastavro
import orjson

from sinks.storage.schemas import generic_schema, load_schema

MAX_EVENT_BYTES = 921_600  # the job's default --max_event_bytes
REQUEST_EVENTS = 100  # events per `http` request (the Currents format's limit)
_GENERIC_CORE = ("id", "event_type", "time", "user_id", "external_user_id")


@dataclass
class BareStats:
    lines: int
    valid: int
    invalid: int
    oversize: int
    event_types: int
    avro_bytes: int
    requests: int
    request_bytes: int


def _is_event(event: Any) -> bool:
    """The job's own minimum (transforms.parse): an object with a non-empty string id, a string event_type and an
    integer time. Without it the bare loop would count `missing_id` / `time_string` lines as valid events."""
    if not isinstance(event, dict):
        return False
    event_id, event_type, event_time = event.get("id"), event.get("event_type"), event.get("time")
    return (isinstance(event_id, str) and bool(event_id) and isinstance(event_type, str)
            and isinstance(event_time, int) and not isinstance(event_time, bool))


ByType = dict[str, list[dict[str, Any]]]


def read_events(path: str, max_event_bytes: int = MAX_EVENT_BYTES) -> tuple[ByType, int, int, int]:
    """({event type: events}, lines, invalid, oversize) of a JSON-lines corpus."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    lines = invalid = oversize = 0
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    with open(path, "rb") as handle:
        for line in handle:
            lines += 1
            size = len(line) - 1 if line.endswith(b"\n") else len(line)
            if size > max_event_bytes:
                oversize += 1
                continue
            try:
                event = loads(line)
            except decode_error:
                invalid += 1
                continue
            if not _is_event(event):
                invalid += 1
                continue
            events = by_type.get(event["event_type"])
            if events is None:
                events = by_type[event["event_type"]] = []
            events.append(event)
    return by_type, lines, invalid, oversize


def bare_loop(path: str, max_event_bytes: int = MAX_EVENT_BYTES, request_events: int = REQUEST_EVENTS) -> BareStats:
    """Run the bare loop over the corpus at `path`; the caller times it."""
    by_type, lines, invalid, oversize = read_events(path, max_event_bytes)
    avro_bytes = requests = request_bytes = 0
    dumps = orjson.dumps
    for event_type, events in by_type.items():
        known = load_schema(event_type)
        generic = known is None
        schema = generic_schema() if known is None else known
        parsed = fastavro.parse_schema(schema)
        fields = [f["name"] for f in schema["fields"]]
        if generic:  # never for the built-in generator's corpus: every type it makes has a schema
            records = [{**{f: e.get(f) for f in fields},
                        "properties": dumps({k: v for k, v in e.items() if k not in _GENERIC_CORE}).decode()}
                       for e in events]
        else:
            records = [{f: e.get(f) for f in fields} for e in events]
        buffer = io.BytesIO()
        fastavro.writer(buffer, parsed, records)
        avro_bytes += buffer.tell()
        for start in range(0, len(events), request_events):
            body = dumps({"events": events[start:start + request_events]})
            requests += 1
            request_bytes += len(body)
    valid = sum(len(events) for events in by_type.values())
    return BareStats(lines, valid, invalid, oversize, len(by_type), avro_bytes, requests, request_bytes)


def valid_ids(path: str, max_event_bytes: int = MAX_EVENT_BYTES) -> set[str]:
    """The ids of the corpus's valid events: what every connector must deliver."""
    by_type, _, _, _ = read_events(path, max_event_bytes)
    return {event["id"] for events in by_type.values() for event in events}
