"""Parking for partners: the credential grace window and the retry window (the rules are sinks/parking.py's).

A connector whose partner keeps failing, or refuses its credentials, has its batches parked instead of retried in
a loop. Every `probe_interval_seconds` a probe checks the partner (an empty batch for the Currents format,
otherwise the oldest parked batch itself); on success the parked batches go out oldest first. Batches parked for
longer than `retry_window_hours` (retryable errors) or `credential_grace_hours` (401/403/404) become `expired` /
`credentials_expired` dead letters; over `max_parked_events`, the overflow is `parking_full`. A connector whose
credentials are refused reads its secrets again before the next probe, so a rotated key is picked up.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

import apache_beam as beam

from core.buffer import Hold
from core.deadletters import connector_letter
from core.metrics import counter
from core.records import ParkedBatch
from sinks.http.deliver import CREDENTIALS, Deliverer, PartnerLink
from sinks.http.partners.base import HttpConnectorBase
from sinks.http.retry import Verdict, classify
from sinks.parking import Destination, Letter, Parking, connector_rules
from sinks.parking import admit as admit_batch
from sinks.parking import expire as expire_batches
from sinks.parking import probe


class PartnerDestination(Destination):
    """A partner as a parking destination: probed with its empty request (or its oldest batch), retried with the
    connector's deliverer, opened on the worker (or given one, in tests)."""

    def __init__(self, connector: HttpConnectorBase, clock: Callable[[], float] = time.time,
                 deliverer: Optional[Deliverer] = None, bounded_limit: Optional[float] = None) -> None:
        self._c = connector
        self._clock = clock
        self._fixed = deliverer
        self.rules = connector_rules(connector, bounded_limit)
        self.name = connector.id

    def open(self) -> None:
        self._link = PartnerLink(self._c, self._clock)
        self._link.open()

    def close(self) -> None:
        if self._fixed is None:
            self._link.close()

    def _deliverer(self) -> Optional[Deliverer]:
        return self._fixed if self._fixed is not None else self._link.open()

    def letter(self, reason: str, error: str, event: dict[str, Any]) -> Letter:
        return connector_letter(reason, error, event, self._c.id)

    def ready(self) -> bool:
        """The empty probe batch says whether to send the parked ones: 2xx yes, 401/403/404 no (credentials);
        anything else (a receiver that answers 400 to an empty batch, a 5xx, no answer) says nothing, so the
        oldest parked batch is the probe."""
        deliverer = self._deliverer()  # None: the connector's secrets are not readable yet; only windows run
        if deliverer is None:
            return False
        answer = deliverer.probe()
        return answer is None or answer.status is None or classify(answer.status) is not Verdict.CREDENTIALS

    def retry(self, batch: ParkedBatch) -> tuple[list[Letter], Optional[ParkedBatch]]:
        deliverer = self._deliverer()
        assert deliverer is not None  # ready() said so
        outcome = deliverer.deliver(batch.events, since=batch.since)
        if outcome.parked is None:
            counter(self._c.id, "unparked_batches").inc()
        return outcome.dead, outcome.parked

    def after_probe(self, kept: list[ParkedBatch]) -> None:
        if self._fixed is None and any(batch.kind == CREDENTIALS for batch in kept):
            self._link.reopen()  # the next probe reads the secrets again: a rotated key is picked up


def expire(connector: HttpConnectorBase, parked: list[ParkedBatch],
           now: float) -> tuple[list[ParkedBatch], list[Letter]]:
    """Parked batches still within their window, and the dead letters of the others."""
    return expire_batches(PartnerDestination(connector), parked, now)


def admit(connector: HttpConnectorBase, batch: ParkedBatch, parked_events: int) -> tuple[ParkedBatch, list[Letter]]:
    """The part of a batch that fits under max_parked_events, and `parking_full` dead letters for the rest."""
    return admit_batch(PartnerDestination(connector), batch, parked_events)


def resolve(connector: HttpConnectorBase, deliverer: Optional[Deliverer], parked: list[ParkedBatch],
            now: float) -> tuple[list[ParkedBatch], list[Letter]]:
    """One probe cycle with a given deliverer: expire, probe, then deliver oldest first until something fails
    again."""
    if deliverer is None:
        return expire_batches(PartnerDestination(connector), sorted(parked, key=lambda b: b.since), now)
    return probe(PartnerDestination(connector, deliverer=deliverer), parked, now)


class Park(beam.PTransform):
    """`(connector id, ParkedBatch)` → dead letters of what could never be delivered."""

    def __init__(self, connector: HttpConnectorBase, streaming: bool, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, bounded_limit: Optional[float] = None) -> None:
        super().__init__()
        self._policy = Parking(connector.id, PartnerDestination(connector, clock, bounded_limit=bounded_limit))
        self._streaming = streaming
        self._clock = clock
        self._sleep = sleep

    def expand(self, parked: beam.PCollection) -> beam.PCollection:
        held = parked | Hold([self._policy], self._streaming, clock=self._clock, sleep=self._sleep)
        return held[self._policy.name]
