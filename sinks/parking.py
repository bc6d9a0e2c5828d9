"""Parking: holding what a failing destination could not take, and trying it again, without losing any of it.

A destination that keeps failing has its batches parked (`ParkedBatch`: why, since when, the last error, the
events) in the keyed buffer (core/buffer.py) instead of being retried in a loop. Every `probe_seconds` the
destination is checked (`Destination.ready`); when it is, the parked batches go out again oldest first, until one
fails again. A batch parked for longer than its kind's window becomes dead letters with that kind's reason; over
`max_events` parked, the overflow becomes `parking_full` dead letters; when the stream ends, whatever is still
parked becomes `drained` dead letters after one last try. Bounded runs wait on the worker between probes (the
buffer's bounded mode), since the job cannot end before every event is delivered or dead-lettered.

What is particular to a destination — how to check it, how to retry a batch, its windows — is a `Destination`;
the partners' is in sinks/http/parking.py.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Optional

from core.buffer import HoldPolicy, Numbering, Why
from core.config import ConnectorBase
from core.deadletters import CREDENTIALS_EXPIRED, DRAINED, EXPIRED, PARKING_FULL
from core.records import CREDENTIALS, RETRYABLE, ParkedBatch, ParkedBatchCoder

HOUR = 3600.0
Letter = dict[str, Any]
_LOG = logging.getLogger(__name__)
BOUNDED_PROBES = 5  # a bounded run probes at least this often within its hold limit


@dataclass(frozen=True)
class Window:
    seconds: float  # how long a batch of this kind may stay parked
    reason: str  # the dead-letter reason of its events when that time is up
    setting: str = ""  # the option or field that sets it, for the dead letters and logs

    def describe(self) -> str:
        span = f"{self.seconds / HOUR:g} h" if self.seconds >= HOUR else f"{self.seconds:g} s"
        return f"{span} ({self.setting})" if self.setting else span


@dataclass(frozen=True)
class ParkingRules:
    windows: Mapping[str, Window]  # per kind of failure
    max_events: int  # events parked per key at most
    probe_seconds: float  # between two checks of the destination
    cap_name: str = "max_events"  # the cap's name in dead letters (the config field)

    def bounded(self, limit_seconds: Optional[float]) -> "ParkingRules":
        """The rules of a bounded run (a file, dead-letter or generator source): it must end, so nothing is held
        longer than `limit_seconds` (`--bounded_hold_minutes`), and it probes often enough within that."""
        if limit_seconds is None:
            return self
        windows = {kind: window if window.seconds <= limit_seconds else
                   Window(limit_seconds, window.reason, "--bounded_hold_minutes, the most a bounded run holds")
                   for kind, window in self.windows.items()}
        return replace(self, windows=windows,
                       probe_seconds=min(self.probe_seconds, max(1.0, limit_seconds / BOUNDED_PROBES)))


def connector_rules(connector: ConnectorBase, bounded_limit: Optional[float] = None) -> ParkingRules:
    """A connector's holding rules (the same fields for stores and partners); a bounded run's are capped."""
    return ParkingRules(
        windows={RETRYABLE: Window(connector.retry_window_hours * HOUR, EXPIRED, "retry_window_hours"),
                 CREDENTIALS: Window(connector.credential_grace_hours * HOUR, CREDENTIALS_EXPIRED,
                                     "credential_grace_hours")},
        max_events=connector.max_parked_events, probe_seconds=connector.probe_interval_seconds,
        cap_name="max_parked_events").bounded(bounded_limit)


@dataclass
class Breaker:
    """A worker's view of a failing destination: for one probe interval after a batch failed (not after it was
    sent: a hanging destination must not make each batch wait its full timeout), the next batches go straight to
    the hold without a call, under the kind and error of that failure."""

    seconds: float  # the probe interval
    until: float = 0.0  # 0: closed, never tripped
    kind: str = RETRYABLE
    error: str = ""

    def trip(self, now: float, kind: str, error: str) -> None:
        self.until, self.kind, self.error = now + self.seconds, kind, error

    def is_open(self, now: float) -> bool:
        return now < self.until

    def held(self, now: float, events: list[dict[str, Any]], address: str = "", payload: bytes = b"") -> ParkedBatch:
        """A batch held without a call while the breaker is open."""
        return ParkedBatch(self.kind, now, f"held without a call while failing: {self.error}", events, address,
                           payload)


def _at(when: float) -> str:
    return time.strftime("%H:%M:%SZ", time.gmtime(when))


class Destination:
    """Where parked batches go again. `ready` and `retry` run on the worker, after `open`."""

    rules: ParkingRules
    name: str  # the connector, in log lines

    def open(self) -> None:
        """On the worker, before the first batch."""

    def close(self) -> None:
        """When the worker discards the parking step."""

    def letter(self, reason: str, error: str, event: dict[str, Any]) -> Letter:
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether to try the parked batches now (a probe)."""
        raise NotImplementedError

    def retry(self, batch: ParkedBatch) -> tuple[list[Letter], Optional[ParkedBatch]]:
        """Try a parked batch again: (dead letters, what is to stay parked or None)."""
        raise NotImplementedError

    def after_probe(self, kept: list[ParkedBatch]) -> None:
        """After a probe cycle with `kept` still parked (e.g. read credentials again before the next)."""

    def arrived(self, batch: ParkedBatch) -> bool:
        """Before a batch's events become dead letters: whether it reached the destination after all (a write
        that was applied although its answer was lost). Partners say no: their insert ids make a resend harmless,
        and nothing can be asked of them."""
        return False


