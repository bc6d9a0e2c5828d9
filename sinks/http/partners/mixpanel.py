"""Mixpanel Import API (behaviour §5.2): a JSON array of `{"event", "properties"}` to `/import?strict=1`.

`strict=1` makes Mixpanel validate every event and answer 400 with the failed records instead of silently dropping
them. Users without an external id are skipped (`distinct_id` must be a real user). Mixpanel dedupes on
(`event`, `distinct_id`, `time`, `$insert_id`), so `$insert_id` is derived from the Braze id deterministically.
"""
from __future__ import annotations

import re
import uuid
from functools import cached_property
from typing import Any, ClassVar, Literal, Optional, Type
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, model_validator

from core.config import Secret
from sinks.http.partners.base import Envelope, HttpConnectorBase, Limits, Partner, basic_auth, dumps
from sinks.http.partners.names import event_name, kept_apart, parse_properties, prefixed, property_prefix, usable_id

MIB = 1024 * 1024

_HOSTS = {"us": "api.mixpanel.com", "eu": "api-eu.mixpanel.com", "in": "api-in.mixpanel.com"}
_MAPPED = frozenset(("event_type", "id", "time", "external_user_id", "device_model", "os_version"))
_INSERT_ID_OK = re.compile(r"[A-Za-z0-9-]{1,36}")
_INSERT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "beam-currents:mixpanel:$insert_id")



def insert_id(event_id: Any) -> str:
    """`$insert_id` must be ≤ 36 characters of [A-Za-z0-9-]: Braze's UUIDs fit as they are; any other id becomes
    its UUID5, the same on every retry, so a re-sent event still dedupes."""
    text = "" if event_id is None else str(event_id)
    if _INSERT_ID_OK.fullmatch(text):
        return text
    return str(uuid.uuid5(_INSERT_ID_NAMESPACE, text))


class Mixpanel(Partner):
    type: ClassVar[str] = "mixpanel"
    # 2 MiB: the older, stricter documented request size (the newer docs allow 10 MB); an event must be < 1 MB.
    limits: ClassVar[Limits] = Limits(max_events=2000, max_request_bytes=2 * MIB, max_event_bytes=999_999)
    ENVELOPE: ClassVar[Optional[Envelope]] = Envelope(b"[", b"]")

    @cached_property
    def _url(self) -> str:
        project_id: Optional[str] = self.connector.project_id
        endpoint: Optional[str] = self.connector.endpoint
        if not endpoint:
            url = f"https://{_HOSTS[self.connector.region]}/import?strict=1"
            return f"{url}&project_id={project_id}" if project_id else url
        parts = urlsplit(endpoint)
        query = parse_qsl(parts.query, keep_blank_values=True)
        present = {k for k, _ in query}
        if "strict" not in present:
            query.append(("strict", "1"))
        if project_id and "project_id" not in present:
            query.append(("project_id", project_id))
        return urlunsplit(parts._replace(query=urlencode(query)))

    @property
    def url(self) -> str:
        return self._url

    def build_headers(self) -> dict[str, str]:
        """Service account `user:secret` when set; else the legacy API secret, else the project token, as the
        user with an empty password."""
        c = self.connector
        if c.service_account_username and c.service_account_secret:
            user, password = c.service_account_username, self.secret(c.service_account_secret) or ""
        else:
            user, password = self.secret(c.api_secret) or self.secret(c.project_token) or "", ""
        return basic_auth(user, password)

    @cached_property
    def _token(self) -> Optional[str]:
        return self.secret(self.connector.project_token)

    def encode_event(self, event: dict[str, Any]) -> Optional[bytes]:
        distinct_id = usable_id(event.get("external_user_id"))
        if distinct_id is None:
            return None
        event_type = event.get("event_type") or ""
        properties: dict[str, Any] = {"token": self._token, "distinct_id": distinct_id,
                                      "$insert_id": insert_id(event.get("id")), "time": event.get("time"),
                                      "$partner_id": "braze"}
        device_model = event.get("device_model")
        if device_model is not None:
            properties["$device"] = device_model
        os_version = event.get("os_version")
        if os_version is not None:
            properties["$os"] = os_version
        skip = kept_apart(event_type, _MAPPED)
        for key, value in event.items():
            if value is not None and key not in skip:
                properties[key] = value
        prefix = property_prefix(event_type)
        if prefix is not None:
            properties.update(prefixed(parse_properties(event.get("properties")), prefix))
        return dumps({"event": event_name(event), "properties": properties})


class MixpanelConnector(HttpConnectorBase):
    type: Literal["mixpanel"]
    partner_class: ClassVar[Type[Partner]] = Mixpanel
    project_token: Secret
    api_secret: Optional[Secret] = Field(default=None, description="legacy auth: the API secret as basic-auth user")
    service_account_username: Optional[str] = None
    service_account_secret: Optional[Secret] = None
    project_id: Optional[str] = Field(default=None, pattern=r"^[0-9]+$")
    region: Literal["us", "eu", "in"] = "us"

    @model_validator(mode="after")
    def _service_account(self) -> "MixpanelConnector":
        if bool(self.service_account_username) != bool(self.service_account_secret):
            raise ValueError("service_account_username and service_account_secret go together")
        if self.service_account_username and not self.project_id:
            raise ValueError("a service account needs project_id")
        return self
