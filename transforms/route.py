"""Route each event to the lanes of the connectors that select it, applying each lane's field transforms.

One pass over the stream for every connector: the selection is resolved once per event type and cached, the event
is copied only for lanes whose transforms touch one of its fields, and events are gathered per `BatchKey` (lane,
event type, hour, shard, members) within the bundle, so the batching step receives chunks (core/chunks.py)
instead of single events. `members` are the ids of the connectors that select the event's type: connectors
sharing a lane can still select different types, and a replayed dead letter goes to its own connector only.

Lanes with the same routing (core/lanes.py) see an event the same way, so it is written once for all of them:
into a chunk keyed under the first of those lanes, naming every member of theirs it is for; each lane takes its
own from there. Connectors that see an event unchanged share one encoding of it. Out: one PCollection of
`Routed(key, chunk)`, and the dead letters of replays that have nowhere to go.
"""
from __future__ import annotations

import hashlib
import time
import zlib
from typing import Any, Callable, Hashable, Iterator, Optional, Sequence, Union

import apache_beam as beam
import orjson
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from core import chunks
from core.config import ConnectorBase
from core.deadletters import INVALID, UNROUTABLE, connector_letter, dead_letter
from core.lanes import Lane, plan_lanes
from core.metrics import counter
from core.records import ROUTED, BatchKey, Parsed, Routed
from sinks.storage.schemas import known_event_types

REDACTED = "[REDACTED]"
SELECTED = "selected"  # valid events routed to at least one connector (or, replayed, to their dead letter)
UNSELECTED = "unselected"  # valid events of a type no connector selects
DEAD = "_dead"  # no connector id can start with "_": this tag never collides with a connector's lane
CHUNK = 500  # events per chunk: bounds the router's memory, still amortises shuffle and state overhead

Transform = Callable[[dict[str, Any]], dict[str, Any]]


def _hash(value: Any) -> Optional[str]:
    return hashlib.sha256(value.encode("utf-8")).hexdigest() if isinstance(value, str) else None


def _remove(value: Any) -> Optional[str]:
    return REDACTED if isinstance(value, str) else None


_OPS: dict[str, Callable[[Any], Optional[str]]] = {"hash": _hash, "remove": _remove}


def field_transform(rules: dict[str, str]) -> Optional[Transform]:
    """The connector's field transforms as one function; None when it has none.

    `remove` replaces a string with "[REDACTED]" and `hash` with its SHA-256 hex digest, as the reference does;
    a non-string value under either rule becomes null, so nothing of it is exported. Nulls stay null.
    """
    if not rules:
        return None
    ops = [(name, _OPS[op]) for name, op in rules.items()]

    def apply(event: dict[str, Any]) -> dict[str, Any]:
        out = None
        for name, op in ops:
            value = event.get(name)
            if value is not None:
                if out is None:
                    out = dict(event)
                out[name] = op(value)
        return event if out is None else out

    return apply


def hour_string(hour: int) -> str:
    return time.strftime("%Y-%m-%d-%H", time.gmtime(hour * 3600))


