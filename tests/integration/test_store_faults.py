"""The job against misbehaving stores: moto (S3), gcp-storage-emulator (GCS) and Azurite behind the fault proxy
(tests/faults.py), through the real job (`pipeline.main.run`, DirectRunner, a file source).

What each store is asked to survive: bursts of 500/503 and resets (retried by its SDK, held when that runs out),
writes whose answers are lost (reconciled: the object is there with the same content), an outage of seconds
(held and delivered, exit 0), an outage longer than the bounded hold (expired dead letters, exit 3, and a replay
that puts every event in the bucket exactly once), a store that never answers (the run still ends), refused
credentials (credentials_expired after the hold) and a missing bucket (write_failed at once, exit 3). What is in
the bucket is read with the store's own client straight from the emulator, not through the proxy, and counted by
event id across every object.

Connector settings are short (2 attempts, 1 s connect / 2 s read timeouts, a probe every second) and bounded runs
hold at most 0.2-0.5 minutes, so the slowest test takes tens of seconds; bounds on how long a run takes are
minutes wide and enforced by a watchdog (tests/faults.py), never by sub-second timing.
"""
from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from pipeline.main import EXIT_DESTINATION, EXIT_OK, RunReport, run
from tests.corpus import corpus, dead_letters, decode_file, valid_events, write_lines
from tests.emulators import azurite_connection_string as azure_connection_for
from tests.faults import (Answer, Exchange, FaultProxy, Hang, LoseAnswer, Request, Reset, Slow, after, burst, combine,
                          down_for, watchdog)

CONNECTOR = "lake"
FEW_TYPES = "users.messages.email.*"  # 65 events of 11 types in the corpus: 11 files, so outages stay short
SHORT = {"retry_attempts": 2, "connect_timeout_seconds": 1, "read_timeout_seconds": 2,
         "probe_interval_seconds": 1}
RUN_BOUND = 240  # seconds: far above what any run here takes; the watchdog's, not an assertion on speed


# ---------------------------------------------------------------------------------------------------------------------
# The three stores, each behind a proxy
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class Store:
    kind: str
    target: str  # the emulator's endpoint, which the proxy forwards to
    bucket: str
    connector: Callable[[str, str], dict[str, Any]]  # (endpoint the job uses, bucket) -> connector fields
    objects: Callable[[], dict[str, bytes]]  # every object in the bucket, read straight from the emulator
    unavailable: Answer  # the store's own 503 (throttled / busy)
    internal: Answer  # its 500
    denied: Answer  # its 403 for refused credentials


def _s3_error(status: int, code: str, message: str) -> Answer:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
            f'<RequestId>fault</RequestId></Error>').encode()
    return Answer(status, body, {"Content-Type": "application/xml"})


def _gcs_error(status: int, reason: str, message: str) -> Answer:
    body = json.dumps({"error": {"code": status, "message": message,
                                 "errors": [{"reason": reason, "message": message}]}}).encode()
    return Answer(status, body, {"Content-Type": "application/json"})


def _azure_error(status: int, code: str, message: str) -> Answer:
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
            '</Error>').encode()
    return Answer(status, body, {"Content-Type": "application/xml", "x-ms-error-code": code})


def _s3(request: pytest.FixtureRequest) -> Store:
    endpoint = request.getfixturevalue("s3_endpoint")
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")

    def objects() -> dict[str, bytes]:
        keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", [])]
        return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}

    return Store("s3", endpoint, bucket,
                 lambda url, name: {"type": "s3", "bucket": name, "endpoint_url": url, "region": "us-east-1",
                                    "credentials": {"access_key_id": "testing", "secret_access_key": "testing"}},
                 objects, _s3_error(503, "SlowDown", "Please reduce your request rate."),
                 _s3_error(500, "InternalError", "We encountered an internal error. Please try again."),
                 _s3_error(403, "AccessDenied", "Access Denied"))


def _gcs(request: pytest.FixtureRequest) -> Store:
    endpoint = request.getfixturevalue("gcs_endpoint")
    client = request.getfixturevalue("gcs_client")
    bucket = request.getfixturevalue("gcs_bucket")
    return Store("gcs", endpoint, bucket,
                 lambda url, name: {"type": "gcs", "bucket": name, "endpoint": url},
                 # a fresh blob per name: a listed one downloads from its mediaLink, which names the proxy
                 lambda: {b.name: client.bucket(bucket).blob(b.name).download_as_bytes()
                          for b in client.list_blobs(bucket)},
                 _gcs_error(503, "backendError", "Backend Error"), _gcs_error(500, "internalError", "Internal Error"),
                 _gcs_error(403, "forbidden", "caller does not have storage.objects.create access"))


