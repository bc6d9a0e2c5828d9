"""The named records that travel between the job's steps, with their coders, defined once.

    raw record ─parse─► Parsed ─route─► Routed(BatchKey, chunk) ─batch─► Batch ─► a file, or requests to a partner
                                                                     a partner's failures ─► ParkedBatch ─park─►

Every record here is a NamedTuple (as cheap as a tuple on the hot path) with a registered coder, so that where
one crosses a shuffle or state Beam encodes it with fast coders, never by pickling it (Beam treats a NamedTuple
type hint as Any and would otherwise pickle each instance). A PTransform that outputs one declares it with
`with_output_types`. Chunks, the newline-joined events inside a `Routed` and a `Batch`, are `core.chunks`'.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import apache_beam as beam
from apache_beam.coders import BytesCoder, FastPrimitivesCoder, FloatCoder, StrUtf8Coder, TupleCoder, VarIntCoder
from apache_beam.transforms.window import GlobalWindow
from apache_beam.typehints import Tuple
from apache_beam.utils.timestamp import Duration

from core import chunks
from core.chunks import Item

# The final flush fires a day before the end of the global window, not at it: outputs stamped with the window's
# very end reach the next grouping step after its window has closed and are dropped there (docs: the Beam traps).
DRAIN_AT = GlobalWindow().max_timestamp() - Duration(seconds=24 * 3600)


class Parsed(NamedTuple):
    """A valid event, as the parser hands it to the router."""

    event: dict[str, Any]
    hour: int  # hours since the epoch: the event's date= hour
    json: Optional[bytes]  # the record's own bytes when they stand for the event as parsed (no raw newline, not
    # amended), so the router need not encode it again; None otherwise
    only: Optional[str]  # route to this connector only (a replayed dead letter), or None for every selecting one


class Replay(NamedTuple):
    """A replayed dead letter's record, for the one connector that dropped it. Only the dead-letter source makes
    these: no attribute of an input message can aim an event at a subset of connectors."""

    data: bytes
    connector: str


class BatchKey(NamedTuple):
    """What events are batched together: a lane's events of one type, hour and shard, for the same connectors."""

    lane: str  # the lane's id (core/lanes.py); on a routed chunk, the first lane of those that share it
    event_type: str
    hour: str  # YYYY-MM-DD-HH, the date= folder
    shard: int  # the <partition> of object keys: 0 .. shards-1, and past them for replays (transforms/route.py)
    members: tuple[str, ...]  # the ids of the connectors the events are for


# A key from before lanes, (connector, event type, hour, shard), may still be in a streaming job's state: the key
# coder decodes it as the plain tuple it was, and the writer reads it as for its one connector.
LegacyKey = tuple[str, str, str, int]
AnyKey = Union[BatchKey, LegacyKey]


def batch_key(key: AnyKey) -> BatchKey:
    """A key as a BatchKey; a key from before lanes is for its one connector."""
    if isinstance(key, BatchKey):
        return key
    return BatchKey(*key) if len(key) == 5 else BatchKey(*key, (key[0],))


class BatchKeyCoder(beam.coders.Coder):
    """Batch keys as the plain tuple they are, with Beam's deterministic fast coder: a key of a GroupByKey and of
    state must encode deterministically. The bytes are those of the plain tuples keyed before this coder, so
    state written by an older job decodes (a 4-part key as the plain tuple it was)."""

    _inner = FastPrimitivesCoder().as_deterministic_coder("BatchKeyCoder")

    def encode(self, value: AnyKey) -> bytes:
        return self._inner.encode(tuple(value))

    def decode(self, encoded: bytes) -> AnyKey:
        value = self._inner.decode(encoded)
        return BatchKey(*value) if len(value) == 5 else value

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self) -> Any:
        return BatchKey


class Routed(NamedTuple):
    """A chunk of routed events under its key; a key/value pair to Beam (`ROUTED` is its type hint), so a grouping
    step and state take its key. After a shuffle it may arrive as a plain pair: read it by unpacking."""

    key: BatchKey
    chunk: bytes  # core.chunks: the events' JSON joined by newlines


ROUTED = Tuple[BatchKey, bytes]


class _RecordCoder(beam.coders.Coder):
    """A named record as the tuple of its fields' coders, defined once for every record below: `record` is the
    NamedTuple, `components` a coder per field. Not deterministic: records are values, never keys (the batch key
    has a coder of its own)."""

    record: Any
    components: tuple[beam.coders.Coder, ...]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._inner = TupleCoder(list(cls.components))

    def encode(self, value: Any) -> bytes:
        return self._inner.encode(value)

    def decode(self, encoded: bytes) -> Any:
        return self.record(*self._inner.decode(encoded))

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self) -> Any:
        return self.record


class Batch(NamedTuple):
    key: AnyKey
    seq: int  # the batch's number for its key: 0, 1, 2, ...
    items: list[Item]
    token: int  # with seq, names the batch uniquely (the run token; in streaming, when the key's state opened)


class BatchCoder(_RecordCoder):
    """Batches as a tuple of fast coders: Beam samples element sizes by encoding, and a NamedTuple would be
    pickled whole."""

    record = Batch
    components = (BatchKeyCoder(), VarIntCoder(), FastPrimitivesCoder(), VarIntCoder())


RETRYABLE = "retryable"  # held after retries ran out: gives up after retry_window_hours
CREDENTIALS = "credentials"  # held while credentials are refused: gives up after credential_grace_hours


class ParkedBatch(NamedTuple):
    """Events held back because their destination keeps failing (sinks/parking.py)."""

    kind: str  # why: which window applies (e.g. retryable, credentials)
    since: float  # when they first failed: the window runs from then
    error: str  # the last failure, for the dead letters if they expire
    events: list[dict[str, Any]]
    address: str = ""  # a store's file: the object key it goes to (the same key on every try)
    payload: bytes = b""  # a store's file: its bytes as first encoded, so a retry writes (and checks) the same

class ParkedBatchCoder(_RecordCoder):
    record = ParkedBatch
    components = (StrUtf8Coder(), FloatCoder(), StrUtf8Coder(), FastPrimitivesCoder(), StrUtf8Coder(),
                  BytesCoder())


class ParsedCoder(_RecordCoder):
    record = Parsed
    components = (FastPrimitivesCoder(), VarIntCoder(), FastPrimitivesCoder(), FastPrimitivesCoder())


for _type, _coder in ((BatchKey, BatchKeyCoder), (Batch, BatchCoder), (ParkedBatch, ParkedBatchCoder),
                      (Parsed, ParsedCoder)):
    beam.coders.registry.register_coder(_type, _coder)

PARKED = Tuple[str, ParkedBatch]  # (the key it is parked under, e.g. a connector id; the batch)


def events_of(batch: Batch) -> list[dict[str, Any]]:
    """The batch's events, decoded in one parse (core.chunks.decode)."""
    return chunks.decode(batch.items)


__all__ = ["DRAIN_AT", "Item", "Parsed", "BatchKey", "BatchKeyCoder", "Routed", "ROUTED", "Batch", "BatchCoder",
           "ParkedBatch", "ParkedBatchCoder", "ParsedCoder", "PARKED", "LegacyKey", "AnyKey", "batch_key",
           "events_of"]
