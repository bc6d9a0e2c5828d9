"""Storage connectors that share a lane (pipeline/lanes.py), run as a whole job on the local runner.

Each member gets the files it would have got alone — its own event selection, its own keys — and its own metrics;
a member whose store refuses the files gets the dead letters, the others are not touched.
"""
from __future__ import annotations

import collections
import json

import orjson
import pytest
from apache_beam.pvalue import TaggedOutput

from examples.receiver import Receiver
from pipeline.cli import placeholder_event
from pipeline.config import parse_config
from pipeline.main import run
from sinks.storage.writer import WriteFiles
from core.records import Batch, BatchKey
from tests.corpus import corpus, dead_letters, decode_file, local_objects, valid_events, write_lines

EMAIL = "users.messages.email."


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("shared")
    lines, kinds = corpus(1500, seed=5)
    source = write_lines(str(tmp / "events.jsonl"), lines)
    (tmp / "blocker").write_bytes(b"a file where a folder should be")
    config = {"connectors": [
        {"id": "lake", "type": "filesystem", "path": str(tmp / "lake"), "max_events_per_file": 50},
        {"id": "mirror", "type": "filesystem", "path": str(tmp / "mirror"), "prefix": "copy",
         "max_events_per_file": 50},
        {"id": "emails", "type": "filesystem", "path": str(tmp / "emails"), "max_events_per_file": 50,
         "events": [f"{EMAIL}*"]},
        {"id": "broken", "type": "filesystem", "path": str(tmp / "blocker" / "out"), "max_events_per_file": 50},
    ]}
    run(["--runner=DirectRunner", f"--source=file:{source}", f"--connectors={json.dumps(config)}",
         f"--dead_letter={tmp / 'dead'}", f"--metrics_out={tmp / 'metrics.json'}"])
    return {"tmp": tmp, "valid": valid_events(lines, kinds), "metrics": json.loads((tmp / "metrics.json").read_bytes()),
            "letters": dead_letters(str(tmp / "dead"))}


def _files(job: dict, folder: str) -> dict[str, bytes]:
    return local_objects(str(job["tmp"] / folder))


def _ids(files: dict[str, bytes]) -> collections.Counter:
    return collections.Counter(r["id"] for key, data in files.items() for r in decode_file(key, data))


def test_each_member_gets_every_event_it_selects_exactly_once(job: dict) -> None:
    everything = {e["id"] for e in job["valid"]}
    emails = {e["id"] for e in job["valid"] if e["event_type"].startswith(EMAIL)}
    for folder, expected in (("lake", everything), ("mirror", everything), ("emails", emails)):
        ids = _ids(_files(job, folder))
        assert set(ids) == expected and set(ids.values()) == {1}, folder


def test_members_get_the_same_file_bytes_under_their_own_keys(job: dict) -> None:
    lake, mirror = _files(job, "lake"), _files(job, "mirror")
    assert all(key.startswith("currents/") for key in lake) and all(key.startswith("copy/") for key in mirror)
    assert sorted(lake.values()) == sorted(mirror.values())


def test_each_member_has_its_own_metrics(job: dict) -> None:
    metrics = job["metrics"]
    n_email = sum(1 for e in job["valid"] if e["event_type"].startswith(EMAIL))
    assert metrics["connector.lake"]["delivered"] == metrics["connector.mirror"]["delivered"] == len(job["valid"])
    assert metrics["connector.emails"]["delivered"] == n_email
    assert metrics["connector.lake"]["files_written"] == len(_files(job, "lake"))
    assert metrics["connector.emails"]["files_written"] == len(_files(job, "emails"))
    assert metrics["connector.lake"]["routed"] == len(job["valid"]) and metrics["connector.emails"]["routed"] == n_email


def test_a_member_whose_store_refuses_gets_the_dead_letters_and_the_others_do_not(job: dict) -> None:
    reasons = collections.Counter((letter["connector"], letter["reason"]) for letter in job["letters"])
    assert reasons == {("broken", "write_failed"): len(job["valid"])}
    assert job["metrics"]["connector.broken"].get("delivered", 0) == 0
    assert {letter["event_id"] for letter in job["letters"]} == {e["id"] for e in job["valid"]}


def test_buffered_events_of_a_connector_no_longer_in_the_lane_become_unroutable_dead_letters(
        tmp_path) -> None:  # noqa: ANN001
    [lake] = parse_config({"connectors": [{"id": "lake", "type": "filesystem", "path": str(tmp_path)}]},
                          environ={}).connectors
    writer = WriteFiles([lake])
    writer.setup()
    event = orjson.dumps({**placeholder_event("users.messages.email.Send"), "id": "e1"})
    key = BatchKey("lake", "users.messages.email.Send", "2026-09-21-13", 0, ("lake", "old"))
    out = list(writer.process(Batch(key, 0,
                                    [(event, len(event))], 7)))
    letters = [o.value for o in out if isinstance(o, TaggedOutput)]
    assert [(d["reason"], d["connector"], d["event_id"]) for d in letters] == [("unroutable", "old", "e1")]
    assert [f.connector for f in out if not isinstance(f, TaggedOutput)] == ["lake"]