def _azure(request: pytest.FixtureRequest) -> Store:
    connection = request.getfixturevalue("azurite_connection_string")
    service = request.getfixturevalue("azure_service")
    container_name = request.getfixturevalue("azure_container")
    monkeypatch = request.getfixturevalue("monkeypatch")
    target = re.search(r"BlobEndpoint=(http://[^/;]+)", connection)
    assert target is not None

    def connector(url: str, name: str) -> dict[str, Any]:
        # the connection string is a secret: passed as ${ENV}, resolved on the worker; its BlobEndpoint is the proxy
        monkeypatch.setenv("FAULTS_AZURE_CONNECTION", azure_connection_for(url))
        return {"type": "azure_blob", "container": name, "connection_string": "${FAULTS_AZURE_CONNECTION}"}

    def objects() -> dict[str, bytes]:
        container = service.get_container_client(container_name)
        return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}

    return Store("azure", target.group(1), container_name, connector, objects,
                 _azure_error(503, "ServerBusy", "The server is currently unable to receive requests."),
                 _azure_error(500, "InternalError", "The server encountered an internal error."),
                 _azure_error(403, "AuthenticationFailed", "Server failed to authenticate the request."))


@pytest.fixture(params=["s3", "gcs", "azure"])
def store(request: pytest.FixtureRequest) -> Store:
    return {"s3": _s3, "gcs": _gcs, "azure": _azure}[request.param](request)


@pytest.fixture
def proxy(store: Store) -> Iterator[FaultProxy]:
    with FaultProxy(store.target) as fault_proxy:
        yield fault_proxy


# ---------------------------------------------------------------------------------------------------------------------
# Running the job and reading what it did
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class Corpus:
    path: str
    events: list[dict[str, Any]]  # the valid events
    selected: list[dict[str, Any]]  # those the connector selects


def _corpus(tmp_path: Path, count: int = 300, seed: int = 11, events: Optional[str] = None) -> Corpus:
    import fnmatch

    lines, kinds = corpus(count, seed=seed)
    path = write_lines(str(tmp_path / "events.jsonl"), lines)
    valid = valid_events(lines, kinds)
    chosen = [e for e in valid if events is None or fnmatch.fnmatchcase(e["event_type"], events)]
    return Corpus(path, valid, chosen)


def _run(tmp_path: Path, source: str, connector: dict[str, Any], *, hold_minutes: float = 0.5,
         dead: str = "dead", events: Optional[str] = None, **settings: Any) -> RunReport:
    fields = {"id": CONNECTOR, **SHORT, **settings, **connector}
    if events is not None:
        fields["events"] = [events]
    return run(["--runner=DirectRunner", f"--source={source}",
                f"--connectors={json.dumps({'connectors': [fields]})}", f"--dead_letter={tmp_path / dead}",
                f"--bounded_hold_minutes={hold_minutes}"])


def _ids_in(objects: dict[str, bytes]) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for key, data in objects.items():
        records = decode_file(key, data)
        assert records, f"empty object {key}"
        seen.update(record["id"] for record in records)
    return seen


def _lane(report: RunReport) -> dict[str, Any]:
    return report.metrics.get(f"connector.{CONNECTOR}", {})


def _assert_all_once(store: Store, events: list[dict[str, Any]]) -> dict[str, bytes]:
    objects = store.objects()
    seen = _ids_in(objects)
    assert set(seen) == {e["id"] for e in events}, "events missing from the bucket, or foreign ones in it"
    assert set(seen.values()) == {1}, f"events written more than once: {[i for i, n in seen.items() if n > 1][:5]}"
    return objects


def _bucket_level(path: str, bucket: str) -> bool:
    return path.split("?", 1)[0].rstrip("/").endswith(bucket)


def _key_of(request: Request) -> Optional[str]:
    """The object a write is for: the path of an S3/Azure PUT, the `name` of a GCS multipart upload's metadata."""
    if not request.write:
        return None
    if request.method == "PUT":
        return request.path.split("?", 1)[0]
    found = re.search(rb'"name":\s*"([^"]+)"', request.body)
    return found.group(1).decode() if found else request.path


# ---------------------------------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------------------------------

