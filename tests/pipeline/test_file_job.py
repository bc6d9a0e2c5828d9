"""The whole job on the local runner (`--runner=DirectRunner`, run as FnApiRunner) over a file corpus.

One run, many specifications: every valid selected event in exactly one file of each selecting connector, one event
type per file, no empty files, dead letters for every drop, counts that reconcile.
"""
from __future__ import annotations

import collections
import hashlib
import json

import orjson
import pytest

from pipeline.main import run
from tests.corpus import (UNKNOWN_TYPE, WRONG_TYPE, corpus, dead_letters, decode_file, event_type_of, local_objects,
                          valid_events, write_lines)

COUNT, INVALID, OVERSIZE = 3000, 12, 3
EMAIL_OR_BEHAVIOR = ("users.messages.email.", "users.behaviors.")


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("job")
    lines, kinds = corpus(COUNT, seed=11, invalid=INVALID, oversize=OVERSIZE, extra=[UNKNOWN_TYPE, WRONG_TYPE])
    source = write_lines(str(tmp / "events.jsonl.gz"), lines)
    config = {"connectors": [
        {"id": "all-avro", "type": "filesystem", "path": str(tmp / "a"), "max_events_per_file": 10},
        {"id": "mkt-parquet", "type": "filesystem", "path": str(tmp / "b"), "format": "parquet",
         "events": ["users.messages.email.*", "users.behaviors.*"],
         "field_transforms": {"email_address": "hash", "phone_number": "remove"}},
        {"id": "sessions-jsonl", "type": "filesystem", "path": str(tmp / "c"), "format": "jsonl", "prefix": "",
         "events": ["users.behaviors.app.Session*"]},
    ]}
    metrics_out = tmp / "metrics.json"
    run(["--runner=DirectRunner", f"--source=file:{source}", f"--connectors={json.dumps(config)}",
         f"--dead_letter={tmp / 'dead'}", f"--metrics_out={metrics_out}"])
    return {"tmp": tmp, "lines": lines, "kinds": kinds, "valid": valid_events(lines, kinds),
            "metrics": json.loads(metrics_out.read_bytes()),
            "letters": dead_letters(str(tmp / "dead"))}


def _written(job: dict, folder: str) -> dict[str, list[dict]]:
    return {k: decode_file(k, v) for k, v in local_objects(str(job["tmp"] / folder)).items()}


def _ids(files: dict[str, list[dict]]) -> collections.Counter:
    return collections.Counter(r["id"] for records in files.values() for r in records)


def test_every_valid_event_is_in_exactly_one_file_of_a_connector_selecting_all(job: dict) -> None:
    expected = {e["id"] for e in job["valid"]} - {WRONG_TYPE["id"]}
    ids = _ids(_written(job, "a"))
    assert set(ids) == expected
    assert set(ids.values()) == {1}


def test_a_narrower_selection_gets_exactly_its_event_types(job: dict) -> None:
    expected = {e["id"] for e in job["valid"] if e["event_type"].startswith(EMAIL_OR_BEHAVIOR)} - {WRONG_TYPE["id"]}
    ids = _ids(_written(job, "b"))
    assert set(ids) == expected and set(ids.values()) == {1}


def test_each_file_holds_one_event_type_and_is_never_empty(job: dict) -> None:
    by_id = {e["id"]: e for e in job["valid"]}
    for folder in ("a", "b", "c"):
        for key, records in _written(job, folder).items():
            assert records, key
            assert {by_id[r["id"]]["event_type"] for r in records} == {event_type_of(key)}


def test_files_respect_max_events_per_file(job: dict) -> None:
    assert max(len(r) for r in _written(job, "a").values()) == 10


def test_records_carry_the_event_values_projected_on_the_schema(job: dict) -> None:
    by_id = {e["id"]: e for e in job["valid"]}
    for records in _written(job, "a").values():
        for record in records:
            event = by_id[record["id"]]
            for name, value in record.items():
                if name != "properties" or event["event_type"] != UNKNOWN_TYPE["event_type"]:
                    expected = event.get(name)
                    assert value == pytest.approx(expected) if isinstance(value, float) else value == expected


