"""The job end to end into real storage emulators: moto (S3), gcp-storage-emulator (GCS), Azurite (Azure Blob).

The same corpus goes through one connector per store; the test lists the bucket or container with the store's own
client, reads every object back with fastavro / pyarrow and compares it with the input, event by event.
"""
from __future__ import annotations

import collections
import json
from typing import Any, Callable

import pytest

from pipeline.main import run
from sinks.storage.projection import Projector
from sinks.storage.schemas import load_schema
from tests.corpus import UNKNOWN_TYPE, corpus, dead_letters, decode_file, event_type_of, valid_events, write_lines

COUNT, INVALID, OVERSIZE = 1500, 5, 2


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    lines, kinds = corpus(COUNT, seed=5, invalid=INVALID, oversize=OVERSIZE, extra=[UNKNOWN_TYPE])
    path = write_lines(str(tmp_path_factory.mktemp("corpus") / "events.jsonl"), lines)
    return path, valid_events(lines, kinds)


def _run_job(tmp_path, source: str, connector: dict[str, Any]) -> None:  # noqa: ANN001
    run(["--runner=DirectRunner", f"--source=file:{source}",
         f"--connectors={json.dumps({'connectors': [connector]})}", f"--dead_letter={tmp_path / 'dead'}"])


def _assert_objects_hold_the_input(objects: dict[str, bytes], events: list[dict[str, Any]], suffix: str,
                                   connection_type: str) -> None:
    by_id = {e["id"]: e for e in events}
    seen: collections.Counter = collections.Counter()
    for key, data in objects.items():
        assert key.endswith(suffix) and f".{connection_type}.integration." in key
        records = decode_file(key, data)
        assert records, f"empty object {key}"
        for record in records:
            event = by_id[record["id"]]
            assert event["event_type"] == event_type_of(key)
            schema = load_schema(event["event_type"])
            if schema is not None:
                assert record == pytest.approx(Projector(schema).project(event)) if _has_float(record) else \
                    record == Projector(schema).project(event)
            seen[record["id"]] += 1
    assert set(seen) == set(by_id) and set(seen.values()) == {1}


def _has_float(record: dict[str, Any]) -> bool:
    return any(isinstance(v, float) for v in record.values())


def _read_all(lister: Callable[[], list[str]], getter: Callable[[str], bytes]) -> dict[str, bytes]:
    return {key: getter(key) for key in lister()}


def test_s3_connector_writes_every_event_to_moto(tmp_path, events_file, s3_endpoint, s3_client, s3_bucket) -> None:  # noqa: ANN001
    source, events = events_file
    _run_job(tmp_path, source, {"id": "lake", "type": "s3", "bucket": s3_bucket, "endpoint_url": s3_endpoint,
                                "region": "us-east-1", "codec": "deflate", "sse": "AES256",
                                "credentials": {"access_key_id": "testing", "secret_access_key": "testing"}})
    keys = [o["Key"] for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
            for o in page.get("Contents", [])]
    objects = {k: s3_client.get_object(Bucket=s3_bucket, Key=k)["Body"].read() for k in keys}
    _assert_objects_hold_the_input(objects, events, ".avro", "S3")
    assert s3_client.head_object(Bucket=s3_bucket, Key=keys[0])["ServerSideEncryption"] == "AES256"
    assert collections.Counter(d["reason"] for d in dead_letters(str(tmp_path / "dead"))) == {
        "invalid": INVALID, "oversize": OVERSIZE}


def test_gcs_connector_writes_every_event_to_the_emulator(tmp_path, events_file, gcs_endpoint, gcs_client,  # noqa: ANN001
                                                          gcs_bucket) -> None:  # noqa: ANN001
    source, events = events_file
    _run_job(tmp_path, source, {"id": "lake", "type": "gcs", "bucket": gcs_bucket, "endpoint": gcs_endpoint,
                                "format": "parquet", "codec": "snappy"})
    objects = {b.name: b.download_as_bytes() for b in gcs_client.list_blobs(gcs_bucket)}
    _assert_objects_hold_the_input(objects, events, ".parquet", "GCS")


def test_azure_blob_connector_writes_every_event_to_azurite(tmp_path, events_file, azurite_connection_string,  # noqa: ANN001
                                                            azure_service, azure_container) -> None:  # noqa: ANN001
    source, events = events_file
    _run_job(tmp_path, source, {"id": "lake", "type": "azure_blob", "container": azure_container,
                                "connection_string": "${AZURE_CONN}", "codec": "zstandard"})
    container = azure_service.get_container_client(azure_container)
    objects = {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}
    _assert_objects_hold_the_input(objects, events, ".avro", "AzureBlob")


@pytest.fixture(autouse=True)
def _azure_secret_in_env(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """The Azure test passes its connection string as a ${ENV} reference, resolved on the worker."""
    if "azurite_connection_string" in request.fixturenames:
        monkeypatch.setenv("AZURE_CONN", request.getfixturevalue("azurite_connection_string"))


def test_a_store_that_refuses_the_write_turns_the_batch_into_dead_letters(tmp_path, events_file, s3_endpoint) -> None:  # noqa: ANN001
    source, events = events_file
    _run_job(tmp_path, source, {"id": "lake", "type": "s3", "bucket": "no-such-bucket", "endpoint_url": s3_endpoint,
                                "region": "us-east-1",
                                "credentials": {"access_key_id": "testing", "secret_access_key": "testing"}})
    letters = [d for d in dead_letters(str(tmp_path / "dead")) if d["reason"] == "write_failed"]
    assert {d["event_id"] for d in letters} == {e["id"] for e in events}
    assert all(d["connector"] == "lake" and "no-such-bucket" in d["error"] for d in letters)
