"""`--source=deadletter:GLOB`: dead letters go back through the job, each to the connector that dropped it."""
from __future__ import annotations

import collections
import hashlib
import json

from pipeline.main import run
from tests.corpus import corpus, dead_letters, decode_file, local_objects, valid_events, write_lines


def test_replayed_write_failures_reach_only_their_connector_and_invalid_records_fail_again(tmp_path) -> None:  # noqa: ANN001
    lines, kinds = corpus(400, seed=3, invalid=4)
    source = write_lines(str(tmp_path / "events.jsonl"), lines)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the connector's folder should be")  # every write of connector `b` fails
    config = {"connectors": [
        {"id": "a", "type": "filesystem", "path": str(tmp_path / "a")},
        {"id": "b", "type": "filesystem", "path": str(blocked / "sub"), "field_transforms": {"email_address": "hash"}},
    ]}
    run(["--runner=DirectRunner", f"--source=file:{source}", f"--connectors={json.dumps(config)}",
         f"--dead_letter={tmp_path / 'dead'}"])
    first = collections.Counter((d["reason"], d["connector"]) for d in dead_letters(str(tmp_path / "dead")))
    valid = valid_events(lines, kinds)
    assert first == {("invalid", None): 4, ("write_failed", "b"): len(valid)}

    config["connectors"][1]["path"] = str(tmp_path / "b")  # the folder is fixed; replay
    run(["--runner=DirectRunner", f"--source=deadletter:{tmp_path / 'dead'}/**/*.jsonl",
         f"--connectors={json.dumps(config)}", f"--dead_letter={tmp_path / 'dead2'}"])

    replayed = [r for k, v in local_objects(str(tmp_path / "b")).items() for r in decode_file(k, v)]
    assert sorted(r["id"] for r in replayed) == sorted(e["id"] for e in valid)
    emails = {e["id"]: e.get("email_address") for e in valid}
    for record in replayed:  # hashed once, by the first run, not again by the replay
        if emails[record["id"]]:
            assert record["email_address"] == hashlib.sha256(emails[record["id"]].encode()).hexdigest()
    in_a = [r["id"] for k, v in local_objects(str(tmp_path / "a")).items() for r in decode_file(k, v)]
    assert sorted(in_a) == sorted(e["id"] for e in valid)  # connector a got nothing twice
    second = collections.Counter(d["reason"] for d in dead_letters(str(tmp_path / "dead2")))
    assert second == {"invalid": 4}