def test_field_transforms_hash_and_redact_for_one_connector_only(job: dict) -> None:
    by_id = {e["id"]: e for e in job["valid"]}
    hashed = redacted = 0
    for records in _written(job, "b").values():
        for record in records:
            original = by_id[record["id"]]
            if original.get("email_address"):
                assert record["email_address"] == hashlib.sha256(original["email_address"].encode()).hexdigest()
                hashed += 1
            if original.get("phone_number"):
                assert record["phone_number"] == "[REDACTED]"
                redacted += 1
    assert hashed > 0
    plain = [r for records in _written(job, "a").values() for r in records if r.get("email_address")]
    assert plain and all("@" in r["email_address"] for r in plain)


def test_object_keys_follow_the_reference_layout(job: dict) -> None:
    for key in _written(job, "a"):
        prefix, name, event_type, date, schema_id, zone, file = key.split("/")
        assert (prefix, name, zone) == ("currents", "dataexport.beam-01.S3.integration.all-avro", "us-01")
        assert event_type.startswith("event_type=") and date.startswith("date=") and schema_id.isdigit()
        base, partition, offset = file.removesuffix(".avro").split("+")
        assert base == name and partition == "0" and offset.isdigit()
    assert all(k.startswith("dataexport.") and k.endswith(".jsonl.gz") for k in _written(job, "c"))


def test_an_unknown_event_type_keeps_every_field_in_the_generic_schema(job: dict) -> None:
    files = _written(job, "a")
    (key,) = [k for k in files if event_type_of(k) == UNKNOWN_TYPE["event_type"]]
    (record,) = files[key]
    assert orjson.loads(record["properties"]) == {"color": "red", "nested": {"a": 1}}


def test_invalid_and_oversize_records_are_dead_letters_with_their_reasons(job: dict) -> None:
    reasons = collections.Counter(letter["reason"] for letter in job["letters"])
    assert reasons["invalid"] == INVALID and reasons["oversize"] == OVERSIZE
    oversize_lines = [job["lines"][i] for i, kind in job["kinds"].items() if kind == "oversize"]
    assert {orjson.loads(line)["id"] for line in oversize_lines} == {
        letter["event_id"] for letter in job["letters"] if letter["reason"] == "oversize"}


def test_a_value_of_the_wrong_type_is_a_schema_mismatch_dead_letter_per_selecting_connector(job: dict) -> None:
    letters = [letter for letter in job["letters"] if letter["reason"] == "schema_mismatch"]
    assert sorted(letter["connector"] for letter in letters) == ["all-avro", "mkt-parquet"]
    assert all(letter["event_id"] == WRONG_TYPE["id"] and "price" in letter["error"] for letter in letters)


def test_dead_letter_payloads_are_the_dropped_records(job: dict) -> None:
    bad = {job["lines"][i] for i, kind in job["kinds"].items() if kind != "oversize"}
    payloads = {letter["payload"].encode() for letter in job["letters"] if letter["reason"] == "invalid"
                and letter.get("payload_encoding") != "base64"}
    assert payloads <= bad and len(payloads) >= len(bad) - 2


def test_an_oversize_dead_letter_keeps_the_first_bytes_of_its_record_and_its_full_size(job: dict) -> None:
    oversize = {orjson.loads(job["lines"][i])["id"]: job["lines"][i]
                for i, kind in job["kinds"].items() if kind == "oversize"}
    letters = [letter for letter in job["letters"] if letter["reason"] == "oversize"]
    assert len(letters) == len(oversize)
    for letter in letters:
        line = oversize[letter["event_id"]]
        assert letter["size"] == len(line) and letter["truncated"] is True
        assert 0 < len(letter["payload"]) <= 4096 and line.startswith(letter["payload"].encode())


def test_counts_reconcile_per_connector(job: dict) -> None:
    metrics = job["metrics"]
    top = metrics["currents"]
    assert top["events_in"] == len(job["lines"])
    assert top["events_in"] == top["events_valid"] + top["invalid"] + top["oversize"]
    for cid in ("all-avro", "mkt-parquet", "sessions-jsonl"):
        lane = metrics[f"connector.{cid}"]
        dead = sum(v for k, v in lane.items() if k.startswith("dead_letters."))
        assert lane["routed"] == lane["delivered"] + dead
        assert lane["files_written"] == len(local_objects(str(job["tmp"] / {"all-avro": "a", "mkt-parquet": "b",
                                                                              "sessions-jsonl": "c"}[cid])))

