"""Amplitude HTTP API V2 (behaviour §5.1): `{"api_key": ..., "events": [...]}`, the key in the body, no auth header.

`user_id` is the external id; events of anonymous users still go when they have a `device_id` (Amplitude needs
one of the two). Time is in milliseconds; the Braze id is the 7-day dedupe `insert_id`.
"""
from __future__ import annotations

from functools import cached_property, lru_cache
from typing import Any, ClassVar, Literal, Optional, Type

from core.config import Secret
from sinks.http.partners.base import Envelope, HttpConnectorBase, Limits, Partner, dumps
from sinks.http.partners.names import (
    PURCHASE,
    epoch_ms,
    event_name,
    parse_properties,
    prefixed,
    property_prefix,
    usable_id,
)

_URLS = {"us": "https://api2.amplitude.com/2/httpapi", "eu": "https://api.eu.amplitude.com/2/httpapi"}
_TOP_LEVEL = ("event_type", "id", "time", "time_ms", "external_user_id", "device_id", "platform", "os_version",
              "device_model")
_AD_ID_KEYS = {"ios_idfa": "idfa", "google_ad_id": "adid"}
_MIN_ID_LENGTH = 5  # Amplitude rejects shorter user_id/device_id (its default `options.min_id_length`)


def _amplitude_id(value: Any) -> Optional[str]:
    """An id Amplitude accepts: a shorter one would get the whole request a 400, so it counts as absent."""
    text = usable_id(value)
    return text if text is not None and len(text) >= _MIN_ID_LENGTH else None


@lru_cache(maxsize=1024)
def _skipped(event_type: str) -> frozenset[str]:
    """Fields that do not go to `event_properties` as they are (mapped to top-level keys, or expanded)."""
    skip = set(_TOP_LEVEL)
    if property_prefix(event_type) is not None:
        skip.update(("name", "properties"))
    if event_type == PURCHASE:
        skip.update(("product_id", "price", "currency"))
    return frozenset(skip)


class Amplitude(Partner):
    type: ClassVar[str] = "amplitude"
    # ≤ 2,000 events and strictly < 1 MB a request, else 413 (1 MB read as 10^6 bytes, the stricter reading).
    limits: ClassVar[Limits] = Limits(max_events=2000, max_request_bytes=999_999, max_event_bytes=999_999)

    @property
    def url(self) -> str:
        endpoint: Optional[str] = self.connector.endpoint
        return endpoint or _URLS[self.connector.region]

    @cached_property
    def _envelope(self) -> Envelope:
        key = dumps(self.secret(self.connector.api_key))  # JSON-escaped: a key is never spliced in raw
        return Envelope(b'{"api_key":' + key + b',"events":[', b"]}")

    def envelope(self) -> Envelope:
        return self._envelope

    def encode_event(self, event: dict[str, Any]) -> Optional[bytes]:
        user_id = _amplitude_id(event.get("external_user_id"))
        device_id = _amplitude_id(event.get("device_id"))
        if user_id is None and device_id is None:
            return None
        event_type = event.get("event_type") or ""
        skip = _skipped(event_type)
        properties = {k: v for k, v in event.items() if v is not None and k not in skip}
        prefix = property_prefix(event_type)
        if prefix is not None:
            properties.update(prefixed(parse_properties(event.get("properties")), prefix))
        out: dict[str, Any] = {"event_type": event_name(event), "insert_id": event.get("id"), "library": "Braze",
                               "event_properties": properties}
        millis = epoch_ms(event)
        if millis is not None:
            out["time"] = millis
        if user_id is not None:
            out["user_id"] = user_id
        if device_id is not None:
            out["device_id"] = device_id
        for key in ("platform", "os_version", "device_model"):
            value = event.get(key)
            if value is not None:
                out[key] = value
        ad_id = event.get("ad_id")
        if ad_id is not None:
            ad_key = _AD_ID_KEYS.get(event.get("ad_id_type") or "")
            if ad_key is not None:
                out[ad_key] = ad_id
        if event_type == PURCHASE:
            for source, target in (("price", "price"), ("product_id", "productId"), ("currency", "currency")):
                value = event.get(source)
                if value is not None:
                    out[target] = value
        return dumps(out)


class AmplitudeConnector(HttpConnectorBase):
    type: Literal["amplitude"]
    partner_class: ClassVar[Type[Partner]] = Amplitude
    api_key: Secret
    region: Literal["us", "eu"] = "us"
