"""`currents validate` and `currents test-events` against real stores and a partner stand-in."""
from __future__ import annotations

import json

import pytest

from pipeline.cli import main, placeholder_event
from sinks.storage.projection import Projector
from sinks.storage.schemas import known_event_types, load_schema
from tests.corpus import decode_file, local_objects
from tests.partner_standins import StandIn


def _config(tmp_path, *connectors: dict) -> str:  # noqa: ANN001
    path = tmp_path / "connectors.json"
    path.write_text(json.dumps({"connectors": list(connectors)}))
    return str(path)


def test_validate_prints_one_row_per_connector_without_secrets(tmp_path, capsys) -> None:  # noqa: ANN001
    config = _config(tmp_path,
                     {"id": "lake", "type": "s3", "bucket": "my-bucket", "events": ["users.messages.email.*"],
                      "credentials": {"access_key_id": "AKIASECRET", "secret_access_key": "TOPSECRET"}},
                     {"id": "amp", "type": "amplitude", "api_key": "AMPSECRET", "region": "eu"})
    assert main(["validate", "--connectors", config]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 3 and lines[0].split()[:3] == ["id", "type", "destination"]
    assert "s3://my-bucket/currents" in lines[1] and "11 types (users.messages.email.*)" in lines[1]
    assert "15000 events" in lines[1] and "https://api.eu.amplitude.com/2/httpapi" in lines[2]
    assert "SECRET" not in out


def test_validate_of_a_bad_config_exits_2_naming_connector_and_field(tmp_path, capsys) -> None:  # noqa: ANN001
    config = _config(tmp_path, {"id": "lake", "type": "gcs"})
    assert main(["validate", "--connectors", config]) == 2
    err = capsys.readouterr().err
    assert "connector 'lake'" in err and "field 'bucket'" in err


def test_placeholder_events_fit_their_schema() -> None:
    for event_type in known_event_types():
        Projector(load_schema(event_type)).project(placeholder_event(event_type))


def test_test_events_sends_one_event_per_selected_type_to_a_partner(tmp_path, capsys) -> None:  # noqa: ANN001
    with StandIn("http", token="t0k") as standin:
        config = _config(tmp_path, {"id": "hook", "type": "http", "endpoint": standin.url, "token": "t0k",
                                    "events": ["users.messages.sms.*"]})
        assert main(["test-events", "--connectors", config]) == 0
        types = sorted(e["event_type"] for e in standin.accepted)
        assert standin.violations == []
    assert types == sorted(t for t in known_event_types() if t.startswith("users.messages.sms."))
    assert "hook (http): ok" in capsys.readouterr().out


def test_test_events_reports_refused_credentials(tmp_path, capsys) -> None:  # noqa: ANN001
    with StandIn("segment", write_key="right") as standin:
        config = _config(tmp_path, {"id": "seg", "type": "segment", "endpoint": standin.url, "write_key": "wrong",
                                    "retry_attempts": 1})
        assert main(["test-events", "--connectors", config]) == 1
    out = capsys.readouterr().out
    assert "seg (segment): FAILED" in out and "401" in out


def test_test_events_writes_one_file_per_selected_type_to_storage(tmp_path, capsys) -> None:  # noqa: ANN001
    config = _config(tmp_path, {"id": "lake", "type": "filesystem", "path": str(tmp_path / "out"),
                                "events": ["users.behaviors.*"]})
    assert main(["test-events", "--connectors", config, "--connector", "lake"]) == 0
    files = local_objects(str(tmp_path / "out"))
    assert len(files) == len([t for t in known_event_types() if t.startswith("users.behaviors.")])
    assert all(len(decode_file(k, v)) == 1 for k, v in files.items())
    assert "lake (filesystem): ok" in capsys.readouterr().out


def test_test_events_to_s3_on_moto(tmp_path, capsys, s3_endpoint, s3_client, s3_bucket) -> None:  # noqa: ANN001
    config = _config(tmp_path, {"id": "lake", "type": "s3", "bucket": s3_bucket, "endpoint_url": s3_endpoint,
                                "region": "us-east-1", "events": ["users.canvas.*"],
                                "credentials": {"access_key_id": "testing", "secret_access_key": "testing"}})
    assert main(["test-events", "--connectors", config]) == 0
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert len(keys) == len([t for t in known_event_types() if t.startswith("users.canvas.")])


def test_test_events_for_an_unknown_connector_id_exits_2(tmp_path, capsys) -> None:  # noqa: ANN001
    config = _config(tmp_path, {"id": "lake", "type": "filesystem", "path": str(tmp_path / "out")})
    assert main(["test-events", "--connectors", config, "--connector", "nope"]) == 2
    assert "no connector with id 'nope'" in capsys.readouterr().err


def test_a_command_without_connectors_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate"])
    assert exit_info.value.code == 2