def _replay_letters(path) -> None:  # noqa: ANN001
    """Dead letters of e0-e2, dropped by `lake` (to replay to it alone), and e3-e5, dropped before routing (to
    every connector), all of one type and hour."""
    def letter(i: int, connector: str | None, reason: str) -> bytes:
        event = {**placeholder_event("users.messages.email.Send"), "id": f"e{i}", "time": 1_790_000_000}
        return orjson.dumps({"reason": reason, "connector": connector, "payload": orjson.dumps(event).decode()})

    letters = [letter(i, "lake", "write_failed") for i in range(3)] + [letter(i, None, "oversize") for i in range(3, 6)]
    path.write_bytes(b"\n".join(letters) + b"\n")


def test_replays_to_one_member_of_a_shared_lane_never_overwrite_the_lanes_own_files(tmp_path) -> None:  # noqa: ANN001
    _replay_letters(tmp_path / "letters.jsonl")
    config = {"connectors": [{"id": "lake", "type": "filesystem", "path": str(tmp_path / "lake")},
                             {"id": "mirror", "type": "filesystem", "path": str(tmp_path / "mirror")}]}
    run(["--runner=DirectRunner", f"--source=deadletter:{tmp_path / 'letters.jsonl'}",
         f"--connectors={json.dumps(config)}", f"--dead_letter={tmp_path / 'dead'}",
         f"--metrics_out={tmp_path / 'metrics.json'}"])
    assert sorted(_ids(local_objects(str(tmp_path / "lake")))) == [f"e{i}" for i in range(6)]
    assert sorted(_ids(local_objects(str(tmp_path / "mirror")))) == ["e3", "e4", "e5"]
    metrics = json.loads((tmp_path / "metrics.json").read_bytes())
    assert metrics["connector.lake"]["files_written"] == len(local_objects(str(tmp_path / "lake"))) == 2


def test_a_batch_keyed_as_before_lanes_is_written_for_its_one_connector(tmp_path) -> None:  # noqa: ANN001
    [lake] = parse_config({"connectors": [{"id": "lake", "type": "filesystem", "path": str(tmp_path)}]},
                          environ={}).connectors
    writer = WriteFiles([lake])
    writer.setup()
    event = orjson.dumps({**placeholder_event("users.messages.email.Send"), "id": "e1"})
    out = list(writer.process(Batch(("lake", "users.messages.email.Send", "2026-09-21-13", 0), 0,
                                    [(event, len(event))], 7)))
    assert [(f.connector, f.events) for f in out] == [("lake", 1)]


def test_a_storage_lane_and_a_partner_lane_in_one_flow_each_get_what_they_select(tmp_path) -> None:  # noqa: ANN001
    lines, kinds = corpus(800, seed=9)
    source = write_lines(str(tmp_path / "events.jsonl"), lines)
    valid = valid_events(lines, kinds)
    with Receiver("t") as receiver:
        config = {"connectors": [
            {"id": "lake", "type": "filesystem", "path": str(tmp_path / "lake"), "events": ["users.behaviors.*"]},
            {"id": "hook", "type": "http", "endpoint": receiver.url, "token": "t", "events": [f"{EMAIL}*"]}]}
        run(["--runner=DirectRunner", f"--source=file:{source}", f"--connectors={json.dumps(config)}",
             f"--dead_letter={tmp_path / 'dead'}"])
        got = set(receiver.ids)
    assert set(_ids(local_objects(str(tmp_path / "lake")))) == {
        e["id"] for e in valid if e["event_type"].startswith("users.behaviors.")}
    assert got == {e["id"] for e in valid if e["event_type"].startswith(EMAIL)}


def test_replays_in_a_flow_with_a_partner_never_overwrite_the_live_files(tmp_path) -> None:  # noqa: ANN001
    _replay_letters(tmp_path / "letters.jsonl")
    with Receiver("t") as receiver:
        config = {"connectors": [{"id": "lake", "type": "filesystem", "path": str(tmp_path / "lake")},
                                 {"id": "hook", "type": "http", "endpoint": receiver.url, "token": "t"}]}
        run(["--runner=DirectRunner", f"--source=deadletter:{tmp_path / 'letters.jsonl'}",
             f"--connectors={json.dumps(config)}", f"--dead_letter={tmp_path / 'dead'}"])
        got = set(receiver.ids)
    assert sorted(_ids(local_objects(str(tmp_path / "lake")))) == [f"e{i}" for i in range(6)]
    assert got == {"e3", "e4", "e5"}
