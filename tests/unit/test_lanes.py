"""Which connectors share a lane (pipeline/lanes.py): only those whose files would be byte for byte the same."""
from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import parse_config
from core.lanes import plan_flows, plan_lanes


def connectors(*specs: dict[str, Any]):
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


def test_in_streaming_every_lane_is_its_own_flow() -> None:
    lanes = plan_lanes(connectors({"id": "a"}, {"id": "b", "codec": "deflate"}))
    assert [[lane.id for lane in flow.lanes] for flow in plan_flows(lanes, streaming=True)] == [["a"], ["b"]]


def test_in_batch_lanes_that_see_the_same_events_share_a_flow() -> None:
    conns = parse_config({"connectors": [
        {"id": "disk", "type": "filesystem", "path": "/tmp/x"},
        {"id": "deflated", "type": "filesystem", "path": "/tmp/y", "codec": "deflate"},
        {"id": "hashed", "type": "filesystem", "path": "/tmp/z", "field_transforms": {"email_address": "hash"}},
        {"id": "partner", "type": "http", "endpoint": "https://a.example/currents"}]}, environ={}).connectors
    flows = plan_flows(plan_lanes(conns), streaming=False)
    assert [[lane.id for lane in flow.lanes] for flow in flows] == [["disk", "deflated", "partner"], ["hashed"]]
    assert [c.id for c in flows[0].members] == ["disk", "deflated", "partner"] and flows[0].id == "disk"
