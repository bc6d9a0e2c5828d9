"""Holding a store's files while it keeps failing (the rules are sinks/parking.py's, the same as a partner's).

A file the store's SDK could not put after its own retries, or whose credentials were refused, is held as a
`ParkedBatch` with its object key and its bytes, so every try writes the same bytes to the same key. Every
`probe_interval_seconds` the oldest held file is tried again (it is the probe); when it goes through, the others
follow oldest first. A file held past `retry_window_hours` (`credential_grace_hours` for refused credentials; at
most `--bounded_hold_minutes` in a bounded run) is first checked against the store — a put applied whose answer
was lost is delivered — and only then becomes `expired` / `credentials_expired` dead letters. A store that refuses
the file for good on a retry (the bucket was deleted) makes it `write_failed` dead letters.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import apache_beam as beam

from core.buffer import Hold
from core.deadletters import WRITE_FAILED, connector_letter
from core.metrics import counter
from core.records import RETRYABLE, ParkedBatch
from sinks.parking import Destination, Letter, Parking, connector_rules, letters
from sinks.storage.connector import StorageConnector
from sinks.storage.formats import file_format
from sinks.storage.stores import ObjectStore, StoreError, open_store
from sinks.storage.writer import StoreLink, held_kind


class StoreDestination(Destination):
    """One storage connector's store as a holding destination."""

    def __init__(self, connector: StorageConnector, bounded_limit: Optional[float] = None,
                 store_factory: Callable[..., ObjectStore] = open_store) -> None:
        self._c = connector
        self._factory = store_factory
        self.rules = connector_rules(connector, bounded_limit)
        self.name = connector.id
        self._content_type = file_format(connector.format, connector.codec).content_type

    def open(self) -> None:
        self._link = StoreLink(self._c, self._factory)
        self._unanswered = False  # a check before giving up found the store unable to answer
        self._unheld = counter(self._c.id, "unparked_batches")

    def letter(self, reason: str, error: str, event: dict[str, Any]) -> Letter:
        return connector_letter(reason, error, event, self._c.id)

    def ready(self) -> bool:
        """A store has no empty probe: the oldest held file is the probe (when the store can be opened at all)."""
        self._unanswered = False  # the next round of checks before giving up asks the store again
        return self._link.store() is not None

    def retry(self, batch: ParkedBatch) -> tuple[list[Letter], Optional[ParkedBatch]]:
        try:
            self._link.put(batch.address, batch.payload, self._content_type)
        except StoreError as exc:
            kind = held_kind(exc)
            if not (kind is RETRYABLE and self._link.arrived(batch.address, batch.payload)):
                if kind is None:
                    return letters(self, WRITE_FAILED, f"{exc} (after being held since a failure: "
                                                       f"{batch.error})", batch.events), None
                return [], batch._replace(kind=kind, error=str(exc))
        self._link.wrote(len(batch.events), len(batch.payload))
        self._unheld.inc()
        return [], None

    def arrived(self, batch: ParkedBatch) -> bool:
        """The last check before a held file is given up. Files given up together are checked one by one until
        the store cannot answer one: the others are not asked, so a store that hangs costs one check's timeouts,
        not one per held file (a bounded run ends near its bound)."""
        if not batch.address or self._unanswered:
            return False
        found = self._link.check(batch.address, batch.payload)
        if found is None:
            self._unanswered = True
        if not found:
            return False
        self._link.wrote(len(batch.events), len(batch.payload))
        return True


class _MemberParking(Parking):
    """The hold of one connector of a lane: it takes the held files of that connector only."""

    def take(self, key: Any) -> Optional[Any]:
        return key if key == self.name else None


class HoldFiles(beam.PTransform):
    """`(connector id, ParkedBatch)` of a lane's writer → dead letters of the files that could never be written."""

    def __init__(self, connectors: Sequence[StorageConnector], streaming: bool,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 bounded_limit: Optional[float] = None) -> None:
        super().__init__()
        self._policies = [_MemberParking(c.id, StoreDestination(c, bounded_limit)) for c in connectors]
        self._streaming = streaming
        self._clock = clock
        self._sleep = sleep

    def expand(self, held: beam.PCollection) -> beam.PCollection:
        out = held | Hold(self._policies, self._streaming, clock=self._clock, sleep=self._sleep)
        return [out[p.name] for p in self._policies] | "Letters" >> beam.Flatten()
