"""Lanes: the one way connectors share work.

A lane is the connectors that receive identical batches: they share one batching step and one encoding. Storage
connectors whose files would be byte for byte the same — same format, codec, field transforms, batching limits
and shards — differ only in where the files go (two buckets, a bucket and its mirror in another cloud). Batching,
projection and encoding are done once for all of them, and each file is then put into every member's store: five
such connectors cost one encoding, not five. Each member keeps its own event selection, object keys, metrics and
dead letters; a store that refuses a file dead-letters it for that member only. The price: the members' puts of
a file are made one after the other, so a slow store (or one retrying) delays the others' files; `share_lane:
false` gives a connector a lane of its own. Partners never share a lane: each has its own endpoint, credentials,
limits and parking.

Lanes also share what they can before batching. Lanes with the same routing (field transforms and shards) see
the same routed events: the router writes each such event once, into a chunk keyed under the first of those
lanes and naming every connector it is for (`BatchKey.members`), and each lane takes, re-keyed as its own, the
chunks that name any of its members (`Lane.take`). In batch mode all lanes then share one grouping step, so
those events cross the shuffle once (core/buffer.py); in streaming each lane keeps its own state.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Hashable, Optional, Sequence

from core.config import ConnectorBase
from core.records import BatchKey


@dataclass(frozen=True)
class Lane:
    members: tuple[ConnectorBase, ...]  # in config order; the first names the lane and its steps

    @property
    def id(self) -> str:
        return self.members[0].id

    @property
    def lead(self) -> ConnectorBase:
        return self.members[0]

    @property
    def shared(self) -> bool:
        return len(self.members) > 1

    @property
    def routing(self) -> Hashable:
        """Lanes with equal routings see the same routed events: same field transforms, same shards."""
        return tuple(sorted(self.lead.field_transforms.items())), self.lead.shard_count()

    @cached_property
    def _ids(self) -> frozenset[str]:
        return frozenset(c.id for c in self.members)

    def take(self, key: BatchKey) -> Optional[BatchKey]:
        """A routed chunk's key as this lane's own, naming only its members; None when the chunk is for none of
        them."""
        ids = self._ids
        members = tuple(cid for cid in key.members if cid in ids)
        return key._replace(lane=self.id, members=members) if members else None


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