def letters(destination: Destination, reason: str, error: str, events: Iterable[dict[str, Any]]) -> list[Letter]:
    return [destination.letter(reason, error, event) for event in events]


def expire(destination: Destination, parked: list[ParkedBatch],
           now: float) -> tuple[list[ParkedBatch], list[Letter]]:
    """Split parked batches into those still within their window and the dead letters of the others."""
    keep: list[ParkedBatch] = []
    dead: list[Letter] = []
    for batch in parked:
        window = destination.rules.windows[batch.kind]
        if now - batch.since < window.seconds:
            keep.append(batch)
        elif not destination.arrived(batch):
            _LOG.warning("connector %s: gave up on %d events held since %s: still failing after %s: %s; they are "
                         "%s dead letters", destination.name, len(batch.events), _at(batch.since), window.describe(),
                         batch.error, window.reason)
            dead += letters(destination, window.reason, f"still failing after {window.describe()}: {batch.error}",
                            batch.events)
    return keep, dead


def admit(destination: Destination, batch: ParkedBatch, parked_events: int) -> tuple[ParkedBatch, list[Letter]]:
    """The part of a batch that fits under the cap, and `parking_full` dead letters for the rest."""
    rules = destination.rules
    room = max(0, rules.max_events - parked_events)
    overflow = letters(destination, PARKING_FULL, f"over {rules.cap_name}={rules.max_events}: {batch.error}",
                       batch.events[room:])
    return batch._replace(events=batch.events[:room]), overflow


def probe(destination: Destination, parked: list[ParkedBatch],
          now: float) -> tuple[list[ParkedBatch], list[Letter]]:
    """One probe cycle: check, then retry oldest first until something fails again; what is still held then and
    past its window becomes dead letters. A destination that is back takes its whole backlog, however old: the
    windows are for destinations that keep failing, not for a long drain."""
    parked = sorted(parked, key=lambda b: b.since)
    if not parked:
        return [], []
    if not destination.ready():
        return expire(destination, parked, now)
    dead: list[Letter] = []
    for index, batch in enumerate(parked):
        more, again = destination.retry(batch)
        dead += more
        if again is not None:
            kept, expired = expire(destination, [again, *parked[index + 1:]], now)
            return kept, dead + expired
    return [], dead


class Parking(HoldPolicy[Any, ParkedBatch]):
    """The keyed buffer's policy for parked batches, keyed by whatever names the destination (a connector id)."""

    output_type = Letter
    value_coder = ParkedBatchCoder()

    def __init__(self, name: str, destination: Destination) -> None:
        self.name = name
        self._destination = destination
        self.wake_seconds = destination.rules.probe_seconds
        self._last_reported: tuple[int, str] = (0, "")  # what the last "still failing" line said

    def setup(self) -> None:
        self._destination.open()

    def teardown(self) -> None:
        self._destination.close()

    def weigh(self, value: ParkedBatch) -> tuple[int, int]:
        return len(value.events), 0

    def admit(self, value: ParkedBatch, held: int) -> tuple[Optional[ParkedBatch], list[Letter]]:
        if held == 0:
            self._failing(value, held_batches=1, held_events=len(value.events))
        batch, overflow = admit(self._destination, value, held)
        return (batch if batch.events else None), overflow

    def _failing(self, batch: ParkedBatch, held_batches: int, held_events: int) -> None:
        """One line when a destination starts failing: what, how much is held, when it is probed and given up."""
        rules = self._destination.rules
        window = rules.windows[batch.kind]
        _LOG.warning("connector %s: failing (%s): holding %d batches (%d events); next probe in %g s, gives up "
                     "after %s", self._destination.name, batch.error, held_batches, held_events,
                     rules.probe_seconds, window.describe())

    def release(self, key: Any, values: Iterable[ParkedBatch], why: Why, now: float,
                numbering: Numbering) -> tuple[list[ParkedBatch], list[Letter]]:
        values = list(values)
        if why is Why.COMPLETE:  # bounded: everything waits for the first probe (`admit` said it is failing)
            return values, []
        kept, dead = probe(self._destination, values, now)
        if why is Why.DRAIN:  # the stream ends (drain, or the end of bounded input): the rest are dead letters
            for batch in kept:
                dead += letters(self._destination, DRAINED, f"the job ended while parked: {batch.error}",
                                batch.events)
            if kept:
                _LOG.warning("connector %s: the job ended with %d events held: they are drained dead letters",
                             self._destination.name, sum(len(b.events) for b in kept))
            return [], dead
        self._destination.after_probe(kept)
        self._report(values, kept, now, len(dead))
        return kept, dead

    def _report(self, before: list[ParkedBatch], kept: list[ParkedBatch], now: float, dead: int) -> None:
        name = self._destination.name
        if not kept:
            if before and not dead:
                _LOG.info("connector %s: recovered: %d held batches (%d events) sent", name, len(before),
                          sum(len(b.events) for b in before))
            elif before:
                _LOG.warning("connector %s: holds nothing any more: of %d held batches (%d events), %d events are "
                             "dead letters, the others sent", name, len(before), sum(len(b.events) for b in before),
                             dead)
            return
        if (len(kept), kept[-1].error) == self._last_reported:
            return  # one line per change of state, not one per probe
        self._last_reported = (len(kept), kept[-1].error)
        oldest = min(kept, key=lambda b: b.since)
        gives_up = oldest.since + self._destination.rules.windows[oldest.kind].seconds
        _LOG.warning("connector %s: still failing (%s): %d batches (%d events) held; next probe at %s, gives up at "
                     "%s", name, kept[-1].error, len(kept), sum(len(b.events) for b in kept),
                     _at(now + self._destination.rules.probe_seconds), _at(gives_up))
