"""Routing: event selection per connector, field transforms, and (connector, type, hour, shard) keys."""
from __future__ import annotations

import hashlib
import zlib
from collections import defaultdict
from typing import Any

import orjson
import pytest
from apache_beam.pvalue import TaggedOutput
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from core.records import Parsed
from pipeline.config import parse_config
from transforms.route import CHUNK, DEAD, REDACTED, RouteEvents, field_transform, hour_string

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
HOUR = T0 // 3600
EMAIL = "users.messages.email.Send"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def connectors(*specs: dict[str, Any]) -> list[Any]:
    docs = [{"type": "filesystem", "path": "/tmp/out", **spec} for spec in specs]
    return parse_config({"connectors": docs}, environ={}).connectors


def event(event_id: str = "ev-1", event_type: str = EMAIL, **fields: Any) -> dict[str, Any]:
    return {"id": event_id, "event_type": event_type, "time": T0, **fields}


def parsed(ev: dict[str, Any], only: str | None = None, json: bytes | None = None, hour: int = HOUR) -> Parsed:
    return Parsed(ev, hour, json, only)


class Routed:
    """What a RouteEvents instance emitted over one bundle, per connector id."""

    def __init__(self, fn: RouteEvents, elements: list[tuple], timestamp: Timestamp = Timestamp(T0)) -> None:
        self.from_process: list[TaggedOutput] = []
        self.from_finish: list[TaggedOutput] = []
        fn.start_bundle()
        for element in elements:
            self.from_process.extend(fn.process(element, timestamp=timestamp))
        self.from_finish.extend(fn.finish_bundle())
        self.chunks: dict[str, list[tuple]] = defaultdict(list)  # lane id (or DEAD) -> [(key, chunk)]
        for out in self.from_process:
            if isinstance(out, TaggedOutput):
                self.chunks[out.tag].append(out.value)
            else:
                self.chunks[out.key.lane].append(out)
        for out in self.from_finish:
            assert isinstance(out, WindowedValue)
            self.chunks[out.value.key.lane].append(out.value)

    def events(self, connector_id: str) -> list[dict[str, Any]]:
        """The events routed to a connector, on its own lane or on one it shares (key[4] says whom a chunk is for)."""
        return [orjson.loads(data) for tag, chunks in self.chunks.items() if tag != DEAD for key, chunk in chunks
                if connector_id in key[4] for data in chunk.split(b"\n")]

    def keys(self, connector_id: str) -> list[tuple]:
        return [key for key, _ in self.chunks.get(connector_id, [])]


def route(conns: list[Any], elements: list[tuple], timestamp: Timestamp = Timestamp(T0)) -> Routed:
    fn = RouteEvents(conns)
    fn.setup()
    return Routed(fn, elements, timestamp)


# --- field_transform --------------------------------------------------------------------------------------------

RULES = {"email_address": "hash", "phone_number": "remove"}


def test_no_rules_means_no_transform() -> None:
    assert field_transform({}) is None


def test_hash_replaces_a_string_with_its_sha256_hex_of_the_utf8_value() -> None:
    out = field_transform(RULES)(event(email_address="zoë@example.com"))
    assert out["email_address"] == sha256("zoë@example.com")
    assert out["email_address"] == hashlib.sha256("zoë@example.com".encode()).hexdigest()


def test_remove_redacts_a_string() -> None:
    out = field_transform(RULES)(event(phone_number="+15551234567"))
    assert out["phone_number"] == REDACTED == "[REDACTED]"


def test_transform_copies_and_leaves_the_input_unchanged() -> None:
    original = event(email_address="a@example.com", phone_number="+1555")
    snapshot = dict(original)
    out = field_transform(RULES)(original)
    assert out is not original
    assert original == snapshot
    assert {k: v for k, v in out.items() if k not in RULES} == {k: v for k, v in original.items() if k not in RULES}


def test_event_without_the_fields_is_returned_as_the_same_object() -> None:
    original = event(first_name="Ada")
    assert field_transform(RULES)(original) is original


def test_null_values_stay_null_without_a_copy() -> None:
    original = event(email_address=None, phone_number=None)
    out = field_transform(RULES)(original)
    assert out is original
    assert out["email_address"] is None and out["phone_number"] is None


@pytest.mark.parametrize("value", [12345, 1.5, True, ["a@example.com"], {"v": "a@example.com"}])
def test_non_string_values_under_a_rule_become_null(value: Any) -> None:
    out = field_transform(RULES)(event(email_address=value, phone_number=value))
    assert out["email_address"] is None
    assert out["phone_number"] is None


def test_fields_without_a_rule_are_untouched() -> None:
    out = field_transform({"email_address": "hash"})(event(email_address="a@x", phone_number="+1"))
    assert out["phone_number"] == "+1"


# --- hour_string ------------------------------------------------------------------------------------------------

def test_hour_string_is_utc_year_month_day_hour() -> None:
    assert hour_string(HOUR) == "2023-11-14-22"
    assert hour_string(0) == "1970-01-01-00"


# --- RouteEvents ------------------------------------------------------------------------------------------------

