"""Dead-letter records: every dropped record, as one JSON-able dict with its reason.

A letter is `{reason, connector, event_type, event_id, error, size, payload, at}`; `payload` is the record as it was
(UTF-8 text, or base64 with `payload_encoding: base64` when the bytes were not UTF-8), so `--source=deadletter:GLOB`
can replay it; `error` never holds a secret value (`core.secrets.redact`). Writing them is `sinks.deadletter`.
"""
from __future__ import annotations

import base64
import time
from datetime import datetime, timezone
from typing import Any, Optional, Union

import orjson

from core.secrets import redact

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
        "error": redact(error), "size": len(data), "payload": None, "at": _iso(time.time() if at is None else at)}
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
