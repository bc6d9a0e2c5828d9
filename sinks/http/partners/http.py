"""The Currents custom-export protocol (behaviour §2): POST `{"events": [...]}` to the customer's endpoint.

Each flat event becomes `{event_type, id, time, user, properties}`: the four user fields go in `user`, everything
else non-null in `properties`, the JSON-string `properties` of custom events and purchases becomes an object, and
the fields the reference leaves out of HTTP payloads are dropped. No event is skipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Literal, Optional, Type

from pydantic import Field

from core.config import Secret
from sinks.http.partners.base import Envelope, HttpConnectorBase, Limits, Partner, Request, dumps
from sinks.http.partners.names import CUSTOM_EVENT, PURCHASE, parse_properties

MIB = 1024 * 1024

_USER_FIELDS = ("user_id", "external_user_id", "device_id", "timezone")
_DEPRECATED = ("gender", "country", "language", "sdk_version", "resolution", "carrier")
_STEP_VARIATION = "canvas_step_message_variation_id"
_PROFILE_UPDATE = "users.profile.Update"


_TOP_LEVEL = frozenset({"event_type", "id", "time"})


@dataclass(frozen=True)
class _Plan:
    """Where one event type's fields go. Everything not left out goes to `properties` under its own name."""

    user_fields: tuple[str, ...]  # copied to `user`
    left_out: frozenset[str]  # not copied to `properties` under their own name
    renames: tuple[tuple[str, str], ...]  # (field, `properties` key)
    object_key: Optional[str]  # where the JSON-string `properties` goes, parsed; None: kept as it is


@lru_cache(maxsize=1024)
def _plan(event_type: str) -> _Plan:
    """Built once per event type, so an event costs two dict comprehensions, not a Python step per field."""
    if event_type.startswith("agentconsole."):
        return _Plan((), _TOP_LEVEL, (), None)  # agent-console events send `"user": {}`; ids stay in properties
    left_out = set(_TOP_LEVEL) | set(_USER_FIELDS) | {_STEP_VARIATION}
    if event_type != _PROFILE_UPDATE:  # its gender/country/language are the updated profile, not device data
        left_out |= set(_DEPRECATED)
    banner = event_type.startswith("users.messages.banner.")
    renames = ((_STEP_VARIATION, "canvas_step_message_variation_api_id"),) if banner else ()
    object_key = {CUSTOM_EVENT: "custom_properties", PURCHASE: "purchase_properties"}.get(event_type)
    if object_key:
        left_out.add("properties")
    return _Plan(_USER_FIELDS, frozenset(left_out), renames, object_key)


def encode_currents(event: dict[str, Any]) -> bytes:
    event_type = event.get("event_type") or ""
    plan = _plan(event_type)
    user = {k: event[k] for k in plan.user_fields if event.get(k) is not None}
    left_out = plan.left_out
    properties = {k: v for k, v in event.items() if v is not None and k not in left_out}
    for field, key in plan.renames:
        if event.get(field) is not None:
            properties[key] = event[field]
    if plan.object_key and event.get("properties") is not None:
        properties[plan.object_key] = parse_properties(event["properties"])
    return dumps({"event_type": event_type, "id": event.get("id"), "time": event.get("time"), "user": user,
                  "properties": properties})


class CurrentsHttp(Partner):
    """Any endpoint speaking the custom-export format; the connector's URL and optional bearer token."""

    type: ClassVar[str] = "http"
    limits: ClassVar[Limits] = Limits(max_events=100, max_request_bytes=10 * MIB, max_event_bytes=1 * MIB)
    ENVELOPE: ClassVar[Optional[Envelope]] = Envelope(b'{"events":[', b"]}")

    @property
    def url(self) -> str:
        endpoint: str = self.connector.endpoint
        return endpoint

    def build_headers(self) -> dict[str, str]:
        headers = {"Braze-Currents-Version": "1"}
        token: Optional[str] = self.secret(self.connector.token)
        if token:
            headers["Authorization"] = f"Bearer {token}"  # sent as given: the reference never encodes it
        return headers

    def encode_event(self, event: dict[str, Any]) -> Optional[bytes]:
        return encode_currents(event)

    def probe(self) -> Optional[Request]:
        """An empty `{"events":[]}` batch: receivers must treat it as a no-op but still check Authorization."""
        return self.request([])


class HttpConnector(HttpConnectorBase):
    """Any endpoint that speaks the Currents custom-export format."""

    type: Literal["http"]
    partner_class: ClassVar[Type[Partner]] = CurrentsHttp
    endpoint: str = Field(pattern=r"^https?://")
    token: Optional[Secret] = Field(default=None, description="sent as `Authorization: Bearer <token>`")
