"""`cut`: consecutive batches within a count and a byte limit (transforms/batch.py)."""
from __future__ import annotations

from collections.abc import Iterable

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from core.buffer import release_group
from core.config import BatchLimits
from core.lanes import plan_lanes
from core.records import Batch, BatchKey, events_of
from pipeline.config import parse_config
from transforms.batch import Batching, cut


def items(*sizes: int) -> list[tuple[str, int]]:
    return [(f"e{i}", size) for i, size in enumerate(sizes)]


def sizes_of(batches: Iterable[list[tuple[bytes, int]]]) -> list[list[int]]:
    return [[size for _, size in batch] for batch in batches]


def test_no_items_gives_no_batches() -> None:
    assert list(cut([], max_count=10, max_bytes=100)) == []


def test_items_within_both_limits_stay_in_one_batch() -> None:
    assert sizes_of(cut(items(1, 2, 3), max_count=10, max_bytes=100)) == [[1, 2, 3]]


def test_max_count_cuts_batches() -> None:
    assert sizes_of(cut(items(1, 1, 1, 1, 1), max_count=2, max_bytes=100)) == [[1, 1], [1, 1], [1]]


def test_max_bytes_cuts_before_the_item_that_would_exceed_it() -> None:
    assert sizes_of(cut(items(40, 40, 40, 10), max_count=10, max_bytes=100)) == [[40, 40], [40, 10]]


def test_batch_may_fill_max_bytes_exactly() -> None:
    assert sizes_of(cut(items(50, 50, 1), max_count=10, max_bytes=100)) == [[50, 50], [1]]


def test_an_item_over_max_bytes_goes_alone() -> None:
    assert sizes_of(cut(items(10, 500, 10), max_count=10, max_bytes=100)) == [[10], [500], [10]]


def test_order_is_kept_within_and_across_batches() -> None:
    given_items = items(*range(1, 21))
    batches = list(cut(given_items, max_count=3, max_bytes=30))
    assert [item for batch in batches for item in batch] == given_items


def test_accepts_any_iterable_once() -> None:
    generator = (item for item in items(1, 2, 3, 4))
    assert sizes_of(cut(generator, max_count=3, max_bytes=100)) == [[1, 2, 3], [4]]


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=200), max_size=60),
       max_count=st.integers(min_value=1, max_value=10),
       max_bytes=st.integers(min_value=1, max_value=300))
def test_every_item_once_in_order_and_every_batch_within_limits(sizes: list[int], max_count: int,
                                                              max_bytes: int) -> None:
    given_items = items(*sizes)
    batches = list(cut(given_items, max_count, max_bytes))
    assert [item for batch in batches for item in batch] == given_items
    for batch in batches:
        assert batch, "no empty batch"
        assert len(batch) <= max_count
        total = sum(size for _, size in batch)
        assert total <= max_bytes or len(batch) == 1, "only a single over-limit item may exceed max_bytes"


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=60),
       max_count=st.integers(min_value=1, max_value=10),
       max_bytes=st.integers(min_value=1, max_value=300))
def test_a_batch_is_cut_only_when_the_next_item_would_not_fit(sizes: list[int], max_count: int,
                                                               max_bytes: int) -> None:
    batches = list(cut(items(*sizes), max_count, max_bytes))
    for batch, following in zip(batches, batches[1:]):
        total = sum(size for _, size in batch)
        assert len(batch) == max_count or total + following[0][1] > max_bytes


def test_events_of_a_batch_are_its_items_decoded_in_order() -> None:
    events = [{"id": "a", "n": 1}, {"id": "b", "text": "x,y]\n"}, {"id": "c", "nested": {"k": [1, 2]}}]
    items = [(orjson.dumps(e), 0) for e in events] + [(b'{"id": "d" }\r', 0)]  # a record as read: spaces, a CR
    assert events_of(Batch(BatchKey("k", "T", "H", 0, ("k",)), 0, items, 1)) == [*events, {"id": "d"}]


def test_a_lane_cuts_only_the_groups_of_its_connectors_and_keys_them_as_its_own() -> None:
    conns = parse_config({"connectors": [{"id": "store", "type": "filesystem", "path": "/tmp/a"},
                                         {"id": "mirror", "type": "filesystem", "path": "/tmp/b"}]},
                         environ={}).connectors
    [lane] = plan_lanes(conns)
    batching = Batching(lane, BatchLimits(max_count=2, max_bytes=1000, flush_seconds=5))

    def cut_group(key: BatchKey, chunks: list[bytes]) -> list[Batch]:  # batch mode: the group is complete
        return list(release_group(batching, key, chunks, run_token=9, clock=lambda: 0.0, sleep=lambda s: None))

    chunks = [b'{"id":"a"}\n{"id":"b"}\n{"id":"c"}']
    batches = cut_group(BatchKey("store", "T", "H", 0, ("store", "mirror", "partner")), chunks)
    assert [(b.key, b.seq, len(b.items), b.token) for b in batches] == [
        (("store", "T", "H", 0, ("store", "mirror")), 0, 2, 9), (("store", "T", "H", 0, ("store", "mirror")), 1, 1, 9)]
    assert cut_group(BatchKey("store", "T", "H", 0, ("partner",)), chunks) == []
