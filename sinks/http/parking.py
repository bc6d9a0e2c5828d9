"""Parking: the credential grace window, and the retry window.

A connector whose partner keeps failing, or refuses its credentials, has its batches parked in per-connector state
instead of being retried in a loop. Every `probe_interval_seconds` a probe checks the partner (an empty batch for
the Currents format, otherwise the oldest parked batch itself); on success the parked batches go out oldest first.
Batches parked for longer than `retry_window_hours` (retryable errors) or `credential_grace_hours` (401/403/404)
become `expired` / `credentials_expired` dead letters; over `max_parked_events`, the overflow is `parking_full`.

Streaming runs keep parked batches in a stateful DoFn driven by a processing-time timer: no worker ever sleeps.
Bounded runs (batch mode has no processing-time timers) wait for the partner between probes on the worker, within
the same windows, since the job cannot end before every event is delivered or dead-lettered.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator, Optional

import apache_beam as beam
from apache_beam.coders import FastPrimitivesCoder, FloatCoder, VarIntCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer

from sinks.http.partners.base import HttpConnectorBase
from core.metrics import counter
from core.deadletters import CREDENTIALS_EXPIRED, DRAINED, EXPIRED, PARKING_FULL, connector_letter
from sinks.http.deliver import CREDENTIALS, Deliverer, ParkedBatch, PartnerDoFn
from sinks.http.retry import Verdict, classify
from core.records import DRAIN_AT

HOUR = 3600.0


def _letters(connector: HttpConnectorBase, reason: str, error: str,
             events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [connector_letter(reason, error, event, connector.id) for event in events]


def expire(connector: HttpConnectorBase, parked: list[ParkedBatch],
           now: float) -> tuple[list[ParkedBatch], list[dict[str, Any]]]:
    """Split parked batches into those still within their window and the dead letters of the others."""
    keep: list[ParkedBatch] = []
    dead: list[dict[str, Any]] = []
    for batch in parked:
        kind, since, error, events = batch
        credentials = kind == CREDENTIALS
        window = (connector.credential_grace_hours if credentials else connector.retry_window_hours) * HOUR
        if now - since >= window:
            reason = CREDENTIALS_EXPIRED if credentials else EXPIRED
            dead += _letters(connector, reason, f"still failing after {window / HOUR:g} h: {error}", events)
        else:
            keep.append(batch)
    return keep, dead


def admit(connector: HttpConnectorBase, batch: ParkedBatch,
          parked_events: int) -> tuple[ParkedBatch, list[dict[str, Any]]]:
    """The part of a batch that fits under max_parked_events, and `parking_full` dead letters for the rest."""
    kind, since, error, events = batch
    room = max(0, connector.max_parked_events - parked_events)
    overflow = _letters(connector, PARKING_FULL, f"over max_parked_events={connector.max_parked_events}: {error}",
                        events[room:])
    return (kind, since, error, events[:room]), overflow


def resolve(connector: HttpConnectorBase, deliverer: Optional[Deliverer], parked: list[ParkedBatch],
            now: float) -> tuple[list[ParkedBatch], list[dict[str, Any]]]:
    """One probe cycle: expire, probe, then deliver oldest first until something fails again (no deliverer: the
    connector's secrets are not readable yet, so only the windows run)."""
    parked, dead = expire(connector, sorted(parked, key=lambda b: b[1]), now)
    if not parked or deliverer is None:
        return parked, dead
    answer = deliverer.probe()
    if answer is not None and (answer.status is None or classify(answer.status) is not Verdict.DONE):
        return parked, dead
    unparked = counter(connector.id, "unparked_batches")
    for index, (kind, since, error, events) in enumerate(parked):
        outcome = deliverer.deliver(events, since=since)
        dead += outcome.dead
        if outcome.parked is not None:
            return [outcome.parked, *parked[index + 1:]], dead
        unparked.inc()
    return [], dead


class _StreamingPark(PartnerDoFn):
    """Per-connector parking state (keyed by connector id), driven by a processing-time probe timer."""

    PARKED = BagStateSpec("parked", FastPrimitivesCoder())
    COUNT = ReadModifyWriteStateSpec("count", VarIntCoder())
    NEXT_PROBE = ReadModifyWriteStateSpec("next_probe", FloatCoder())
    PROBE = TimerSpec("probe", TimeDomain.REAL_TIME)
    DRAIN = TimerSpec("drain", TimeDomain.WATERMARK)

    def process(self, element: tuple[str, ParkedBatch], parked=beam.DoFn.StateParam(PARKED),  # noqa: ANN001
                count=beam.DoFn.StateParam(COUNT), next_probe=beam.DoFn.StateParam(NEXT_PROBE),
                probe=beam.DoFn.TimerParam(PROBE), drain=beam.DoFn.TimerParam(DRAIN)) -> Iterator[dict[str, Any]]:
        batch, overflow = admit(self._c, element[1], count.read() or 0)
        yield from overflow
        if batch[3]:
            parked.add(batch)
            count.write((count.read() or 0) + len(batch[3]))
        if next_probe.read() is None:
            when = self._clock() + self._c.probe_interval_seconds
            next_probe.write(when)
            probe.set(when)
            drain.set(DRAIN_AT)

    @on_timer(PROBE)
    def on_probe(self, now=beam.DoFn.TimestampParam, parked=beam.DoFn.StateParam(PARKED),  # noqa: ANN001
                 count=beam.DoFn.StateParam(COUNT), next_probe=beam.DoFn.StateParam(NEXT_PROBE),
                 probe=beam.DoFn.TimerParam(PROBE)) -> Iterator[dict[str, Any]]:
        now = float(now)  # a processing-time timer fires at its time: that is "now" here, test clocks included
        keep, dead = resolve(self._c, self._open(), list(parked.read()), now)
        if any(batch[0] == CREDENTIALS for batch in keep):
            self.reopen()  # the next probe reads the secrets again: a rotated key is picked up
        yield from dead
        parked.clear()
        for batch in keep:
            parked.add(batch)
        count.write(sum(len(b[3]) for b in keep))
        if keep:
            next_probe.write(now + self._c.probe_interval_seconds)
            probe.set(now + self._c.probe_interval_seconds)
        else:
            next_probe.clear()

    @on_timer(DRAIN)
    def on_drain(self, parked=beam.DoFn.StateParam(PARKED), count=beam.DoFn.StateParam(COUNT),  # noqa: ANN001
                 next_probe=beam.DoFn.StateParam(NEXT_PROBE), probe=beam.DoFn.TimerParam(PROBE)) -> Iterator[dict[str, Any]]:
        """The stream ends (drain, or the end of bounded input): one last try, then the rest are dead letters."""
        batches, dead = resolve(self._c, self._open(), list(parked.read()), self._clock())
        yield from dead
        for _, _, error, events in batches:
            yield from _letters(self._c, DRAINED, f"the job ended while parked: {error}", events)
        parked.clear()
        count.clear()
        next_probe.clear()
        probe.clear()


class _BoundedPark(PartnerDoFn):
    """Bounded runs: all parked batches of a connector, probed every interval until delivered or expired."""

    def __init__(self, connector: HttpConnectorBase, clock: Callable[[], float],
                 sleep: Callable[[float], None]) -> None:
        super().__init__(connector, clock)
        self._sleep = sleep

    def process(self, element: tuple[str, Iterable[ParkedBatch]]) -> Iterator[dict[str, Any]]:
        batches: list[ParkedBatch] = []
        total = 0
        for batch in element[1]:
            batch, overflow = admit(self._c, batch, total)
            yield from overflow
            if batch[3]:
                batches.append(batch)
                total += len(batch[3])
        while batches:
            self._sleep(self._c.probe_interval_seconds)
            batches, dead = resolve(self._c, self._open(), batches, self._clock())
            if any(batch[0] == CREDENTIALS for batch in batches):
                self.reopen()
            yield from dead


class Park(beam.PTransform):
    """`(connector id, parked batch)` → dead letters of what could never be delivered."""

    def __init__(self, connector: HttpConnectorBase, streaming: bool, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        self._c = connector
        self._streaming = streaming
        self._clock = clock
        self._sleep = sleep

    def expand(self, parked: beam.PCollection) -> beam.PCollection:
        if self._streaming:
            return parked | "Hold" >> beam.ParDo(_StreamingPark(self._c, self._clock))
        return (parked
                | "Gather" >> beam.GroupByKey()
                | "Wait" >> beam.ParDo(_BoundedPark(self._c, self._clock, self._sleep)))


