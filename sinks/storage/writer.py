"""Batches of one event type → one file each, written straight to its final key with the connector's own client.

Per batch: project every event onto the type's schema (misfits become `schema_mismatch` dead letters), encode the
rest as one file, put it under its deterministic key, retrying transient store errors with backoff. A write that
still fails, or that the store refuses (credentials, missing bucket), turns the batch into `write_failed` dead
letters: the bundle never fails, so a runner never retries it forever.

A lane's connectors (core/lanes.py) share the projection and the encoding: the file is then put into the store
of each connector the batch is for, under that connector's key, with that connector's metrics and dead letters.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from core.deadletters import SCHEMA_MISMATCH, UNROUTABLE, WRITE_FAILED, connector_letter
from core.metrics import counter, distribution
from core.records import Batch, BatchKey, batch_key, events_of
from core.secrets import SecretError, SecretResolver
from sinks.retry import Backoff, call_with_retries
from sinks.storage.avro import EncodeEvents
from sinks.storage.connector import StorageConnector
from sinks.storage.formats import file_format
from sinks.storage.layout import object_key, offset
from sinks.storage.projection import Projector, projector_for
from sinks.storage.schemas import generic_schema, load_schema, schema_id
from sinks.storage.stores import ObjectStore, StoreError, open_store

DEAD = "dead"
_LOG = logging.getLogger(__name__)
DEFAULT_BACKOFF = Backoff()


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


class _Member:
    """One connector of the lane on a worker: its store (opened lazily) and its metrics."""

    def __init__(self, connector: StorageConnector, store_factory: Callable[..., ObjectStore]) -> None:
        self.connector = connector
        self._store_factory = store_factory
        self._store: Optional[ObjectStore] = None
        self._store_error: Optional[str] = None
        cid = connector.id
        self.delivered = counter(cid, "delivered")
        self.files = counter(cid, "files_written")
        self.bytes = counter(cid, "bytes_written")
        self.retries = counter(cid, "write_retries")
        self.dropped_fields = counter(cid, "fields_dropped")
        self.file_events = distribution(cid, "file_events")

    def store(self) -> Optional[ObjectStore]:
        """The connector's store; when it cannot be opened (a secret not readable yet), the batch at hand becomes
        dead letters saying why, and the next batch tries again."""
        if self._store is None:
            try:
                # One retry policy, ours (`backoff`): the client libraries' own retries are turned off.
                self._store = self._store_factory(self.connector, SecretResolver(), max_attempts=1)
                self._store_error = None
            except (SecretError, StoreError, ValueError) as exc:
                self._store_error = f"connector {self.connector.id}: cannot open store: {exc}"
                _LOG.error(self._store_error)
        return self._store

    def put(self, key: str, data: bytes, content_type: str, backoff: Backoff) -> None:
        store = self.store()
        if store is None:
            raise StoreError(self._store_error or "store unavailable", retryable=False)
        call_with_retries(lambda: store.put(key, data, content_type),
                          retryable=lambda exc: isinstance(exc, StoreError) and exc.retryable,
                          backoff=backoff, on_retry=lambda exc, wait: self.retries.inc())


class WriteFiles(beam.DoFn):
    """A lane's batches → files, one per batch, in the store of every connector the batch is for."""

    def __init__(self, connectors: Sequence[StorageConnector], backoff: Backoff = DEFAULT_BACKOFF,
                 store_factory: Optional[Callable[..., ObjectStore]] = None) -> None:
        self._connectors = list(connectors)
        self._backoff = backoff
        self._store_factory = store_factory or open_store

    def setup(self) -> None:
        lead = self._connectors[0]  # a lane's connectors have the same format and codec
        self._plans: dict[str, _Plan] = {}
        self._format = file_format(lead.format, lead.codec)
        self._members = {c.id: _Member(c, self._store_factory) for c in self._connectors}
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
        try:
            member.put(key, data, self._format.content_type, self._backoff)
        except (StoreError, ValueError, TypeError, OverflowError) as exc:
            yield from self._failed((connector.id,), event_type, events, f"{type(exc).__name__}: {exc}", key)
            return
        member.delivered.inc(len(events))
        member.files.inc()
        member.bytes.inc(len(data))
        member.file_events.update(len(events))
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
