"""Cut encoded events into requests that each fit the partner's limits, measured on the encoded bytes.

Every event ends up in exactly one request, in order, or — when it alone is over the per-event limit or cannot fit
in a request even by itself — in `too_large`.
"""
from __future__ import annotations

from typing import Any, Iterable

from sinks.http.partners.base import Envelope, Limits

Encoded = tuple[Any, bytes]  # (the event, its encoding for the partner)


def plan_requests(items: Iterable[Encoded], limits: Limits, envelope: Envelope,
                  max_events: int) -> tuple[list[list[Encoded]], list[Encoded]]:
    """(requests, too_large): each request has ≤ max_events events and an encoded body ≤ limits.max_request_bytes."""
    max_events = min(max_events, limits.max_events)
    single_max = limits.max_request_bytes - envelope.size(0, 0)
    requests: list[list[Encoded]] = []
    too_large: list[Encoded] = []
    current: list[Encoded] = []
    size = 0
    sep = len(envelope.separator)
    base = envelope.size(0, 0)
    for item in items:
        n = len(item[1])
        if n > limits.max_event_bytes or n > single_max:
            too_large.append(item)
            continue
        if current and (len(current) >= max_events or base + size + sep + n > limits.max_request_bytes):
            requests.append(current)
            current, size = [], 0
        size += n + (sep if current else 0)
        current.append(item)
    if current:
        requests.append(current)
    return requests, too_large


def request_size(items: list[Encoded], envelope: Envelope) -> int:
    return envelope.size(sum(len(e) for _, e in items), len(items))
