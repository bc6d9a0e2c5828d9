"""What a partner module says: its endpoint, auth, limits and how a batch is encoded — and nothing else.

Delivery (retries, splitting, parking) is shared and lives in `sinks/http/deliver.py`; a partner only turns events
into request bodies. Bodies are built from individually encoded events and an envelope, so the splitter can measure
every request exactly, after encoding, before it is sent.
"""
from __future__ import annotations

from base64 import b64encode
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, ClassVar, Optional, Type

import orjson
from pydantic import Field, model_validator

from core.config import BatchLimits, ConnectorBase
from core.secrets import REDACTOR


@dataclass(frozen=True)
class Limits:
    max_events: int  # events (or mParticle batches) per request
    max_request_bytes: int  # encoded body bytes per request
    max_event_bytes: int  # encoded bytes of one event; larger ones are `too_large` dead letters


@dataclass(frozen=True)
class Request:
    url: str
    headers: dict[str, str]
    body: bytes
    events: int = 0
    method: str = "POST"


@dataclass(frozen=True)
class Envelope:
    """A body is `prefix + separator.join(encoded events) + suffix`."""

    prefix: bytes
    suffix: bytes
    separator: bytes = b","

    def size(self, event_sizes: int, count: int) -> int:
        return len(self.prefix) + len(self.suffix) + event_sizes + len(self.separator) * max(0, count - 1)


class Partner:
    """Base of every partner module. Constructed on the worker with a secret resolver (and at launch with an
    identity resolver, for limits and the URL only)."""

    type: ClassVar[str]
    limits: ClassVar[Limits]
    content_type: ClassVar[str] = "application/json"
    ENVELOPE: ClassVar[Optional[Envelope]] = None  # a fixed envelope; a partner whose envelope holds a secret
    # (Amplitude's api_key) builds it in `envelope`

    def __init__(self, connector: Any, resolve: Callable[[str], str] = lambda ref: ref) -> None:
        self.connector = connector
        self._resolve = resolve

    def secret(self, ref: Optional[str]) -> Optional[str]:
        return None if ref is None else self._resolve(ref)

    @property
    def url(self) -> str:
        """The request URL: the connector's `endpoint` override, else the partner's (regional) default."""
        raise NotImplementedError

    def build_headers(self) -> dict[str, str]:
        """The partner's own headers (auth, protocol version); none by default."""
        return {}

    @cached_property
    def _headers(self) -> dict[str, str]:
        return self.build_headers()

    def headers(self) -> dict[str, str]:
        """The partner's own headers, built once: secrets are resolved on first use, on the worker."""
        return self._headers

    @cached_property
    def _request_headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type, **self._headers}

    def envelope(self) -> Envelope:
        if self.ENVELOPE is None:
            raise NotImplementedError(f"{type(self).__name__} sets no ENVELOPE and builds none")
        return self.ENVELOPE

    def encode_event(self, event: dict[str, Any]) -> Optional[bytes]:
        """The partner's JSON for one event, or None when the partner cannot take it (skipped and counted)."""
        raise NotImplementedError

    def request(self, encoded: list[bytes]) -> Request:
        envelope = self.envelope()
        body = envelope.prefix + envelope.separator.join(encoded) + envelope.suffix
        return Request(self.url, self._request_headers, body, len(encoded))

    def probe(self) -> Optional[Request]:
        """A request that checks credentials without sending data (None: the partner has none; the oldest parked
        batch is the probe then)."""
        return None


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The `Authorization: Basic` header of `user:password`."""
    encoded = b64encode(f"{user}:{password}".encode()).decode("ascii")
    REDACTOR.add(encoded)  # the header's value is as secret as the password in it
    return {"Authorization": "Basic " + encoded}


class HttpConnectorBase(ConnectorBase):
    """What every analytics partner has: batching, timeouts, retries, parking (the credential grace window).

    A partner's model (in its module) adds `type: Literal["<type>"]`, its credentials and options, and names its
    `partner_class`, the `Partner` that encodes for it."""

    partner_class: ClassVar[Type[Partner]]

    endpoint: Optional[str] = Field(default=None, pattern=r"^https?://",
                                    description="the partner's URL; overrides the default (and region) of a partner")
    flush_seconds: float = Field(default=5, gt=0, le=3600)
    max_events_per_request: Optional[int] = Field(default=None, ge=1, description="at most the partner's limit")
    max_requests_per_second: Optional[float] = Field(default=None, gt=0, description="per worker")
    max_concurrent_requests: int = Field(default=4, ge=1, le=64, description="requests in flight per batch")
    connect_timeout_seconds: float = Field(default=5, gt=0, le=120)
    read_timeout_seconds: float = Field(default=30, gt=0, le=600)
    retry_attempts: int = Field(default=4, ge=1, le=20, description="attempts inside a bundle before parking")
    backoff_base_seconds: float = Field(default=0.5, ge=0, le=60)
    backoff_cap_seconds: float = Field(default=10, ge=0, le=600)

    @model_validator(mode="after")
    def _within_partner_limits(self) -> "HttpConnectorBase":
        limits = self.partner_class.limits
        if self.max_events_per_request and self.max_events_per_request > limits.max_events:
            raise ValueError(f"max_events_per_request: {self.partner_class.type} takes at most {limits.max_events} "
                             "events a request")
        return self

    def batch_limits(self) -> BatchLimits:
        """A batch holds up to `max_concurrent_requests` requests' worth, which the deliverer cuts into requests
        within the partner's limits and sends side by side."""
        limits = self.partner_class.limits
        per_request = self.max_events_per_request or limits.max_events
        return BatchLimits(max_count=per_request * self.max_concurrent_requests,
                           max_bytes=limits.max_request_bytes * self.max_concurrent_requests,
                           flush_seconds=self.flush_seconds)

    def partner(self, resolve: Callable[[str], str] = lambda ref: ref) -> Partner:
        """The partner for this connector; on a worker, `resolve` reads the secrets (at launch: the URL and limits
        only)."""
        return self.partner_class(self, resolve)

    def destination(self) -> str:
        return self.partner().url