class RouteEvents(beam.DoFn):
    """`Parsed` events (or lists of them) → `Routed(key, chunk)`; unroutable replays' dead letters on `DEAD`."""

    def __init__(self, connectors: Sequence[ConnectorBase]) -> None:
        self._connectors = list(connectors)

    def setup(self) -> None:
        # One target per routing: the lanes that see events alike, keyed under the first of them (core/lanes.py).
        routings: dict[Hashable, list[Lane]] = {}
        for lane in plan_lanes(self._connectors):
            routings.setdefault(lane.routing, []).append(lane)
        # (the first lane's id, the routing's transform and shards, the connectors of its lanes)
        self._routings = [(lanes[0].id, field_transform(dict(lanes[0].lead.field_transforms)),
                           lanes[0].lead.shard_count(), tuple(c for lane in lanes for c in lane.members))
                          for lanes in routings.values()]
        self._positions = {lane_id: {c.id: i for i, c in enumerate(members)}
                           for lane_id, _, _, members in self._routings}
        self._targets: dict[str, list[tuple[str, Optional[Transform], int, tuple[str, ...]]]] = {}
        self._hours: dict[int, str] = {}

    def start_bundle(self) -> None:
        self._chunks: dict[BatchKey, list[bytes]] = {}
        self._first_ts: dict[BatchKey, Timestamp] = {}
        self._routed: dict[str, int] = {}
        self._failed: list[dict[str, Any]] = []  # dead letters of events that could not be routed to a connector
        self._selected = 0
        self._unselected: dict[str, int] = {}

    def _select(self, event_type: str) -> list[tuple[str, Optional[Transform], int, tuple[str, ...]]]:
        """(routing's lane id, its transform, its shards, ids of its connectors that select the type) for every
        routing with at least one such connector; resolved once per event type."""
        targets = self._targets.get(event_type)
        if targets is None:
            targets = self._targets[event_type] = []
            for lane_id, transform, shards, connectors in self._routings:
                members = tuple(c.id for c in connectors if c.selects(event_type))
                if members:
                    targets.append((lane_id, transform, shards, members))
        return targets

    def process(self, parsed: Union[Parsed, list[Parsed]],
                timestamp=beam.DoFn.TimestampParam) -> Iterator[Any]:  # noqa: ANN001
        """One parsed event, or a list of them (a chunk from a batched source)."""
        for item in parsed if isinstance(parsed, list) else (parsed,):
            full = self._route(item, timestamp)
            if self._failed:
                for letter in self._failed:
                    yield TaggedOutput(DEAD, letter)
                self._failed = []
            if full is None:
                event, only = item[0], item[3]
                yield TaggedOutput(DEAD, dead_letter(
                    UNROUTABLE, f"replayed for connector {only!r}, which does not exist or does not select "
                                f"{event['event_type']}", event, connector=only, event_type=event["event_type"],
                    event_id=event["id"]))
                continue
            for key, lines in full:
                yield Routed(key, chunks.join(lines))

    def _route(self, parsed: Parsed, timestamp: Timestamp) -> Optional[list[tuple[BatchKey, list[bytes]]]]:
        """Add the event to its connectors' chunks; return the chunks that became full, or None when an event
        aimed at one connector (a replayed dead letter) has nowhere to go."""
        event, hour, encoded, only = parsed  # encoded: the event's JSON as read, when it can be used as is
        event_type = event["event_type"]
        hour_str = self._hours.get(hour)
        if hour_str is None:
            hour_str = self._hours[hour] = hour_string(hour)
        full: list[tuple[BatchKey, list[bytes]]] = []
        routed_to = 0
        targets = self._select(event_type)
        if not targets and only is None:  # no connector selects the type: counted, not lost
            self._unselected[event_type] = self._unselected.get(event_type, 0) + 1
        else:
            self._selected += 1  # a replay with nowhere to go is selected too: it becomes an unroutable letter
        for lane_id, transform, shards, members in targets:
            shard = zlib.crc32(event["id"].encode("utf-8")) % shards if shards > 1 else 0
            if only is not None:
                if only not in members:
                    continue
                members = (only,)
                # Replays are batched apart from the live events and numbered from 0 like them: their own
                # shards, past the routing's, give their files names of their own (the key's <partition>).
                shard += shards * (1 + self._positions[lane_id][only])
            # A replayed dead letter (only is set) already went through this connector's transforms.
            try:
                routed = transform(event) if transform and only is None else event
                if routed is event:  # one encoding, shared by every connector that sees the event unchanged
                    data = encoded = encoded or orjson.dumps(event)
                else:
                    data = orjson.dumps(routed)
            except Exception as exc:  # noqa: BLE001 - one event's trouble is its own dead letter, per connector
                self._failed += [connector_letter(INVALID, f"cannot route for this connector: {type(exc).__name__}: "
                                                           f"{exc}", event, cid) for cid in members]
                if only is not None:
                    routed_to += 1  # it reached its connector, as a dead letter
                continue
            key = BatchKey(lane_id, event_type, hour_str, shard, members)
            chunk = self._chunks.get(key)
            if chunk is None:
                chunk = self._chunks[key] = []
                self._first_ts[key] = timestamp
            chunk.append(data)
            routed_to += 1
            if len(chunk) >= CHUNK:
                del self._chunks[key]
                del self._first_ts[key]
                self._count(members, len(chunk))
                full.append((key, chunk))
        return None if only is not None and not routed_to else full

    def _count(self, members: tuple[str, ...], n: int) -> None:
        for member in members:
            self._routed[member] = self._routed.get(member, 0) + n

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self._selected:
            counter(None, SELECTED).inc(self._selected)
        if self._unselected:
            counter(None, UNSELECTED).inc(sum(self._unselected.values()))
            known = set(known_event_types())
            for event_type, n in self._unselected.items():  # per type for catalogue types; input names any type
                counter(None, f"{UNSELECTED}.{event_type if event_type in known else 'other'}").inc(n)
        for key, lines in self._chunks.items():
            self._count(key.members, len(lines))
        for cid, n in self._routed.items():
            counter(cid, "routed").inc(n)
        for key, lines in self._chunks.items():
            yield WindowedValue(Routed(key, chunks.join(lines)), self._first_ts[key], [GlobalWindow()])
        self._chunks = {}


class Route(beam.PTransform):
    """`Parsed` events → (`Routed` chunks of every lane, dead letters of unroutable replays)."""

    def __init__(self, connectors: Sequence[ConnectorBase]) -> None:
        super().__init__()
        self._connectors = list(connectors)

    def expand(self, parsed: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        outputs = parsed | "Select" >> beam.ParDo(RouteEvents(self._connectors)).with_output_types(
            ROUTED, **{DEAD: dict[str, Any]}).with_outputs(DEAD, main="routed")
        return outputs.routed, outputs[DEAD]
