"""Windowed grouping per key (connector, event type, hour, shard) into batches bounded by count, bytes and time.

One transform serves both sinks: storage connectors cut files (15,000 events / 128 MiB / 5 minutes by default),
HTTP connectors cut requests (partner limits / 5 seconds). Input elements are `(key, chunk)` where a chunk is a list
of `(event, size)` pairs already grouped within a bundle by the router, so state and shuffle see one element per
chunk rather than per event. Output elements are `Batch`es with a per-key sequence number, which the sinks turn into
deterministic object names: a retried bundle re-emits the same sequence and so rewrites the same object.

Bounded input (batch mode) groups with a GroupByKey and cuts; unbounded input uses a stateful DoFn with a
processing-time timer (the flush interval, measured with an injectable clock so TestStream can drive it) and an
event-time timer at the end of the global window (the final flush when a bounded stream drains).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import apache_beam as beam
from apache_beam.coders import FastPrimitivesCoder, FloatCoder, VarIntCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Duration

from pipeline.config import BatchLimits

Item = tuple[Any, int]  # (payload, encoded size estimate in bytes)
# The final flush fires a day before the end of the global window, not at it: outputs stamped with the window's
# very end reach the next grouping step after its window has closed and are dropped there (DESIGN.md §4).
DRAIN_AT = GlobalWindow().max_timestamp() - Duration(seconds=24 * 3600)


class Batch(NamedTuple):
    key: tuple
    seq: int
    items: list


def cut(items: Iterable[Item], max_count: int, max_bytes: int) -> Iterator[list[Item]]:
    """Split items into consecutive batches within both limits; an item larger than max_bytes goes alone."""
    batch: list[Item] = []
    size = 0
    for item in items:
        if batch and (len(batch) >= max_count or size + item[1] > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item[1]
    if batch:
        yield batch


def _flatten(chunks: Iterable[list[Item]]) -> Iterator[Item]:
    for chunk in chunks:
        yield from chunk


class _CutGroups(beam.DoFn):
    """Batch mode: every group is complete, so cut it and number the pieces."""

    def __init__(self, limits: BatchLimits) -> None:
        self._limits = limits

    def process(self, element: tuple[tuple, Iterable[list[Item]]]) -> Iterator[Batch]:
        key, chunks = element
        for seq, items in enumerate(cut(_flatten(chunks), self._limits.max_count, self._limits.max_bytes)):
            yield Batch(key, seq, items)


class _StatefulBatcher(beam.DoFn):
    """Streaming: buffer per key; emit full batches at once, the rest when the flush interval ends."""

    BUFFER = BagStateSpec("buffer", FastPrimitivesCoder())
    COUNT = ReadModifyWriteStateSpec("count", VarIntCoder())
    BYTES = ReadModifyWriteStateSpec("bytes", VarIntCoder())
    SEQ = ReadModifyWriteStateSpec("seq", VarIntCoder())
    DEADLINE = ReadModifyWriteStateSpec("deadline", FloatCoder())
    FLUSH = TimerSpec("flush", TimeDomain.REAL_TIME)
    DRAIN = TimerSpec("drain", TimeDomain.WATERMARK)

    def __init__(self, limits: BatchLimits, clock: Callable[[], float]) -> None:
        self._limits = limits
        self._clock = clock

    def process(self, element: tuple[tuple, list[Item]],
                buffer=beam.DoFn.StateParam(BUFFER), count=beam.DoFn.StateParam(COUNT),
                nbytes=beam.DoFn.StateParam(BYTES), seq=beam.DoFn.StateParam(SEQ),
                deadline=beam.DoFn.StateParam(DEADLINE),
                flush=beam.DoFn.TimerParam(FLUSH), drain=beam.DoFn.TimerParam(DRAIN)) -> Iterator[Batch]:
        key, chunk = element
        buffer.add(chunk)
        total = (count.read() or 0) + len(chunk)
        size = (nbytes.read() or 0) + sum(s for _, s in chunk)
        count.write(total)
        nbytes.write(size)
        if deadline.read() is None:
            when = self._clock() + self._limits.flush_seconds
            deadline.write(when)
            flush.set(when)
            drain.set(DRAIN_AT)
        if total >= self._limits.max_count or size >= self._limits.max_bytes:
            yield from self._emit(key, buffer, count, nbytes, seq, deadline, flush, only_full=True)

    @on_timer(FLUSH)
    def on_flush(self, key=beam.DoFn.KeyParam,
                 buffer=beam.DoFn.StateParam(BUFFER), count=beam.DoFn.StateParam(COUNT),
                 nbytes=beam.DoFn.StateParam(BYTES), seq=beam.DoFn.StateParam(SEQ),
                 deadline=beam.DoFn.StateParam(DEADLINE), flush=beam.DoFn.TimerParam(FLUSH)) -> Iterator[Batch]:
        yield from self._emit(key, buffer, count, nbytes, seq, deadline, flush, only_full=False)

    @on_timer(DRAIN)
    def on_drain(self, key=beam.DoFn.KeyParam,
                 buffer=beam.DoFn.StateParam(BUFFER), count=beam.DoFn.StateParam(COUNT),
                 nbytes=beam.DoFn.StateParam(BYTES), seq=beam.DoFn.StateParam(SEQ),
                 deadline=beam.DoFn.StateParam(DEADLINE), flush=beam.DoFn.TimerParam(FLUSH)) -> Iterator[Batch]:
        yield from self._emit(key, buffer, count, nbytes, seq, deadline, flush, only_full=False)

    def _emit(self, key, buffer, count, nbytes, seq, deadline, flush, only_full: bool) -> Iterator[Batch]:  # noqa: ANN001
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
        for items in batches:
            yield Batch(key, number, items)
            number += 1
        seq.write(number)
        if rest:
            buffer.add(rest)
            count.write(len(rest))
            nbytes.write(sum(s for _, s in rest))
        else:
            deadline.clear()
            flush.clear()


class BatchEvents(beam.PTransform):
    """`(key, chunk)` → `Batch(key, seq, items)` within `limits`; never an empty batch."""

    def __init__(self, limits: BatchLimits, streaming: bool, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._limits = limits
        self._streaming = streaming
        self._clock = clock

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        if self._streaming:
            return pcoll | "Buffer" >> beam.ParDo(_StatefulBatcher(self._limits, self._clock))
        return (pcoll
                | "Group" >> beam.GroupByKey()
                | "Cut" >> beam.ParDo(_CutGroups(self._limits)))
