"""Which connectors share a lane (core/lanes.py): only those whose files would be byte for byte the same."""
from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import parse_config
from core.lanes import plan_lanes
from core.records import BatchKey


def connectors(*specs: dict[str, Any]) -> list[Any]:
    docs = [{"type": "filesystem", "path": f"/tmp/{spec['id']}", **spec} for spec in specs]
    return parse_config({"connectors": docs}, environ={}).connectors


def lane_ids(*specs: dict[str, Any]) -> list[list[str]]:
    return [[c.id for c in lane.members] for lane in plan_lanes(connectors(*specs))]


def test_storage_connectors_that_differ_only_in_where_they_write_share_one_lane() -> None:
    assert lane_ids({"id": "a"}, {"id": "b", "prefix": "mirror"}, {"id": "c"}) == [["a", "b", "c"]]


def test_storage_connectors_of_different_store_types_share_a_lane() -> None:
    conns = parse_config({"connectors": [
        {"id": "disk", "type": "filesystem", "path": "/tmp/x"},
        {"id": "bucket", "type": "s3", "bucket": "my-bucket"},
        {"id": "gcs", "type": "gcs", "bucket": "my-bucket"}]}, environ={}).connectors
    assert [[c.id for c in lane.members] for lane in plan_lanes(conns)] == [["disk", "bucket", "gcs"]]


def test_a_lane_is_named_after_its_first_member_in_config_order() -> None:
    [lane] = plan_lanes(connectors({"id": "zeta"}, {"id": "alpha"}))
    assert lane.id == "zeta" and lane.lead.id == "zeta" and lane.shared


@pytest.mark.parametrize("difference", [
    {"format": "parquet"}, {"codec": "deflate"}, {"field_transforms": {"email_address": "hash"}},
    {"max_events_per_file": 100}, {"max_bytes_per_file": 1024 * 1024}, {"flush_seconds": 60}, {"shards": 4},
])
def test_storage_connectors_whose_files_would_differ_keep_their_own_lanes(difference: dict[str, Any]) -> None:
    assert lane_ids({"id": "a"}, {"id": "b", **difference}) == [["a"], ["b"]]


def test_a_different_event_selection_still_shares_the_lane() -> None:
    assert lane_ids({"id": "all"}, {"id": "emails", "events": ["users.messages.email.*"]}) == [["all", "emails"]]


def test_partners_never_share_a_lane() -> None:
    conns = parse_config({"connectors": [
        {"id": "p1", "type": "http", "endpoint": "https://a.example/currents"},
        {"id": "p2", "type": "http", "endpoint": "https://a.example/currents"}]}, environ={}).connectors
    assert [[c.id for c in lane.members] for lane in plan_lanes(conns)] == [["p1"], ["p2"]]


def test_lanes_keep_config_order() -> None:
    assert lane_ids({"id": "a"}, {"id": "b", "codec": "deflate"}, {"id": "c"}, {"id": "d", "codec": "deflate"}) == [
        ["a", "c"], ["b", "d"]]


def test_a_connector_that_asks_for_its_own_lane_gets_one() -> None:
    assert lane_ids({"id": "a"}, {"id": "b", "share_lane": False}, {"id": "c"}) == [["a", "c"], ["b"]]


def test_lanes_with_the_same_field_transforms_and_shards_have_the_same_routing() -> None:
    conns = parse_config({"connectors": [
        {"id": "disk", "type": "filesystem", "path": "/tmp/x"},
        {"id": "deflated", "type": "filesystem", "path": "/tmp/y", "codec": "deflate"},
        {"id": "hashed", "type": "filesystem", "path": "/tmp/z", "field_transforms": {"email_address": "hash"}},
        {"id": "partner", "type": "http", "endpoint": "https://a.example/currents"}]}, environ={}).connectors
    disk, deflated, hashed, partner = plan_lanes(conns)
    assert disk.routing == deflated.routing == partner.routing != hashed.routing


def test_a_lane_takes_a_shared_chunk_as_its_own_naming_only_its_members() -> None:
    [lane, other] = plan_lanes(connectors({"id": "a"}, {"id": "b"}, {"id": "c", "codec": "deflate"}))
    key = BatchKey("a", "T", "H", 0, ("a", "c"))
    assert lane.take(key) == BatchKey("a", "T", "H", 0, ("a",))
    assert other.take(key) == BatchKey("c", "T", "H", 0, ("c",))
    assert lane.take(BatchKey("a", "T", "H", 0, ("c",))) is None
