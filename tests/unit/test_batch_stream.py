"""Batch mode cuts a group as it is read: the same batches as cutting the whole group, holding about one file's
worth per key, so a worker with a group of millions of events never holds them all."""
from __future__ import annotations

import tracemalloc
from typing import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from core import chunks
from core.buffer import Numbering
from core.config import BatchLimits
from core.lanes import Lane
from core.records import BatchKey
from sinks.storage.stores import FilesystemConnector
from transforms.batch import Batching, cut, cut_stream

CHUNKS = st.lists(st.lists(st.binary(min_size=1, max_size=30).filter(lambda b: b"\n" not in b), min_size=1,
                           max_size=12).map(chunks.join), max_size=25)


@settings(max_examples=300, deadline=None)
@given(group=CHUNKS, max_count=st.integers(1, 20), max_bytes=st.integers(1, 200))
def test_cutting_a_group_as_it_comes_gives_the_batches_of_cutting_it_whole(group: list[bytes], max_count: int,
                                                                           max_bytes: int) -> None:
    assert list(cut_stream(iter(group), max_count, max_bytes)) == list(cut(chunks.items(group), max_count,
                                                                           max_bytes))


def test_a_lazily_generated_group_of_two_million_events_is_cut_without_holding_it() -> None:
    """2,000,000 events of 100 B (200 MB of JSON) in chunks of 500, cut into files of 15,000: peak memory stays
    within a few files' worth (the bound, 40 MB, is a fifth of the group)."""
    event = b'{"id":"%07d","event_type":"users.behaviors.CustomEvent","time":1700000000,"name":"x"}'
    line = event + b" " * (100 - len(event % 0))

    def group() -> Iterator[bytes]:
        for start in range(0, 2_000_000, 500):
            yield chunks.join(line % i for i in range(start, start + 500))

    lane = Lane((FilesystemConnector(id="lake", type="filesystem", path="/tmp/unused"),))
    policy = Batching(lane, BatchLimits(max_count=15_000, max_bytes=1 << 30, flush_seconds=60))
    key = BatchKey("lake", "users.behaviors.CustomEvent", "2026-12-02-05", 0, ("lake",))
    tracemalloc.start()
    try:
        count = events = 0
        for batch in policy.release_complete(key, group(), Numbering(7)):
            count, events = count + 1, events + len(batch.items)
            assert batch.seq == count - 1 and batch.token == 7
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (count, events) == (134, 2_000_000)
    assert peak < 40 * 2**20, f"peak {peak / 2**20:.0f} MiB"
