"""The synthetic event generator: deterministic, schema-valid, with bad lines exactly where it says."""
from __future__ import annotations

import itertools
import re
import time
import uuid
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import apache_beam as beam
import fastavro
import orjson
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to
from fastavro.validation import validate

from sinks.storage.schemas import known_event_types, load_schema
from transforms.generate import (
    BASE_TIME,
    INVALID_KINDS,
    MAX_EVENT_BYTES,
    GenerateRecords,
    bad_line_kinds,
    generate_event,
    generate_lines,
    main,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOGUE_PATH = REPO_ROOT / "docs" / "reference" / "event-catalog.md"
INT32_MAX = 2**31 - 1


@lru_cache(maxsize=None)
def _parsed(event_type: str) -> Any:
    return fastavro.parse_schema(load_schema(event_type))


def _classify(line: bytes) -> str:
    """What a consumer would make of a line: 'valid', 'oversize', or which malformation it has."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "non_utf8"
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "not_json"
    if isinstance(event, list):
        return "json_array"
    if not isinstance(event, dict):
        return "not_an_object"
    if "id" not in event:
        return "missing_id"
    if isinstance(event.get("time"), str):
        return "time_string"
    if len(line) > MAX_EVENT_BYTES:
        return "oversize"
    return "valid"


def _valid_against_schema(event: dict[str, Any]) -> bool:
    record = {k: v for k, v in event.items() if k not in ("event_type", "padding")}
    return validate(record, _parsed(event["event_type"]), raise_errors=True)


def test_same_seed_gives_same_lines() -> None:
    assert list(generate_lines(300, seed=7)) == list(generate_lines(300, seed=7))


def test_other_seed_gives_other_events() -> None:
    a = [generate_event(1, i) for i in range(200)]
    b = [generate_event(2, i) for i in range(200)]
    assert not {e["id"] for e in a} & {e["id"] for e in b}
    assert [e["event_type"] for e in a] != [e["event_type"] for e in b]


def test_events_do_not_depend_on_generation_order() -> None:
    forward = [generate_event(3, i) for i in range(100)]
    backward = [generate_event(3, i) for i in reversed(range(100))]
    assert forward == backward[::-1]


def test_every_catalogue_type_appears_within_2000_events() -> None:
    catalogue = set(re.findall(r"^- \*\*([^*]+)\*\*", CATALOGUE_PATH.read_text(encoding="utf-8"), re.M))
    assert len(catalogue) == 94
    assert {generate_event(0, i)["event_type"] for i in range(2000)} == catalogue


def test_every_schema_type_appears_within_2000_events() -> None:
    assert {generate_event(11, i)["event_type"] for i in range(2000)} == set(known_event_types())


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_every_generated_event_validates_against_its_schema(seed: int) -> None:
    for i in range(2000):
        assert _valid_against_schema(generate_event(seed, i))


def test_required_fields_always_present_and_most_optional_ones() -> None:
    present = total = 0
    for i in range(3000):
        event = generate_event(5, i)
        for field in load_schema(event["event_type"])["fields"]:
            if "default" not in field:
                assert field["name"] in event, (event["event_type"], field["name"])
            else:
                total += 1
                present += field["name"] in event
    assert 0.65 < present / total < 0.75


def test_absent_optional_fields_are_omitted_not_null() -> None:
    assert all(None not in generate_event(6, i).values() for i in range(1000))


def test_time_advances_one_second_every_ten_events() -> None:
    assert [generate_event(0, i)["time"] for i in (0, 9, 10, 25, 200_000)] == [
        BASE_TIME, BASE_TIME, BASE_TIME + 1, BASE_TIME + 2, BASE_TIME + 20_000]


def test_time_ms_is_within_the_event_second() -> None:
    for i in range(3000):
        event = generate_event(8, i)
        if "time_ms" in event:
            assert event["time_ms"] // 1000 == event["time"]


def test_values_look_real_by_field_name() -> None:
    checks = {
        "id": lambda v: uuid.UUID(v).version == 4,
        "user_id": lambda v: re.fullmatch(r"[0-9a-f]{24}", v),
        "external_user_id": lambda v: re.fullmatch(r"user-\d{5}", v),
        "email_address": lambda v: re.fullmatch(r"[a-z]+\.[a-z]+\d+@example\.(com|org|net)", v),
        "to_phone_number": lambda v: re.fullmatch(r"\+1555\d{7}", v),
        "from_phone_number": lambda v: re.fullmatch(r"\+1555\d{7}", v),
        "platform": lambda v: v in {"ios", "android", "web", "kindle", "tvos", "roku"},
        "ad_id_type": lambda v: v in {"ios_idfa", "google_ad_id", "windows_ad_id", "roku_ad_id"},
        "timezone": lambda v: re.fullmatch(r"(America|Europe|Asia|Africa|Australia|Pacific)/[A-Za-z_]+", v),
        "campaign_name": lambda v: re.fullmatch(r"[A-Z][A-Za-z -]+ \d+", v),
        "send_id": lambda v: re.fullmatch(r"[0-9a-f]{24}", v),
        "properties": lambda v: isinstance(orjson.loads(v), dict),
        "custom_attributes": lambda v: isinstance(orjson.loads(v), dict),
        "tool_arguments": lambda v: isinstance(orjson.loads(v), dict),
        "flow_response_json": lambda v: isinstance(orjson.loads(v), dict),
        "latitude": lambda v: -90 <= v <= 90,
        "longitude": lambda v: -180 <= v <= 180,
        "price": lambda v: 0 < v < 1000,
    }
    seen: Counter[str] = Counter()
    for i in range(3000):
        for name, value in generate_event(9, i).items():
            if name in checks:
                assert checks[name](value), (name, value)
                seen[name] += 1
    assert set(seen) == set(checks)


def test_ints_are_small_non_negative_int32() -> None:
    for i in range(2000):
        event = generate_event(10, i)
        for field in load_schema(event["event_type"])["fields"]:
            if field["type"] in ("int", ["null", "int"]) and field["name"] in event:
                assert 0 <= event[field["name"]] <= INT32_MAX, field["name"]


def test_valid_lines_are_the_generated_events() -> None:
    lines = list(generate_lines(50, seed=4, invalid=3))
    bad = bad_line_kinds(50, seed=4, invalid=3)
    for k, line in enumerate(lines):
        if k not in bad:
            assert line == orjson.dumps(generate_event(4, k))
            assert not line.endswith(b"\n")


def test_start_continues_the_stream() -> None:
    assert list(generate_lines(5, seed=2, start=10)) == list(generate_lines(15, seed=2))[10:]


def test_bad_line_kinds_counts_each_kind() -> None:
    assert Counter(bad_line_kinds(1000, seed=1, invalid=12, oversize=3).values()) == {"invalid": 12, "oversize": 3}


def test_bad_lines_are_where_bad_line_kinds_says() -> None:
    count, seed, invalid, oversize = 400, 3, 10, 2
    kinds = bad_line_kinds(count, seed, invalid, oversize)
    for k, line in enumerate(generate_lines(count, seed, invalid, oversize)):
        found = _classify(line)
        expected = kinds.get(k, "valid")
        assert (found if found in ("valid", "oversize") else "invalid") == expected, (k, found)


def test_invalid_lines_rotate_through_the_five_malformations() -> None:
    lines = list(generate_lines(100, seed=5, invalid=10))
    found = [_classify(lines[k]) for k in sorted(bad_line_kinds(100, seed=5, invalid=10))]
    assert Counter(found) == {kind: 2 for kind in INVALID_KINDS}


def test_oversize_lines_are_valid_events_over_900_kib() -> None:
    lines = list(generate_lines(20, seed=6, oversize=2))
    for k in bad_line_kinds(20, seed=6, oversize=2):
        assert len(lines[k]) > MAX_EVENT_BYTES
        event = orjson.loads(lines[k])
        assert len(event["padding"]) >= 900 * 1024
        assert _valid_against_schema(event)


def test_bad_lines_are_spread_over_the_corpus() -> None:
    count, total = 10_000, 20
    positions = sorted(bad_line_kinds(count, seed=9, invalid=15, oversize=5))
    stride = count // total
    assert len(positions) == total
    assert positions[0] < stride and positions[-1] >= count - stride
    assert all(b - a < 2 * stride for a, b in itertools.pairwise(positions))


def test_bad_line_kinds_depend_on_the_seed() -> None:
    assert bad_line_kinds(10_000, seed=1, invalid=20) != bad_line_kinds(10_000, seed=2, invalid=20)


@pytest.mark.parametrize(("count", "invalid", "oversize"), [(5, 4, 2), (-1, 0, 0), (10, -1, 0)])
def test_impossible_counts_are_rejected_at_call_time(count: int, invalid: int, oversize: int) -> None:
    with pytest.raises(ValueError):
        generate_lines(count, invalid=invalid, oversize=oversize)
    with pytest.raises(ValueError):
        GenerateRecords(count, invalid=invalid, oversize=oversize)


@pytest.mark.parametrize(("count", "shards"), [(250, 4), (3, 8)])
def test_generate_records_yields_the_same_lines_as_generate_lines(count: int, shards: int) -> None:
    invalid, oversize = (5, 1) if count > 10 else (1, 0)
    expected = list(generate_lines(count, seed=12, invalid=invalid, oversize=oversize))
    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        lines = pipeline | GenerateRecords(count, seed=12, invalid=invalid, oversize=oversize, shards=shards)
        assert_that(lines, equal_to(expected))


def test_cli_writes_one_newline_terminated_line_per_generated_line(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    assert main(["--count", "30", "--seed", "2", "--invalid", "3", "--out", str(out)]) == 0
    assert out.read_bytes() == b"".join(line + b"\n" for line in generate_lines(30, seed=2, invalid=3))


def test_generation_builds_each_types_plan_once() -> None:
    """What keeps generation fast (200k events in a few seconds, `make bench`): the field plan of an event type is
    built once, not per event. Checked by counting plan builds rather than by timing the loop, which a loaded machine
    would stretch; the time bound below only catches a hang or a quadratic loop (20k events take well under 1 s)."""
    from transforms import generate

    generate._plan.cache_clear()  # noqa: SLF001 - the plan cache is what this test is about
    started = time.perf_counter()
    for _ in generate_lines(20_000, seed=13):
        pass
    took = time.perf_counter() - started
    info = generate._plan.cache_info()  # noqa: SLF001
    assert info.misses <= len(known_event_types()) and info.hits >= 20_000 - info.misses
    assert took < 60.0


def test_optional_rate_sets_the_share_of_optional_fields_and_so_the_line_size() -> None:
    sparse = [len(line) for line in generate_lines(2000, seed=3, optional_rate=0.2)]
    dense = [len(line) for line in generate_lines(2000, seed=3, optional_rate=0.9)]
    assert sum(sparse) < 0.7 * sum(dense)


def test_optional_rate_zero_keeps_every_required_field() -> None:
    for line in generate_lines(300, seed=4, optional_rate=0.0):
        event = orjson.loads(line)
        schema = load_schema(event["event_type"])
        required = {f["name"] for f in schema["fields"] if not (isinstance(f["type"], list) and "null" in f["type"])}
        assert required <= event.keys()
