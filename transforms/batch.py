"""Windowed grouping per key (connector, event type, hour, shard) into batches bounded by count, bytes and time.

One transform serves both sinks: storage connectors cut files (15,000 events / 128 MiB / 5 minutes by default),
HTTP connectors cut requests (partner limits / 5 seconds). Input elements are `(key, chunk)` where a chunk is the
JSON of events already grouped within a bundle by the router, joined by newlines, so state and shuffle see one
bytes value per chunk rather than an element per event. Output elements are `Batch`es with a per-key sequence number and a token, which the sinks turn into
deterministic object names: a retried bundle re-emits the same sequence and so rewrites the same object.

Bounded input (batch mode) groups with a GroupByKey and cuts; unbounded input uses a stateful DoFn with a
processing-time timer (the flush interval, measured with an injectable clock so TestStream can drive it) and an
event-time timer at the end of the global window (the final flush when a bounded stream drains).
"""
from __future__ import annotations

import time
from bisect import bisect_right
from itertools import accumulate, chain
from operator import itemgetter
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional

import apache_beam as beam
import orjson
from apache_beam.coders import BytesCoder, FastPrimitivesCoder, TupleCoder, VarIntCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Duration

from core.config import BatchLimits
from core.records import DRAIN_AT, Batch, Item

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


def _flatten(chunks: Iterable[bytes]) -> list[Item]:
    """Chunks (newline-joined JSON events) → (event JSON, size) items."""
    lines = list(chain.from_iterable(chunk.split(b"\n") for chunk in chunks))
    return list(zip(lines, map(len, lines)))


class CutGroups(beam.DoFn):
    """Batch mode: every group is complete, so cut it and number the pieces.

    Given a lane (its id and connector ids), the groups are those of a flow several lanes share (pipeline/lanes.py):
    the lane takes the groups meant for any of its connectors and keys its batches as its own."""

    def __init__(self, limits: BatchLimits, run_token: int, lane: Optional[tuple[str, frozenset[str]]] = None) -> None:
        self._limits = limits
        self._run_token = run_token
        self._lane = lane

    def process(self, element: tuple[tuple, Iterable[bytes]]) -> Iterator[Batch]:
        key, chunks = element
        if self._lane is not None:
            lane_id, ids = self._lane
            members = tuple(cid for cid in key[4] if cid in ids)
            if not members:
                return
            key = (lane_id, *key[1:4], members)
        for seq, items in enumerate(cut(_flatten(chunks), self._limits.max_count, self._limits.max_bytes)):
            yield Batch(key, seq, items, self._run_token)


