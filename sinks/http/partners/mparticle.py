"""mParticle server-to-server bulk events (behaviour §5.4): a JSON array of batches to `/v2/bulkevents`, Basic
auth with the feed's key and secret.

One batch per event (the limits count batches): the external id is `customer_id`, so users without one are
skipped. mParticle has no idempotency key; the Braze id goes in `source_message_id` and `source_request_id` for
downstream dedupe.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Type

from core.config import Secret
from sinks.http.partners.base import Envelope, HttpConnectorBase, Limits, Partner, basic_auth, dumps
from sinks.http.partners.names import (
    UNINSTALL,
    epoch_ms,
    event_name,
    kept_apart,
    parse_properties,
    prefixed,
    property_prefix,
    usable_id,
)

KIB = 1024

_DEFAULT_URL = "https://s2s.mparticle.com/v2/bulkevents"
_MAPPED = frozenset(("event_type", "id", "time", "time_ms", "external_user_id", "email_address"))
# Channels whose events carry the user's own number (to it, or from it inbound): it becomes `$mobile`.
_MOBILE_CHANNELS = ("users.messages.sms.", "users.messages.whatsapp.", "users.messages.rcs.")
_USER_PHONES = ("to_phone_number", "user_phone_number")



def _text(value: Any) -> str:
    """mParticle custom attributes are strings: booleans as JSON spells them, lists and objects as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return dumps(value).decode()


class MParticle(Partner):
    type: ClassVar[str] = "mparticle"
    limits: ClassVar[Limits] = Limits(max_events=100, max_request_bytes=256 * KIB, max_event_bytes=128 * KIB)
    ENVELOPE: ClassVar[Optional[Envelope]] = Envelope(b"[", b"]")

    @property
    def url(self) -> str:
        endpoint: Optional[str] = self.connector.endpoint
        if endpoint:
            return endpoint
        pod: Optional[str] = self.connector.pod
        return f"https://s2s.{pod}.mparticle.com/v2/bulkevents" if pod else _DEFAULT_URL

    def build_headers(self) -> dict[str, str]:
        key = self.secret(self.connector.api_key) or ""
        secret = self.secret(self.connector.api_secret) or ""
        return basic_auth(key, secret)

    def encode_event(self, event: dict[str, Any]) -> Optional[bytes]:
        customer_id = usable_id(event.get("external_user_id"))
        if customer_id is None:
            return None
        event_type = event.get("event_type") or ""
        identities = {"customer_id": customer_id}
        email = usable_id(event.get("email_address"))
        if email is not None:
            identities["email"] = email
        batch: dict[str, Any] = {"environment": self.connector.environment, "schema_version": 2,
                                 "user_identities": identities}
        phone_key = None
        if event_type.startswith(_MOBILE_CHANNELS):
            phone_key = next((k for k in _USER_PHONES if event.get(k) is not None), None)
            phone = usable_id(event.get(phone_key)) if phone_key else None
            if phone is not None:
                batch["user_attributes"] = {"$mobile": phone}
        skip = kept_apart(event_type, _MAPPED)
        attributes = {k: _text(v) for k, v in event.items() if v is not None and k not in skip and k != phone_key}
        prefix = property_prefix(event_type)
        if prefix is not None:
            for k, v in prefixed(parse_properties(event.get("properties")), prefix).items():
                if v is not None:
                    attributes[k] = _text(v)
        attributes["source_request_id"] = _text(event.get("id"))
        data: dict[str, Any] = {"source_message_id": event.get("id"), "timestamp_unixtime_ms": epoch_ms(event),
                                "custom_attributes": attributes}
        if event_type == UNINSTALL:
            batch["events"] = [{"event_type": "uninstall", "data": data}]  # mParticle's uninstall has no name
        else:
            data = {"event_name": event_name(event), "custom_event_type": "other", **data}
            batch["events"] = [{"event_type": "custom_event", "data": data}]
        return dumps(batch)


class MParticleConnector(HttpConnectorBase):
    type: Literal["mparticle"]
    partner_class: ClassVar[Type[Partner]] = MParticle
    api_key: Secret
    api_secret: Secret
    pod: Optional[Literal["us1", "us2", "eu1", "au1"]] = None
    environment: Literal["production", "development"] = "production"
