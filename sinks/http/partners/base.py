"""What a partner module says: its endpoint, auth, limits and how a batch is encoded — and nothing else.

Delivery (retries, splitting, parking) is shared and lives in `sinks/http/deliver.py`; a partner only turns events
into request bodies. Bodies are built from individually encoded events and an envelope, so the splitter can measure
every request exactly, after encoding, before it is sent.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, ClassVar, Optional

import orjson


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
        raise NotImplementedError

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
