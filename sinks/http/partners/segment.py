"""Segment HTTP Tracking API (behaviour §5.3): `track` calls in `{"batch": [...]}` to `/v1/batch`, write key as
the Basic-auth user.

Users without an external id are skipped; the Braze id rides along as `anonymousId` and the event id as the dedupe
`messageId`. Custom and purchase properties stay nested (`custom_properties` / `purchase_properties`, as in the
custom-export format): Segment takes nested objects, and nesting cannot collide with Braze's own field names.
"""
from __future__ import annotations

import time
from functools import lru_cache
from typing import Any, ClassVar, Literal, Optional, Type

from core.config import Secret
from sinks.http.partners.base import Envelope, HttpConnectorBase, Limits, Partner, basic_auth, dumps
from sinks.http.partners.names import CUSTOM_EVENT, PURCHASE, parse_properties, segment_name, usable_id

KIB = 1024

_URLS = {"us": "https://api.segment.io/v1/batch", "eu": "https://events.eu1.segmentapis.com/v1/batch"}
_MAPPED = ("event_type", "id", "time", "time_ms", "external_user_id", "user_id", "device_model", "platform")
_NESTED = {CUSTOM_EVENT: "custom_properties", PURCHASE: "purchase_properties"}
_EMAIL_EVENTS = "users.messages.email."


@lru_cache(maxsize=1024)
def _skipped(event_type: str) -> frozenset[str]:
    """Fields not copied to `properties` as they are (ids and device go to their Segment keys and context)."""
    skip = set(_MAPPED)
    if event_type in _NESTED:
        skip.update(("name", "properties"))
    if event_type.startswith(_EMAIL_EVENTS):
        skip.add("email_address")  # context.traits.email
    return frozenset(skip)


def iso_timestamp(event: dict[str, Any]) -> Optional[str]:
    """ISO-8601 UTC with `Z`, as Segment expects; millisecond precision when the event has `time_ms`."""
    ms = event.get("time_ms")
    if ms is not None:
        seconds, millis = divmod(int(ms), 1000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
    at = event.get("time")
    if at is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


class Segment(Partner):
    type: ClassVar[str] = "segment"
    # Segment caps bytes (500 KB a batch, 32 KB an event), not events; 1,000 keeps a batch's retry unit small.
    limits: ClassVar[Limits] = Limits(max_events=1000, max_request_bytes=500 * KIB, max_event_bytes=32 * KIB)
    ENVELOPE: ClassVar[Optional[Envelope]] = Envelope(b'{"batch":[', b"]}")

    @property
    def url(self) -> str:
        endpoint: Optional[str] = self.connector.endpoint
        return endpoint or _URLS[self.connector.region]

    def build_headers(self) -> dict[str, str]:
        write_key = self.secret(self.connector.write_key) or ""
        return basic_auth(write_key, "")

    def encode_event(self, event: dict[str, Any]) -> Optional[bytes]:
        user_id = usable_id(event.get("external_user_id"))
        if user_id is None:
            return None
        event_type = event.get("event_type") or ""
        skip = _skipped(event_type)
        properties = {k: v for k, v in event.items() if v is not None and k not in skip}
        nested = _NESTED.get(event_type)
        if nested is not None:
            properties[nested] = parse_properties(event.get("properties"))
        out: dict[str, Any] = {"type": "track", "event": segment_name(event), "userId": user_id,
                               "messageId": event.get("id"), "properties": properties}
        anonymous_id = usable_id(event.get("user_id"))
        if anonymous_id is not None:
            out["anonymousId"] = anonymous_id
        timestamp = iso_timestamp(event)
        if timestamp is not None:
            out["timestamp"] = timestamp
        context: dict[str, Any] = {}
        device = {k: v for k, v in (("model", event.get("device_model")), ("type", event.get("platform")))
                  if v is not None}
        if device:
            context["device"] = device
        email = usable_id(event.get("email_address"))  # a redacted address is no trait
        if email is not None and event_type.startswith(_EMAIL_EVENTS):
            context["traits"] = {"email": email}
        if context:
            out["context"] = context
        return dumps(out)


class SegmentConnector(HttpConnectorBase):
    type: Literal["segment"]
    partner_class: ClassVar[Type[Partner]] = Segment
    write_key: Secret
    region: Literal["us", "eu"] = "us"