class _StatefulBatcher(beam.DoFn):
    """Streaming: buffer per key; emit full batches at once, the rest when the flush interval ends.

    Keys carry the hour, so a key goes idle once its hour is over: after `idle_seconds` with nothing buffered its
    state is cleared, so a job that runs for months keeps state for live keys only. Batches are numbered from the
    time the key's state opened (its token) and a per-key sequence, so a key that comes back after a clean-up
    starts a new token and never reuses an earlier batch's name.
    """

    BUFFER = BagStateSpec("buffer", BytesCoder())
    COUNT = ReadModifyWriteStateSpec("count", VarIntCoder())  # empty when nothing is buffered
    BYTES = ReadModifyWriteStateSpec("bytes", VarIntCoder())
    SEQ = ReadModifyWriteStateSpec("seq", VarIntCoder())
    OPENED = ReadModifyWriteStateSpec("opened", VarIntCoder())
    FLUSH = TimerSpec("flush", TimeDomain.REAL_TIME)
    IDLE = TimerSpec("idle", TimeDomain.REAL_TIME)
    DRAIN = TimerSpec("drain", TimeDomain.WATERMARK)

    def __init__(self, limits: BatchLimits, clock: Callable[[], float]) -> None:
        self._limits = limits
        self._clock = clock
        self._idle_seconds = max(3600.0, 2 * limits.flush_seconds)

    def process(self, element: tuple[tuple, bytes],
                buffer=beam.DoFn.StateParam(BUFFER), count=beam.DoFn.StateParam(COUNT),  # noqa: ANN001
                nbytes=beam.DoFn.StateParam(BYTES), seq=beam.DoFn.StateParam(SEQ),
                opened=beam.DoFn.StateParam(OPENED), flush=beam.DoFn.TimerParam(FLUSH),
                idle=beam.DoFn.TimerParam(IDLE), drain=beam.DoFn.TimerParam(DRAIN)) -> Iterator[Batch]:
        key, chunk = element
        now = self._clock()
        if opened.read() is None:
            opened.write(int(now))
            drain.set(DRAIN_AT)
        buffered = count.read()
        if buffered is None:  # the first events since the last flush: the flush interval starts now
            flush.set(now + self._limits.flush_seconds)
            idle.clear()
        buffer.add(chunk)
        total = (buffered or 0) + chunk.count(b"\n") + 1
        size = (nbytes.read() or 0) + len(chunk)
        count.write(total)
        nbytes.write(size)
        if total >= self._limits.max_count or size >= self._limits.max_bytes:
            yield from self._emit(key, now, buffer, count, nbytes, seq, opened, flush, idle, only_full=True)

    @on_timer(FLUSH)
    def on_flush(self, key=beam.DoFn.KeyParam, now=beam.DoFn.TimestampParam,  # noqa: ANN001
                 buffer=beam.DoFn.StateParam(BUFFER), count=beam.DoFn.StateParam(COUNT),
                 nbytes=beam.DoFn.StateParam(BYTES), seq=beam.DoFn.StateParam(SEQ),
                 opened=beam.DoFn.StateParam(OPENED), flush=beam.DoFn.TimerParam(FLUSH),
                 idle=beam.DoFn.TimerParam(IDLE)) -> Iterator[Batch]:
        yield from self._emit(key, float(now), buffer, count, nbytes, seq, opened, flush, idle, only_full=False)

    @on_timer(DRAIN)
    def on_drain(self, key=beam.DoFn.KeyParam,  # noqa: ANN001
                 buffer=beam.DoFn.StateParam(BUFFER), count=beam.DoFn.StateParam(COUNT),
                 nbytes=beam.DoFn.StateParam(BYTES), seq=beam.DoFn.StateParam(SEQ),
                 opened=beam.DoFn.StateParam(OPENED), flush=beam.DoFn.TimerParam(FLUSH),
                 idle=beam.DoFn.TimerParam(IDLE)) -> Iterator[Batch]:
        yield from self._emit(key, self._clock(), buffer, count, nbytes, seq, opened, flush, idle, only_full=False)
        idle.clear()

    @on_timer(IDLE)
    def on_idle(self, count=beam.DoFn.StateParam(COUNT), seq=beam.DoFn.StateParam(SEQ),  # noqa: ANN001
                opened=beam.DoFn.StateParam(OPENED), drain=beam.DoFn.TimerParam(DRAIN)) -> None:
        if count.read() is None:  # nothing arrived since: forget the key
            seq.clear()
            opened.clear()
            drain.clear()

    def _emit(self, key, now, buffer, count, nbytes, seq, opened, flush, idle,  # noqa: ANN001
              only_full: bool) -> Iterator[Batch]:
        limits = self._limits
        batches = list(cut(_flatten(buffer.read()), limits.max_count, limits.max_bytes))
        buffer.clear()
        count.clear()
        nbytes.clear()
        rest: list[Item] = []
        if only_full and batches:
            last = batches[-1]
            if len(last) < limits.max_count and sum(s for _, s in last) < limits.max_bytes:
                rest = batches.pop()
        number = seq.read() or 0
        token = opened.read() or 0
        for items in batches:
            yield Batch(key, number, items, token)
            number += 1
        seq.write(number)
        if rest:
            buffer.add(b"\n".join(data for data, _ in rest))
            count.write(len(rest))
            nbytes.write(sum(s for _, s in rest))
        else:
            flush.clear()
            idle.set(now + self._idle_seconds)


class BatchEvents(beam.PTransform):
    """`(key, chunk)` → `Batch(key, seq, items, token)` within `limits`; never an empty batch."""

    def __init__(self, limits: BatchLimits, streaming: bool, run_token: int,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._limits = limits
        self._streaming = streaming
        self._run_token = run_token
        self._clock = clock

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        if self._streaming:
            return pcoll | "Buffer" >> beam.ParDo(_StatefulBatcher(self._limits, self._clock)).with_output_types(Batch)
        return (pcoll
                | "Group" >> beam.GroupByKey()
                | "Cut" >> beam.ParDo(CutGroups(self._limits, self._run_token)).with_output_types(Batch))