def test_transient_errors_and_resets_leave_every_event_in_the_bucket_once(tmp_path: Path, store: Store,
                                                                         proxy: FaultProxy) -> None:
    data = _corpus(tmp_path)
    proxy.script = combine(burst(range(4, 9), store.unavailable),  # bursts longer than the SDK's 2 attempts
                           burst(range(40, 43), store.internal),
                           burst({19}, store.unavailable), burst({23}, store.internal),  # single ones
                           burst({29}, Reset()),  # reset before the request was forwarded
                           burst({37, 60}, Slow(1)))  # an answer a second late, within the 2 s read timeout
    with watchdog(RUN_BOUND, proxy.release.set) as dog:  # the hold bound is only a ceiling: it ends when all is in
        report = _run(tmp_path, f"file:{data.path}", store.connector(proxy.url, store.bucket), hold_minutes=1)
    assert not dog.fired
    faults = proxy.faults()
    assert faults["answer 503"] == 6 and faults["answer 500"] == 4 and faults["reset"] == 1 and faults["slow"] == 2
    assert dead_letters(str(tmp_path / "dead")) == []
    assert report.exit_code == EXIT_OK
    objects = _assert_all_once(store, data.events)
    lane = _lane(report)
    assert lane["delivered"] == len(data.events)
    assert lane["files_written"] == len(objects)


def test_lost_answers_are_reconciled_and_counted_as_written(tmp_path: Path, store: Store,
                                                            proxy: FaultProxy) -> None:
    data = _corpus(tmp_path)
    chosen: list[str] = []  # every write of these objects loses its answer: the SDK's retries cannot help

    def lose(request: Request) -> Optional[LoseAnswer]:
        key = _key_of(request)
        if key is None:
            return None
        if key not in chosen and len(chosen) < 3:
            chosen.append(key)
        if key in chosen or request.number in (20, 33):  # and two single answers of other writes
            return LoseAnswer()
        return None

    proxy.script = lose
    with watchdog(RUN_BOUND, proxy.release.set) as dog:
        report = _run(tmp_path, f"file:{data.path}", store.connector(proxy.url, store.bucket))
    assert not dog.fired
    assert len(chosen) == 3 and proxy.faults()["lose answer"] >= 3 * 2  # each chosen one: the SDK's 2 attempts
    letters = dead_letters(str(tmp_path / "dead"))
    assert not [d for d in letters if d["reason"] == "write_failed"]
    assert letters == []
    assert report.exit_code == EXIT_OK
    objects = _assert_all_once(store, data.events)
    lane = _lane(report)
    assert lane["files_written"] == len(objects)
    assert lane["delivered"] == sum(len(decode_file(k, v)) for k, v in objects.items()) == len(data.events)
    assert lane["files_reconciled"] >= len(chosen)


def test_a_store_down_for_seconds_is_held_and_delivered_without_dead_letters(tmp_path: Path, store: Store,
                                                                            proxy: FaultProxy) -> None:
    data = _corpus(tmp_path, events=FEW_TYPES)
    outage = down_for(10, Reset())  # from the first request on: connections reset, nothing reaches the store
    proxy.script = outage
    with watchdog(RUN_BOUND, proxy.release.set) as dog:
        report = _run(tmp_path, f"file:{data.path}", store.connector(proxy.url, store.bucket), hold_minutes=0.5,
                      events=FEW_TYPES)
    assert not dog.fired
    assert outage.over and proxy.faults()["reset"] >= 2
    assert dead_letters(str(tmp_path / "dead")) == []
    assert report.exit_code == EXIT_OK
    objects = _assert_all_once(store, data.selected)
    lane = _lane(report)
    assert lane["delivered"] == len(data.selected) and lane["files_written"] == len(objects)
    assert lane["parked_batches"] >= 1  # it was held, not written on the first try


def test_a_store_down_past_the_bounded_hold_expires_and_a_replay_delivers_every_event_once(
        tmp_path: Path, store: Store, proxy: FaultProxy) -> None:
    data = _corpus(tmp_path, events=FEW_TYPES)
    proxy.script = after(4, Reset())  # a few requests go through, then the store is down until the test says
    with watchdog(RUN_BOUND, proxy.release.set) as dog:
        report = _run(tmp_path, f"file:{data.path}", store.connector(proxy.url, store.bucket), hold_minutes=0.1,
                      events=FEW_TYPES)
    assert not dog.fired
    assert report.exit_code == EXIT_DESTINATION
    letters = dead_letters(str(tmp_path / "dead"))
    assert letters and {d["reason"] for d in letters} == {"expired"}
    assert all(d["connector"] == CONNECTOR for d in letters)
    written = _ids_in(store.objects())
    expired = collections.Counter(d["event_id"] for d in letters)
    assert set(expired.values()) == {1} and not set(written) & set(expired)
    assert set(written) | set(expired) == {e["id"] for e in data.selected}  # each event: written or a dead letter

    proxy.script = None  # the store is back: replay the dead letters
    with watchdog(RUN_BOUND, proxy.release.set) as dog:
        replay = _run(tmp_path, f"deadletter:{tmp_path / 'dead'}/**/*.jsonl",
                      store.connector(proxy.url, store.bucket), dead="dead-replay", events=FEW_TYPES)
    assert not dog.fired
    assert replay.exit_code == EXIT_OK
    assert dead_letters(str(tmp_path / "dead-replay")) == []
    _assert_all_once(store, data.selected)


