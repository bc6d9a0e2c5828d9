"""The Currents custom-export protocol (behaviour §2): POST `{"events": [...]}` to the customer's endpoint.

Each flat event becomes `{event_type, id, time, user, properties}`: the four user fields go in `user`, everything
else non-null in `properties`, the JSON-string `properties` of custom events and purchases becomes an object, and
the fields the reference leaves out of HTTP payloads are dropped. No event is skipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Optional, Union

from sinks.http.partners.base import Envelope, Limits, Partner, Request, dumps
from sinks.http.partners.names import CUSTOM_EVENT, PURCHASE, parse_properties

MIB = 1024 * 1024

_USER_FIELDS = ("user_id", "external_user_id", "device_id", "timezone")
_DEPRECATED = ("gender", "country", "language", "sdk_version", "resolution", "carrier")
_STEP_VARIATION = "canvas_step_message_variation_id"
_PROFILE_UPDATE = "users.profile.Update"  # its gender/country/language are the updated profile values, not device data


class _To:
    """Where a field goes, besides `properties` under its own name."""

    SKIP = 0  # top-level or dropped
    USER = 1
    OBJECT = 2  # JSON string → object under the plan's object key


Route = Union[int, str]  # a _To value, or the `properties` key a field is renamed to


@dataclass(frozen=True)
class _Plan:
    routes: dict[str, Route]
    object_key: str


@lru_cache(maxsize=1024)
def _plan(event_type: str) -> _Plan:
    """Field routes of one event type, built once: the per-event loop then does one dict lookup per field."""
    routes: dict[str, Route] = {"event_type": _To.SKIP, "id": _To.SKIP, "time": _To.SKIP}
    if event_type.startswith("agentconsole."):
        return _Plan(routes, "properties")  # agent-console events send `"user": {}`; ids stay in properties
    routes.update(dict.fromkeys(_USER_FIELDS, _To.USER))
    if event_type != _PROFILE_UPDATE:
        routes.update(dict.fromkeys(_DEPRECATED, _To.SKIP))
    banner = event_type.startswith("users.messages.banner.")
    routes[_STEP_VARIATION] = "canvas_step_message_variation_api_id" if banner else _To.SKIP
    if event_type in (CUSTOM_EVENT, PURCHASE):
        routes["properties"] = _To.OBJECT
    return _Plan(routes, "custom_properties" if event_type == CUSTOM_EVENT else "purchase_properties")


def encode_currents(event: dict[str, Any]) -> bytes:
    event_type = event.get("event_type") or ""
    plan = _plan(event_type)
    routes = plan.routes
    user: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for key, value in event.items():
        if value is None:
            continue
        route = routes.get(key, key)
        if isinstance(route, str):
            properties[route] = value
        elif route == _To.USER:
            user[key] = value
        elif route == _To.OBJECT:
            properties[plan.object_key] = parse_properties(value)
    return dumps({"event_type": event_type, "id": event.get("id"), "time": event.get("time"), "user": user,
                  "properties": properties})


class CurrentsHttp(Partner):
    """Any endpoint speaking the custom-export format; the connector's URL and optional bearer token."""

    type: ClassVar[str] = "http"
    limits: ClassVar[Limits] = Limits(max_events=100, max_request_bytes=10 * MIB, max_event_bytes=1 * MIB)
    _ENVELOPE: ClassVar[Envelope] = Envelope(b'{"events":[', b"]}")

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


    def envelope(self) -> Envelope:
        return self._ENVELOPE

    def encode_event(self, event: dict[str, Any]) -> Optional[bytes]:
        return encode_currents(event)

    def probe(self) -> Optional[Request]:
        """An empty `{"events":[]}` batch: receivers must treat it as a no-op but still check Authorization."""
        return self.request([])
