"""Dead-letter records: every dropped record, as one JSON-able dict with its reason.

A letter is `{reason, connector, event_type, event_id, error, size, payload, at}`; `payload` is the record as it was
(UTF-8 text, or base64 with `payload_encoding: base64` when the bytes were not UTF-8), so `--source=deadletter:GLOB`
can replay it; `error` never holds a secret value (`core.secrets.redact`). Writing them is `sinks.deadletter`.
"""
from __future__ import annotations

import base64
import time
from datetime import datetime, timezone
from typing import Any, Optional

import orjson

from core.secrets import redact

MAX_PAYLOAD_BYTES = 1024 * 1024  # a letter keeps at most this much of its record, with the record's full size

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
UNREADABLE = "unreadable"  # input that could not be read: a file that cannot be opened, a truncated archive
DRAINED = "drained"  # still parked when the stream ended (a drained job, or the end of bounded input)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encoded(payload: Any) -> tuple[bytes, Optional[str]]:
    """The payload's bytes, and why they are not the payload itself when it could not be encoded as JSON (nested
    past orjson's limit, an integer beyond 64 bits, a non-string key): its `repr`, bounded."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload), None
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogatepass"), None
    try:
        return orjson.dumps(payload), None
    except Exception as exc:  # noqa: BLE001 - a letter must be writable whatever it carries
        try:
            text = repr(payload)
        except Exception:  # noqa: BLE001 - RecursionError and the like
            text = f"<{type(payload).__name__}>"
        return text[:MAX_PAYLOAD_BYTES].encode("utf-8", "surrogatepass"), f"{type(exc).__name__}: {exc}"


def dead_letter(reason: str, error: str, payload: Any, *, connector: Optional[str] = None,
                event_type: Optional[str] = None, event_id: Optional[str] = None, at: Optional[float] = None,
                size: Optional[int] = None, file: Optional[str] = None,
                offset: Optional[int] = None) -> dict[str, Any]:
    """One dead-letter record; never raises, whatever it is handed.

    `payload` is the raw record (bytes/str) or the event as the connector saw it; `size` is the record's full size
    when `payload` is only its first bytes (an oversize line). A payload that cannot be encoded as JSON is kept as
    its bounded `repr` (`payload_encoding: repr`, not replayable); one that is not UTF-8, as base64. `file` and
    `offset` say where in the input a record that could not be read starts."""
    data, unencodable = _encoded(payload)
    if len(data) > MAX_PAYLOAD_BYTES:
        data, size = data[:MAX_PAYLOAD_BYTES], len(data) if size is None else size
    letter: dict[str, Any] = {
        "reason": reason, "connector": _text(connector), "event_type": _text(event_type),
        "event_id": _text(event_id), "error": redact(_text(error) or ""), "size": len(data) if size is None else size,
        "payload": None, "at": _iso(time.time() if at is None else at)}
    if size is not None and size > len(data):
        letter["truncated"] = True
    if file is not None:
        letter["file"], letter["offset"] = file, offset
    if unencodable is not None:
        letter["payload"], letter["payload_encoding"] = data.decode("utf-8", "replace"), "repr"
        letter["error"] += f" (payload not JSON-encodable: {unencodable})"
        return letter
    try:
        letter["payload"] = data.decode("utf-8")
    except UnicodeDecodeError:
        letter["payload"] = base64.b64encode(data).decode("ascii")
        letter["payload_encoding"] = "base64"
    return letter


def _text(value: Any) -> Optional[str]:
    """A letter's text field as valid UTF-8 text (lone surrogates replaced), so the line is always writable."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "replace").decode("utf-8")


def connector_letter(reason: str, error: str, event: dict[str, Any], connector_id: str) -> dict[str, Any]:
    """The dead letter of an event a connector could not deliver, as that connector saw it."""
    return dead_letter(reason, error, event, connector=connector_id, event_type=event.get("event_type"),
                       event_id=event.get("id"))