def test_key_is_lane_type_hour_shard_and_the_connectors_it_is_for() -> None:
    routed = route(connectors({"id": "lake"}), [parsed(event())])
    assert routed.keys("lake") == [("lake", EMAIL, "2023-11-14-22", 0, ("lake",))]


def test_a_chunk_is_the_events_json_joined_by_newlines() -> None:
    first, second = event("a"), event("b")
    routed = route(connectors({"id": "lake"}), [parsed(first), parsed(second)])
    [(_, chunk)] = routed.chunks["lake"]
    assert chunk == orjson.dumps(first) + b"\n" + orjson.dumps(second)


def test_the_records_own_json_is_passed_on_as_read_to_connectors_that_see_the_event_unchanged() -> None:
    ev = event(email_address="a@example.com")
    as_read = b'{"id": "ev-1",  "event_type": "%s", "time": %d, "email_address": "a@example.com"}' % (
        EMAIL.encode(), T0)
    conns = connectors({"id": "raw"}, {"id": "hashed", "field_transforms": {"email_address": "hash"}})
    routed = route(conns, [parsed(ev, json=as_read)])
    assert routed.chunks["raw"][0][1] == as_read
    assert orjson.loads(routed.chunks["hashed"][0][1])["email_address"] == sha256("a@example.com")


def test_finish_bundle_output_is_windowed_at_the_first_events_timestamp() -> None:
    fn = RouteEvents(connectors({"id": "lake"}))
    fn.setup()
    fn.start_bundle()
    list(fn.process(parsed(event("a")), timestamp=Timestamp(T0 + 1)))
    list(fn.process(parsed(event("b")), timestamp=Timestamp(T0 + 9)))
    [out] = list(fn.finish_bundle())
    assert out.value.key.lane == "lake"
    assert out.timestamp == Timestamp(T0 + 1)
    key, chunk = out.value
    assert [orjson.loads(ev)["id"] for ev in chunk.split(b"\n")] == ["a", "b"]


def test_two_connectors_see_the_same_event_through_their_own_transforms() -> None:
    conns = connectors({"id": "hashed", "field_transforms": {"email_address": "hash"}},
                       {"id": "redacted", "field_transforms": {"email_address": "remove"}},
                       {"id": "raw"})
    ev = event(email_address="a@example.com")
    routed = route(conns, [parsed(ev)])
    assert routed.events("hashed")[0]["email_address"] == sha256("a@example.com")
    assert routed.events("redacted")[0]["email_address"] == REDACTED
    assert routed.events("raw")[0]["email_address"] == "a@example.com"
    assert ev["email_address"] == "a@example.com"


def test_only_selecting_connectors_receive_the_event() -> None:
    conns = connectors({"id": "email", "events": ["users.messages.email.*"]},
                       {"id": "purchases", "events": ["users.behaviors.Purchase"]},
                       {"id": "all"})
    routed = route(conns, [parsed(event("e1", EMAIL)), parsed(event("p1", "users.behaviors.Purchase")),
                           parsed(event("c1", "users.behaviors.CustomEvent"))])
    assert [e["id"] for e in routed.events("email")] == ["e1"]
    assert [e["id"] for e in routed.events("purchases")] == ["p1"]
    assert sorted(e["id"] for e in routed.events("all")) == ["c1", "e1", "p1"]


def test_connectors_sharing_a_lane_get_one_chunk_naming_those_that_select_the_type() -> None:
    conns = connectors({"id": "lake", "path": "/tmp/a"}, {"id": "mirror", "path": "/tmp/b"},
                       {"id": "emails", "path": "/tmp/c", "events": ["users.messages.email.*"]})
    routed = route(conns, [parsed(event("e1", EMAIL)), parsed(event("p1", "users.behaviors.Purchase"))])
    assert set(routed.chunks) == {"lake"}
    assert sorted((key[1], key[4]) for key, _ in routed.chunks["lake"]) == [
        ("users.behaviors.Purchase", ("lake", "mirror")), (EMAIL, ("lake", "mirror", "emails"))]


def test_a_replay_on_a_shared_lane_is_for_its_own_connector_only() -> None:
    conns = connectors({"id": "lake", "path": "/tmp/a"}, {"id": "mirror", "path": "/tmp/b"})
    routed = route(conns, [parsed(event("replayed"), only="mirror")])
    assert [key[4] for key, _ in routed.chunks["lake"]] == [("mirror",)]
    assert routed.events("lake") == [] and [e["id"] for e in routed.events("mirror")] == ["replayed"]


def test_event_no_connector_selects_goes_nowhere() -> None:
    routed = route(connectors({"id": "email", "events": ["users.messages.email.*"]}),
                   [parsed(event(event_type="users.behaviors.CustomEvent"))])
    assert routed.from_process == [] and routed.from_finish == []


def test_only_connector_restricts_the_event_to_that_connector() -> None:
    conns = connectors({"id": "a"}, {"id": "b"}, {"id": "c"})
    routed = route(conns, [parsed(event("replayed"), only="b"), parsed(event("live"))])
    assert [e["id"] for e in routed.events("a")] == ["live"]
    assert sorted(e["id"] for e in routed.events("b")) == ["live", "replayed"]
    assert [e["id"] for e in routed.events("c")] == ["live"]


