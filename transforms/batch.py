"""Batching: a lane's routed chunks → batches bounded by count, bytes and time, per `BatchKey`.

One policy serves both sinks: storage lanes cut files (15,000 events / 128 MiB / 5 minutes by default), partner
lanes cut requests (partner limits / 5 seconds). It runs in the keyed buffer (core/buffer.py), which holds a
lane's chunks per key — grouped at once in batch mode, in state with a flush timer in streaming — and asks it
to release them. Chunks are the router's (core/chunks.py), so state and shuffle see one bytes value per chunk
rather than an element per event. Out: `Batch`es with a per-key sequence number and a token, which the sinks turn
into deterministic object names: a retried bundle re-emits the same sequence and so rewrites the same object.
"""
from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from operator import itemgetter
from typing import Iterable, Iterator, Optional

from core import chunks
from core.buffer import HoldPolicy, Numbering, Why
from core.config import BatchLimits
from core.lanes import Lane
from core.records import Batch, BatchKey, Item


def cut(items: Iterable[Item], max_count: int, max_bytes: int) -> Iterator[list[Item]]:
    """Split items into consecutive batches within both limits; an item larger than max_bytes goes alone.

    Each batch is the longest run of the next items within both limits, found by bisecting running byte totals:
    the work per batch is a few C calls, not a Python step per item.
    """
    items = items if isinstance(items, list) else list(items)
    totals = list(accumulate(map(itemgetter(1), items)))
    start, n = 0, len(items)
    while start < n:
        before = totals[start - 1] if start else 0
        end = min(start + max_count, bisect_right(totals, before + max_bytes, start, n))
        end = max(end, start + 1)  # an item over max_bytes still goes, alone
        yield items[start:end]
        start = end


def cut_stream(chunk_stream: Iterable[bytes], max_count: int, max_bytes: int) -> Iterator[list[Item]]:
    """`cut` of a group's chunks as they come: the same batches as cutting the whole group, holding about one
    batch's worth (a batch is final once an item after it is known), so a worker never holds a whole group."""
    pending: list[Item] = []
    held_bytes = 0
    for chunk in chunk_stream:
        new = chunks.items((chunk,))
        pending += new
        held_bytes += sum(map(itemgetter(1), new))
        if len(pending) > max_count or held_bytes > max_bytes:
            batches = list(cut(pending, max_count, max_bytes))
            pending = batches.pop()
            held_bytes = sum(map(itemgetter(1), pending))
            yield from batches
    if pending:
        yield from cut(pending, max_count, max_bytes)


class Batching(HoldPolicy[BatchKey, bytes]):
    """A lane's policy in the keyed buffer: it takes the routed chunks meant for its connectors (`Lane.take`),
    is due when a key holds `max_count` events or `max_bytes`, wakes `flush_seconds` after a key's first events
    (streaming), and releases its chunks cut into batches. Released early (FULL), it keeps the last batch when
    that is not full yet. A key is forgotten after max(1 h, 2 × flush_seconds) with nothing held: keys carry the
    hour, so a key goes idle once its hour is over."""

    output_type = Batch

    def __init__(self, lane: Lane, limits: BatchLimits) -> None:
        self.name = lane.id
        self._lane = lane
        self._limits = limits
        self.wake_seconds = limits.flush_seconds
        self.idle_seconds = max(3600.0, 2 * limits.flush_seconds)

    def take(self, key: BatchKey) -> Optional[BatchKey]:
        return self._lane.take(key)

    def weigh(self, value: bytes) -> tuple[int, int]:
        return chunks.count(value), chunks.size(value)

    def due(self, count: int, nbytes: int) -> bool:
        return count >= self._limits.max_count or nbytes >= self._limits.max_bytes

    def release_complete(self, key: BatchKey, values: Iterable[bytes], numbering: Numbering) -> Iterator[Batch]:
        """Bounded: a key's whole group, cut as it is read (a group of millions of events is never in memory)."""
        for items in cut_stream(values, self._limits.max_count, self._limits.max_bytes):
            yield Batch(key, numbering.seq, items, numbering.token)
            numbering.seq += 1

    def release(self, key: BatchKey, values: Iterable[bytes], why: Why, now: float,
                numbering: Numbering) -> tuple[list[bytes], list[Batch]]:
        limits = self._limits
        batches = list(cut(chunks.items(values), limits.max_count, limits.max_bytes))
        kept: list[bytes] = []
        if why is Why.FULL and batches:
            last = batches[-1]
            if len(last) < limits.max_count and sum(map(itemgetter(1), last)) < limits.max_bytes:
                kept = [chunks.join(map(itemgetter(0), batches.pop()))]
        out = []
        for items in batches:
            out.append(Batch(key, numbering.seq, items, numbering.token))
            numbering.seq += 1
        return kept, out
