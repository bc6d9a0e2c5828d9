"""Dead letters: every dropped record, as one JSON line with its reason, under `--dead_letter`.

A line is `{reason, connector, event_type, event_id, error, size, payload, at}`; `payload` is the record as it was
(UTF-8 text, or base64 with `payload_encoding: base64` when the bytes were not UTF-8), so `--source=deadletter:GLOB`
can replay it. Files: `<dead_letter>/reason=<reason>/date=<YYYY-MM-DD-HH>/deadletters-<run token>-<random>.jsonl`.
"""
from __future__ import annotations

import base64
import os
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Iterator, Optional, Union

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from pipeline.metrics import counter

# Every reason a record can be dropped for; one counter and one folder each.
INVALID = "invalid"  # not JSON / not an object / missing or mistyped id, event_type, time / not UTF-8
OVERSIZE = "oversize"  # larger than --max_event_bytes
SCHEMA_MISMATCH = "schema_mismatch"  # a field's value does not fit the event type's Avro schema
WRITE_FAILED = "write_failed"  # the storage connector kept failing (or refused) the write
REJECTED = "rejected"  # a partner answered 400 to the event on its own
TOO_LARGE = "too_large"  # a single event over the partner's per-event limit
EXPIRED = "expired"  # retryable errors for longer than retry_window_hours
CREDENTIALS_EXPIRED = "credentials_expired"  # credential errors for longer than credential_grace_hours
PARKING_FULL = "parking_full"  # over the per-connector cap of parked events
UNROUTABLE = "unroutable"  # a replayed dead letter whose connector is gone or no longer selects its type
DRAINED = "drained"  # still parked when the stream ended (a drained job, or the end of bounded input)

MAX_LINES_PER_FILE = 10_000


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter(reason: str, error: str, payload: Union[bytes, str, dict], *, connector: Optional[str] = None,
                event_type: Optional[str] = None, event_id: Optional[str] = None,
                at: Optional[float] = None) -> dict[str, Any]:
    """One dead-letter record. `payload` is the raw record (bytes/str) or the event as the connector saw it."""
    if isinstance(payload, dict):
        data = orjson.dumps(payload)
    elif isinstance(payload, str):
        data = payload.encode("utf-8", "surrogatepass")
    else:
        data = payload
    letter: dict[str, Any] = {
        "reason": reason, "connector": connector, "event_type": event_type, "event_id": event_id,
        "error": error, "size": len(data), "payload": None, "at": _iso(time.time() if at is None else at)}
    try:
        letter["payload"] = data.decode("utf-8")
    except UnicodeDecodeError:
        letter["payload"] = base64.b64encode(data).decode("ascii")
        letter["payload_encoding"] = "base64"
    return letter


def connector_letter(reason: str, error: str, event: dict[str, Any], connector_id: str) -> dict[str, Any]:
    """The dead letter of an event a connector could not deliver, as that connector saw it."""
    return dead_letter(reason, error, event, connector=connector_id, event_type=event.get("event_type"),
                       event_id=event.get("id"))


class _WriteBundles(beam.DoFn):
    """Dead letters of a bundle → one file per (reason, hour), written when the bundle ends.

    No grouping step, no state: a dead letter can be born in a final flush after the watermark has passed the end
    of the global window, where a GroupByKey or stateful step would drop it as late. Dead letters are rare, so a
    file per bundle costs little; a retried bundle may write its letters twice (consumers dedupe on event_id).
    """

    def __init__(self, folder: str, run_token: int) -> None:
        self._folder = folder.rstrip("/")
        self._run_token = run_token

    def start_bundle(self) -> None:
        self._open: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def process(self, letter: dict[str, Any]) -> Iterator[str]:
        key = (letter["reason"], letter["at"][:13].replace("T", "-"))  # the hour of `at`: YYYY-MM-DD-HH
        group = self._open.setdefault(key, [])
        group.append(letter)
        if len(group) >= MAX_LINES_PER_FILE:
            yield self._write(*key, self._open.pop(key))

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for (reason, hour), letters in self._open.items():
            yield WindowedValue(self._write(reason, hour, letters), 0, [GlobalWindow()])
        self._open = {}

    def _write(self, reason: str, hour: str, letters: list[dict[str, Any]]) -> str:
        path = f"{self._folder}/reason={reason}/date={hour}/deadletters-{self._run_token}-{uuid.uuid4().hex[:16]}.jsonl"
        _write(path, b"".join(orjson.dumps(letter) + b"\n" for letter in letters))
        per_connector: dict[Optional[str], int] = {}
        for letter in letters:
            per_connector[letter["connector"]] = per_connector.get(letter["connector"], 0) + 1
        counter(None, f"dead_letters.{reason}").inc(len(letters))
        for connector_id, n in per_connector.items():
            if connector_id:
                counter(connector_id, f"dead_letters.{reason}").inc(n)
        return path


def _write(path: str, body: bytes) -> None:
    """Whole files only: a local file appears under its name when complete; object stores are atomic already."""
    if "://" not in path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as handle:
            handle.write(body)
        os.replace(tmp, path)
        return
    with FileSystems.create(path, mime_type="application/x-ndjson") as handle:
        handle.write(body)


class WriteDeadLetters(beam.PTransform):
    """Dead-letter records → JSON-lines files per reason and hour; outputs the paths written."""

    def __init__(self, folder: str, run_token: int) -> None:
        super().__init__()
        self._folder = folder
        self._run_token = run_token

    def expand(self, letters: beam.PCollection) -> beam.PCollection:
        return letters | "Write" >> beam.ParDo(_WriteBundles(self._folder, self._run_token))