def test_a_hanging_store_does_not_hang_the_run(tmp_path: Path, store: Store, proxy: FaultProxy) -> None:
    data = _corpus(tmp_path, events="users.messages.pushnotification.*")  # 23 events in 5 files
    proxy.script = lambda request: Hang()  # every request: connected, never answered
    with watchdog(RUN_BOUND, proxy.release.set) as dog:
        report = _run(tmp_path, f"file:{data.path}", store.connector(proxy.url, store.bucket), hold_minutes=0.1,
                      events="users.messages.pushnotification.*", read_timeout_seconds=1)
    assert not dog.fired, "the run against a hanging store did not end within its bound"
    assert report.exit_code == EXIT_DESTINATION
    letters = dead_letters(str(tmp_path / "dead"))
    assert {d["reason"] for d in letters} == {"expired"}
    assert sorted(d["event_id"] for d in letters) == sorted(e["id"] for e in data.selected)
    # the job's own requests: object writes and reads (google-cloud-storage also looks the bucket up by itself, on
    # a background thread of its own, which is not the job's and not bounded by the connector's timeouts)
    def own(exchange: Exchange) -> bool:
        return exchange.fault == "hang" and not _bucket_level(exchange.path, store.bucket)

    assert proxy.settled(own), "a request of the job is still held: its client never gave up on it"
    hung = [e for e in proxy.exchanges() if own(e)]
    held_on = [(e.number, e.method, e.path[:80], e.ended and round(e.lifetime)) for e in hung if not e.client_closed]
    assert hung and not held_on, f"requests the client never gave up on: {held_on}"  # the client gave up on each
    # each request given up by the client's read timeout (1 s), connect included: seconds, never the hold's minute
    assert max(e.lifetime for e in hung) < 1 + 1 + 10
    # the last checks before giving up: once the store left one unanswered, the other held files were not asked
    # (each check is the SDK's 2 attempts; one check per held file would be twice the files at least)
    files = len({d["event_type"] for d in letters})
    reads = [e for e in hung if e.method in ("HEAD", "GET")]
    assert len(reads) < 2 * files, f"{len(reads)} checks of {files} held files against a store that never answers"
    assert store.objects() == {}


def test_refused_credentials_are_held_then_credentials_expired(tmp_path: Path, store: Store,
                                                               proxy: FaultProxy) -> None:
    data = _corpus(tmp_path, events=FEW_TYPES)
    proxy.script = lambda request: store.denied
    with watchdog(RUN_BOUND, proxy.release.set) as dog:
        report = _run(tmp_path, f"file:{data.path}", store.connector(proxy.url, store.bucket), hold_minutes=0.1,
                      events=FEW_TYPES)
    assert not dog.fired
    assert report.exit_code == EXIT_DESTINATION
    letters = dead_letters(str(tmp_path / "dead"))
    assert {d["reason"] for d in letters} == {"credentials_expired"}
    assert sorted(d["event_id"] for d in letters) == sorted(e["id"] for e in data.selected)
    assert all("--bounded_hold_minutes" in d["error"] for d in letters)
    writes_tried = [e for e in proxy.exchanges() if e.method in ("PUT", "POST")]
    assert len(writes_tried) >= 3  # the first put, then probes while held: not dropped at once
    assert store.objects() == {}


def test_a_missing_bucket_fails_fast_with_write_failed(tmp_path: Path, store: Store, proxy: FaultProxy) -> None:
    data = _corpus(tmp_path, events=FEW_TYPES)
    missing = f"missing-{store.bucket}"
    with watchdog(RUN_BOUND, proxy.release.set) as dog:
        report = _run(tmp_path, f"file:{data.path}", store.connector(proxy.url, missing), hold_minutes=0.5,
                      events=FEW_TYPES)
    assert not dog.fired
    assert report.exit_code == EXIT_DESTINATION
    letters = dead_letters(str(tmp_path / "dead"))
    assert {d["reason"] for d in letters} == {"write_failed"}
    assert sorted(d["event_id"] for d in letters) == sorted(e["id"] for e in data.selected)
    # at once: each file is tried once and never held, probed or retried
    tried = collections.Counter(_key_of(Request(e.number, e.method, e.path, [], b"x")) for e in proxy.exchanges()
                                if e.method == "PUT")
    if store.kind != "gcs":  # a GCS upload names its object in the body, which the record does not keep
        assert tried and set(tried.values()) == {1}
    assert len([e for e in proxy.exchanges() if e.method in ("PUT", "POST")]) == len(
        {d["event_type"] for d in letters})
    assert _lane(report).get("parked_batches", 0) == 0
