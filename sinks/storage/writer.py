"""Batches of one event type → one file each, written straight to its final key with the connector's own client.

Per batch: project every event onto the type's schema (misfits become `schema_mismatch` dead letters), encode the
rest as one file, put it under its deterministic key, retrying transient store errors with backoff. A write that
still fails, or that the store refuses (credentials, missing bucket), turns the batch into `write_failed` dead
letters: the bundle never fails, so a runner never retries it forever.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NamedTuple, Optional

import apache_beam as beam
import orjson
from apache_beam.pvalue import TaggedOutput

from pipeline.config import StorageConnector
from pipeline.metrics import counter, distribution
from pipeline.secrets import SecretError, SecretResolver
from sinks.deadletter import SCHEMA_MISMATCH, WRITE_FAILED, connector_letter
from sinks.retry import Backoff, call_with_retries
from sinks.storage.formats import Encoder, file_format
from sinks.storage.layout import object_key, offset
from sinks.storage.projection import ProjectionError, Projector, projector_for
from sinks.storage.schemas import generic_schema, load_schema, schema_id
from sinks.storage.stores import ObjectStore, StoreError, open_store
from transforms.batch import Batch

DEAD = "dead"
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
    encode: Encoder


class WriteFiles(beam.DoFn):
    def __init__(self, connector: StorageConnector, backoff: Backoff = Backoff(),
                 store_factory: Optional[Callable[..., ObjectStore]] = None) -> None:
        self._connector = connector
        self._backoff = backoff
        self._store_factory = store_factory or open_store

    def setup(self) -> None:
        c = self._connector
        self._plans: dict[str, _Plan] = {}
        self._format = file_format(c.format, c.codec)
        self._store: Optional[ObjectStore] = None
        self._store_error: Optional[str] = None
        self._open_store()
        self._delivered = counter(c.id, "delivered")
        self._files = counter(c.id, "files_written")
        self._bytes = counter(c.id, "bytes_written")
        self._retries = counter(c.id, "write_retries")
        self._dropped_fields = counter(c.id, "fields_dropped")
        self._file_events = distribution(c.id, "file_events")

    def _open_store(self) -> Optional[ObjectStore]:
        """The connector's store; when it cannot be opened (a secret not readable yet), the batch at hand becomes
        dead letters saying why, and the next batch tries again."""
        if self._store is None:
            try:
                # One retry policy, ours (`backoff`): the client libraries' own retries are turned off.
                self._store = self._store_factory(self._connector, SecretResolver(), max_attempts=1)
                self._store_error = None
            except (SecretError, StoreError, ValueError) as exc:
                self._store_error = f"connector {self._connector.id}: cannot open store: {exc}"
                _LOG.error(self._store_error)
        return self._store

    def _plan(self, event_type: str) -> _Plan:
        plan = self._plans.get(event_type)
        if plan is None:
            schema = load_schema(event_type)
            generic = schema is None
            schema = generic_schema() if generic else schema
            plan = self._plans[event_type] = _Plan(schema_id(schema), projector_for(schema, generic),
                                                   self._format.encoder(schema))
        return plan

    def process(self, batch: Batch) -> Iterator[Any]:
        cid, event_type, hour, shard = batch.key
        plan = self._plan(event_type)
        records: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        extra = 0
        for data, _ in batch.items:
            event = orjson.loads(data)
            try:
                records.append(plan.projector.project(event))
            except ProjectionError as exc:
                yield TaggedOutput(DEAD, connector_letter(SCHEMA_MISMATCH, str(exc), event, cid))
                continue
            events.append(event)
            extra += plan.projector.extra_fields(event)
        if extra:
            self._dropped_fields.inc(extra)
        if records:  # never an empty file
            yield from self._write(batch, plan, records, events)

    def _write(self, batch: Batch, plan: _Plan, records: list[dict[str, Any]],
               events: list[dict[str, Any]]) -> Iterator[Any]:
        cid, event_type, hour, shard = batch.key
        key = object_key(self._connector, event_type, hour, plan.schema_id, shard, offset(batch.token, batch.seq),
                         self._format.extension)
        try:
            data = plan.encode(records)
            self._put(key, data)
        except (StoreError, ValueError, TypeError, OverflowError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            _LOG.warning("connector %s: %d events of %s not written to %s: %s", cid, len(events), event_type, key, error)
            for event in events:
                yield TaggedOutput(DEAD, connector_letter(WRITE_FAILED, error, event, cid))
        else:
            self._delivered.inc(len(records))
            self._files.inc()
            self._bytes.inc(len(data))
            self._file_events.update(len(records))
            yield WrittenFile(cid, key, event_type, len(records), len(data))

    def _put(self, key: str, data: bytes) -> None:
        store = self._open_store()
        if store is None:
            raise StoreError(self._store_error or "store unavailable", retryable=False)
        call_with_retries(lambda: store.put(key, data, self._format.content_type),
                          retryable=lambda exc: isinstance(exc, StoreError) and exc.retryable,
                          backoff=self._backoff, on_retry=lambda exc, wait: self._retries.inc())