def test_only_connector_still_needs_that_connector_to_select_the_type() -> None:
    conns = connectors({"id": "email", "events": ["users.messages.email.*"]}, {"id": "all"})
    routed = route(conns, [parsed(event(event_type="users.behaviors.Purchase"), only="email")])
    assert routed.events("email") == [] and routed.events("all") == []


def test_replayed_event_for_its_connector_is_not_transformed_again() -> None:
    conns = connectors({"id": "hashed", "field_transforms": {"email_address": "hash"}})
    already_hashed = event(email_address=sha256("a@example.com"))  # the payload of its write_failed dead letter
    routed = route(conns, [parsed(already_hashed, only="hashed")])
    assert routed.events("hashed")[0]["email_address"] == sha256("a@example.com")


def test_events_are_grouped_per_type_and_hour() -> None:
    routed = route(connectors({"id": "lake"}), [
        parsed(event("a", EMAIL)), parsed(event("b", "users.behaviors.Purchase")),
        parsed(event("c", EMAIL), hour=HOUR + 1), parsed(event("d", EMAIL))])
    by_key = {key: [orjson.loads(ev)["id"] for ev in chunk.split(b"\n")] for key, chunk in routed.chunks["lake"]}
    assert by_key == {
        ("lake", EMAIL, "2023-11-14-22", 0, ("lake",)): ["a", "d"],
        ("lake", "users.behaviors.Purchase", "2023-11-14-22", 0, ("lake",)): ["b"],
        ("lake", EMAIL, "2023-11-14-23", 0, ("lake",)): ["c"],
    }


def test_a_full_chunk_leaves_from_process_without_waiting_for_the_bundle_end() -> None:
    routed = route(connectors({"id": "lake"}), [parsed(event(f"e{i}")) for i in range(CHUNK + 3)])
    assert len(routed.from_process) == 1
    assert routed.from_process[0].chunk.count(b"\n") + 1 == CHUNK
    assert len(routed.from_finish) == 1
    assert routed.from_finish[0].value.chunk.count(b"\n") + 1 == 3
    assert [e["id"] for e in routed.events("lake")] == [f"e{i}" for i in range(CHUNK + 3)]


def test_shards_spread_events_by_crc32_of_the_id() -> None:
    ids = [f"event-{i}" for i in range(200)]
    routed = route(connectors({"id": "lake", "shards": 4}), [parsed(event(i)) for i in ids])
    shard_of = {orjson.loads(ev)["id"]: key[3] for key, chunk in routed.chunks["lake"] for ev in chunk.split(b"\n")}
    assert shard_of == {i: zlib.crc32(i.encode("utf-8")) % 4 for i in ids}
    assert set(shard_of.values()) == {0, 1, 2, 3}


def test_sharding_is_deterministic_across_router_instances() -> None:
    conns = connectors({"id": "lake", "shards": 8})
    elements = [parsed(event(f"id-{i}")) for i in range(50)]
    first = route(conns, elements).keys("lake")
    second = route(conns, elements).keys("lake")
    assert sorted(first) == sorted(second)


def test_single_shard_connector_always_uses_shard_zero() -> None:
    routed = route(connectors({"id": "lake"}), [parsed(event(f"e{i}")) for i in range(20)])
    assert {key[3] for key in routed.keys("lake")} == {0}


def test_each_bundle_starts_empty() -> None:
    fn = RouteEvents(connectors({"id": "lake"}))
    fn.setup()
    first = Routed(fn, [parsed(event("a"))])
    second = Routed(fn, [parsed(event("b"))])
    assert [e["id"] for e in first.events("lake")] == ["a"]
    assert [e["id"] for e in second.events("lake")] == ["b"]


def test_a_replay_for_a_connector_that_is_gone_is_an_unroutable_dead_letter_not_a_silent_drop() -> None:
    routed = route(connectors({"id": "lake"}), [parsed(event("r1"), only="renamed")])
    (letter,) = routed.chunks["_dead"]
    assert (letter["reason"], letter["connector"], letter["event_id"]) == ("unroutable", "renamed", "r1")
    assert routed.events("lake") == []


def test_a_replay_for_a_connector_that_no_longer_selects_its_type_is_unroutable() -> None:
    routed = route(connectors({"id": "lake", "events": ["users.behaviors.*"]}), [parsed(event("r2"), only="lake")])
    assert [d["reason"] for d in routed.chunks["_dead"]] == ["unroutable"]


def test_a_replay_is_keyed_on_a_shard_of_its_own_past_the_outputs_shards() -> None:
    conns = connectors({"id": "lake", "path": "/tmp/a", "shards": 2}, {"id": "mirror", "path": "/tmp/b", "shards": 2})
    ev = event("replayed")
    live_shard = zlib.crc32(b"replayed") % 2
    routed = route(conns, [parsed(ev, only="mirror"), parsed(ev)])
    assert sorted((key[3], key[4]) for key, _ in routed.chunks["lake"]) == [
        (live_shard, ("lake", "mirror")), (live_shard + 2 * 2, ("mirror",))]  # mirror is member 1 of 2 shards
