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

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

from core.buffer import HoldPolicy, Numbering, Why
from core.deadletters import DRAINED, PARKING_FULL
from core.records import ParkedBatch, ParkedBatchCoder

HOUR = 3600.0
Letter = dict[str, Any]


@dataclass(frozen=True)
class Window:
    seconds: float  # how long a batch of this kind may stay parked
    reason: str  # the dead-letter reason of its events when that time is up


@dataclass(frozen=True)
class ParkingRules:
    windows: Mapping[str, Window]  # per kind of failure
    max_events: int  # events parked per key at most
    probe_seconds: float  # between two checks of the destination
    cap_name: str = "max_events"  # the cap's name in dead letters (the config field)


class Destination:
    """Where parked batches go again. `ready` and `retry` run on the worker, after `open`."""

    rules: ParkingRules

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


def letters(destination: Destination, reason: str, error: str, events: Iterable[dict[str, Any]]) -> list[Letter]:
    return [destination.letter(reason, error, event) for event in events]


def expire(destination: Destination, parked: list[ParkedBatch],
           now: float) -> tuple[list[ParkedBatch], list[Letter]]:
    """Split parked batches into those still within their window and the dead letters of the others."""
    keep: list[ParkedBatch] = []
    dead: list[Letter] = []
    for batch in parked:
        window = destination.rules.windows[batch.kind]
        if now - batch.since >= window.seconds:
            dead += letters(destination, window.reason, f"still failing after {window.seconds / HOUR:g} h: "
                                                        f"{batch.error}", batch.events)
        else:
            keep.append(batch)
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
    """One probe cycle: expire, check, then retry oldest first until something fails again."""
    parked, dead = expire(destination, sorted(parked, key=lambda b: b.since), now)
    if not parked or not destination.ready():
        return parked, dead
    for index, batch in enumerate(parked):
        more, again = destination.retry(batch)
        dead += more
        if again is not None:
            return [again, *parked[index + 1:]], dead
    return [], dead


class Parking(HoldPolicy[Any, ParkedBatch]):
    """The keyed buffer's policy for parked batches, keyed by whatever names the destination (a connector id)."""

    output_type = Letter
    value_coder = ParkedBatchCoder()

    def __init__(self, name: str, destination: Destination) -> None:
        self.name = name
        self._destination = destination
        self.wake_seconds = destination.rules.probe_seconds

    def setup(self) -> None:
        self._destination.open()

    def teardown(self) -> None:
        self._destination.close()

    def weigh(self, value: ParkedBatch) -> tuple[int, int]:
        return len(value.events), 0

    def admit(self, value: ParkedBatch, held: int) -> tuple[Optional[ParkedBatch], list[Letter]]:
        batch, overflow = admit(self._destination, value, held)
        return (batch if batch.events else None), overflow

    def release(self, key: Any, values: Iterable[ParkedBatch], why: Why, now: float,
                numbering: Numbering) -> tuple[list[ParkedBatch], list[Letter]]:
        if why is Why.COMPLETE:  # bounded: everything waits for the first probe
            return list(values), []
        kept, dead = probe(self._destination, list(values), now)
        if why is Why.DRAIN:  # the stream ends (drain, or the end of bounded input): the rest are dead letters
            for batch in kept:
                dead += letters(self._destination, DRAINED, f"the job ended while parked: {batch.error}",
                                batch.events)
            return [], dead
        self._destination.after_probe(kept)
        return kept, dead
