"""Lanes: the connectors that receive identical batches share one route output, one batching step and one encoding.

Storage connectors whose files would be byte for byte the same — same format, codec, field transforms, batching
limits and shards — differ only in where the files go (two buckets, a bucket and its mirror in another cloud).
Routing, batching, projection and encoding are done once for all of them, and each file is then put into every
member's store: five such connectors cost one encoding, not five. Each member keeps its own event selection,
object keys, metrics and dead letters; a store that refuses a file dead-letters it for that member only. The
price: the members' puts of a file are made one after the other, so a slow store (or one retrying) delays the
others' files; `share_lane: false` gives a connector a lane of its own.

Partners never share a lane: each has its own endpoint, credentials, limits and parking.

In batch mode, lanes that receive the same routed events (same field transforms and shards: a storage lane and a
partner lane, say) go further and share one flow: one grouping step, so the events cross the shuffle once and
each lane cuts its own batches from the groups. (Streaming lanes keep their own state and timers: one flow each.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

from core.config import ConnectorBase


@dataclass(frozen=True)
class Lane:
    members: tuple[ConnectorBase, ...]  # in config order; the first names the lane's steps and route output

    @property
    def id(self) -> str:
        return self.members[0].id

    @property
    def lead(self) -> ConnectorBase:
        return self.members[0]

    @property
    def shared(self) -> bool:
        return len(self.members) > 1


def plan_lanes(connectors: Sequence[ConnectorBase]) -> list[Lane]:
    """Connectors grouped into lanes, in config order (a lane sits where its first member is)."""
    groups: dict[Hashable, list[ConnectorBase]] = {}
    lanes: list[list[ConnectorBase]] = []
    for connector in connectors:
        key = connector.sharing_key()
        if key is not None and key in groups:
            groups[key].append(connector)
            continue
        members = [connector]
        lanes.append(members)
        if key is not None:
            groups[key] = members
    return [Lane(tuple(members)) for members in lanes]


@dataclass(frozen=True)
class Flow:
    """Lanes routed and grouped together; named after its first lane."""

    lanes: tuple[Lane, ...]

    @property
    def id(self) -> str:
        return self.lanes[0].id

    @property
    def members(self) -> tuple[ConnectorBase, ...]:
        return tuple(c for lane in self.lanes for c in lane.members)


def plan_flows(lanes: Sequence[Lane], streaming: bool) -> list[Flow]:
    """One flow per lane in streaming; in batch, lanes with the same field transforms and shards together."""
    if streaming:
        return [Flow((lane,)) for lane in lanes]
    groups: dict[Hashable, list[Lane]] = {}
    for lane in lanes:
        key = (tuple(sorted(lane.lead.field_transforms.items())), lane.lead.shard_count())
        groups.setdefault(key, []).append(lane)
    return [Flow(tuple(group)) for group in groups.values()]
