"""Chunks: the one encoding of many events in one bytes value.

A chunk is events' JSON joined by newlines. orjson never writes a raw newline, and the parser passes a record's
own bytes on only when they hold none (transforms/parse.py), so a newline always separates two events. The router
joins events into chunks (transforms/route.py); shuffle and state then carry one bytes value for hundreds of
events, far more cheaply than dicts or lists; the batching policy splits them back into items, `(event JSON,
size)`, that it cuts into batches (transforms/batch.py); the sinks decode a batch's items in one parse.
"""
from __future__ import annotations

from operator import itemgetter
from typing import Any, Iterable

import orjson

Item = tuple[bytes, int]  # (one event's JSON, its size in bytes)
SEPARATOR = b"\n"


def join(lines: Iterable[bytes]) -> bytes:
    """Events' JSON → one chunk."""
    return SEPARATOR.join(lines)


def count(chunk: bytes) -> int:
    """The number of events in a chunk, without splitting it."""
    return chunk.count(SEPARATOR) + 1


def size(chunk: bytes) -> int:
    """The bytes of a chunk's events, separators not counted: the measure `items` gives each of them."""
    return len(chunk) - chunk.count(SEPARATOR)


def items(chunks: Iterable[bytes]) -> list[Item]:
    """Chunks → (event JSON, size) items, in order."""
    lines = [line for chunk in chunks for line in chunk.split(SEPARATOR)]
    return list(zip(lines, map(len, lines)))


def decode(items: Iterable[tuple[bytes, Any]]) -> list[dict[str, Any]]:
    """Items' events, decoded. Every item is one complete JSON object (a record that parsed as one, or orjson's
    output), so the items joined by commas are a JSON array of exactly those objects: one parse for all of them,
    about half the cost of one parse per event."""
    events: list[dict[str, Any]] = orjson.loads(b"[" + b",".join(map(itemgetter(0), items)) + b"]")
    return events
