"""Batches of one event type → one file each, written straight to its final key with the connector's own client.

Per batch: project every event onto the type's schema (misfits become `schema_mismatch` dead letters), encode the
rest as one file, put it under its deterministic key. Each store's own SDK retries a failed put (botocore's
retry mode, google-api-core's `Retry` with a deadline, azure-core's retry policy; `retry_attempts` and the
connector's timeouts). When the SDK gives up, or the store refuses the credentials, the file is held
(sinks/storage/holding.py: probed, retried, given up only after `retry_window_hours` / `credential_grace_hours`),
and while a store is failing its next files go straight to the hold, without a call. Before a file is held or
dead-lettered, the store is asked whether it has the object already with the same content (a put applied whose
answer was lost): if so, it is delivered. A store that refuses the write for good (a missing bucket) turns the
batch into `write_failed` dead letters at once. The bundle never fails, so a runner never retries it forever.

A lane's connectors (core/lanes.py) share the projection and the encoding: the file is then put into the store
of each connector the batch is for, under that connector's key, with that connector's metrics and dead letters.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from core.deadletters import SCHEMA_MISMATCH, UNROUTABLE, WRITE_FAILED, connector_letter
from core.metrics import counter, distribution
from core.records import CREDENTIALS, RETRYABLE, Batch, BatchKey, ParkedBatch, batch_key, events_of
from core.secrets import SecretError, SecretResolver
from sinks.parking import Breaker, connector_rules
from sinks.storage.avro import EncodeEvents
from sinks.storage.connector import StorageConnector
from sinks.storage.formats import file_format
from sinks.storage.layout import object_key, offset
from sinks.storage.projection import Projector, projector_for
from sinks.storage.schemas import generic_schema, load_schema, schema_id
from sinks.storage.stores import ObjectStore, StoreError, open_store

DEAD = "dead"
PARKED = "parked"
_LOG = logging.getLogger(__name__)


class WrittenFile(NamedTuple):
    connector: str
    key: str
    event_type: str
    events: int
    bytes: int


@dataclass
class _Plan:
    schema_id: int
    projector: Projector
    write: EncodeEvents


def held_kind(exc: StoreError) -> Optional[str]:
    """How a failed put is held: CREDENTIALS (refused), RETRYABLE (the SDK's retries ran out), or None (refused
    for good: dead letters now)."""
    return CREDENTIALS if exc.credentials else RETRYABLE if exc.retryable else None


class StoreLink:
    """One connector's store on a worker (opened lazily, with the connector's SDK retries and timeouts), and its
    metrics: what the writer and the hold share."""

    def __init__(self, connector: StorageConnector, store_factory: Callable[..., ObjectStore]) -> None:
        self.connector = connector
        self._store_factory = store_factory
        self._store: Optional[ObjectStore] = None
        self.error = ""
        cid = connector.id
        self.delivered = counter(cid, "delivered")
        self.files = counter(cid, "files_written")
        self.bytes = counter(cid, "bytes_written")
        self.reconciled = counter(cid, "files_reconciled")
        self.dropped_fields = counter(cid, "fields_dropped")
        self.file_events = distribution(cid, "file_events")

    def store(self) -> Optional[ObjectStore]:
        """The connector's store; None when it cannot be opened (a secret not readable yet): the file at hand is
        held as a credentials failure, and the next try opens it again."""
        if self._store is None:
            c = self.connector
            try:
                self._store = self._store_factory(c, SecretResolver(), max_attempts=c.retry_attempts,
                                                  connect_timeout=c.connect_timeout_seconds,
                                                  read_timeout=c.read_timeout_seconds)
                self.error = ""
            except (SecretError, StoreError, ValueError) as exc:
                self.error = f"cannot open the store: {exc}"
                _LOG.error("connector %s: %s", c.id, self.error)
        return self._store

    def put(self, key: str, data: bytes, content_type: str) -> None:
        store = self.store()
        if store is None:
            raise StoreError(self.error, retryable=False, credentials=True, key=key)
        store.put(key, data, content_type)

    def arrived(self, key: str, data: bytes) -> bool:
        """The object is in the store with exactly these bytes (a put applied whose answer was lost)."""
        return bool(self.check(key, data))

    def check(self, key: str, data: bytes) -> Optional[bool]:
        """Whether the object is in the store with exactly these bytes (counted reconciled when it is); None when
        the store cannot say (it cannot be opened, does not answer, or refuses the credentials)."""
        store = self.store()
        if store is None:
            return None
        try:
            if not store.matches(key, data):
                return False
        except StoreError:
            return None
        _LOG.warning("connector %s: %s is in the store with the same content although its write failed: "
                     "delivered", self.connector.id, key)
        self.reconciled.inc()
        return True

    def wrote(self, events: int, nbytes: int) -> None:
        self.delivered.inc(events)
        self.files.inc()
        self.bytes.inc(nbytes)
        self.file_events.update(events)


class _Member(StoreLink):
    """A connector of the lane on the writer's worker: its link, and the breaker that sends its files straight
    to the hold while its store is failing."""

    def __init__(self, connector: StorageConnector, store_factory: Callable[..., ObjectStore],
                 probe_seconds: float) -> None:
        super().__init__(connector, store_factory)
        self.breaker = Breaker(probe_seconds)
        self.held = counter(connector.id, "parked_batches")


class WriteFiles(beam.DoFn):
    """A lane's batches → files, one per batch, in the store of every connector the batch is for; files a store
    could not take on the `parked` output as `(connector id, ParkedBatch)`."""

    def __init__(self, connectors: Sequence[StorageConnector],
                 store_factory: Optional[Callable[..., ObjectStore]] = None, clock: Callable[[], float] = time.time,
                 bounded_limit: Optional[float] = None) -> None:
        self._connectors = list(connectors)
        self._store_factory = store_factory or open_store
        self._clock = clock
        self._probe = {c.id: connector_rules(c, bounded_limit).probe_seconds for c in connectors}

    def setup(self) -> None:
        lead = self._connectors[0]  # a lane's connectors have the same format and codec
        self._plans: dict[str, _Plan] = {}
        self._format = file_format(lead.format, lead.codec)
        self._members = {c.id: _Member(c, self._store_factory, self._probe[c.id]) for c in self._connectors}
        for member in self._members.values():
            member.store()

    def _plan(self, event_type: str) -> _Plan:
        plan = self._plans.get(event_type)
        if plan is None:
            own = load_schema(event_type)
            generic = own is None
            schema = generic_schema() if own is None else own
            projector = projector_for(schema, generic)
            plan = self._plans[event_type] = _Plan(schema_id(schema), projector,
                                                   self._format.events_writer(schema, projector))
        return plan

    def process(self, batch: Batch) -> Iterator[Any]:
        # A key from before lanes, still buffered in a streaming job's state across an update, is for its one
        # connector (core.records.batch_key).
        key = batch_key(batch.key)
        event_type, members = key.event_type, key.members
        plan = self._plan(event_type)
        events = events_of(batch)
        gone = [cid for cid in members if cid not in self._members]
        if gone:  # streaming state from before an update that took these connectors out of the lane
            yield from self._unroutable(gone, events)
            members = tuple(cid for cid in members if cid in self._members)
            if not members:
                return
        try:
            data, written, misfits = plan.write(events)
        except Exception:  # noqa: BLE001 - an event the encoder cannot take: find it, encode the rest
            data, written, misfits = self._write_apart(plan, events)
        for event, why in misfits:
            for cid in members:
                yield TaggedOutput(DEAD, connector_letter(SCHEMA_MISMATCH, why, event, cid))
        extra = sum(map(plan.projector.extra_fields, written))
        if extra:
            for cid in members:
                self._members[cid].dropped_fields.inc(extra)
        if not written:  # never an empty file
            return
        for cid in members:
            yield from self._write(self._members[cid], key, batch, plan, data, written)

    @staticmethod
    def _write_apart(plan: _Plan, events: list[dict[str, Any]]) -> tuple[bytes, list[dict[str, Any]],
                                                                           list[tuple[dict[str, Any], str]]]:
        """The batch's file without the events the encoder raised on, which become `schema_mismatch` letters: a
        record can never fail a batch, let alone a bundle."""
        good: list[dict[str, Any]] = []
        misfits: list[tuple[dict[str, Any], str]] = []
        for event in events:
            try:
                _, written, refused = plan.write([event])
            except Exception as exc:  # noqa: BLE001
                misfits.append((event, f"cannot encode: {type(exc).__name__}: {exc}"))
                continue
            good += written
            misfits += refused
        data, written, refused = plan.write(good) if good else (b"", [], [])
        return data, written, misfits + refused

    def _write(self, member: _Member, address: BatchKey, batch: Batch, plan: _Plan, data: bytes,
               events: list[dict[str, Any]]) -> Iterator[Any]:
        event_type = address.event_type
        connector = member.connector
        key = object_key(connector, event_type, address.hour, plan.schema_id, address.shard,
                         offset(batch.token, batch.seq), self._format.extension)
        breaker = member.breaker
        if breaker.until and breaker.is_open(self._clock()):  # (the clock is read only once a store has failed)
            member.held.inc()
            yield TaggedOutput(PARKED, (connector.id, breaker.held(self._clock(), events, key, data)))
            return
        try:
            member.put(key, data, self._format.content_type)
        except StoreError as exc:
            kind = held_kind(exc)
            if kind is RETRYABLE and member.arrived(key, data):
                pass  # the write was applied; its answer was lost
            elif kind is None:
                yield from self._failed((connector.id,), event_type, events, str(exc), key)
                return
            else:
                now = self._clock()
                breaker.trip(now, kind, str(exc))
                member.held.inc()
                yield TaggedOutput(PARKED, (connector.id, ParkedBatch(kind, now, str(exc), events, key, data)))
                return
        except (ValueError, TypeError, OverflowError) as exc:
            yield from self._failed((connector.id,), event_type, events, f"{type(exc).__name__}: {exc}", key)
            return
        member.wrote(len(events), len(data))
        yield WrittenFile(connector.id, key, event_type, len(events), len(data))

    def _unroutable(self, gone: Sequence[str], events: list[dict[str, Any]]) -> Iterator[Any]:
        for cid in gone:
            _LOG.warning("connector %s: %d buffered events have no writer: the connector is no longer in lane %s",
                         cid, len(events), self._connectors[0].id)
            for event in events:
                yield TaggedOutput(DEAD, connector_letter(
                    UNROUTABLE, f"connector {cid!r} is no longer in this lane (its config changed or it was removed "
                                "while events were buffered for it); replay to deliver them", event, cid))

    def _failed(self, members: Sequence[str], event_type: str, events: list[dict[str, Any]], error: str,
                key: str) -> Iterator[Any]:
        for cid in members:
            _LOG.warning("connector %s: %d events of %s not written to %s: %s", cid, len(events), event_type, key,
                         error)
            for event in events:
                yield TaggedOutput(DEAD, connector_letter(WRITE_FAILED, error, event, cid))
