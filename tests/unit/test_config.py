"""Connector config (docs/contract.md, README "Connector config"): validation messages, ${ENV} handling, secrets,
loading and event selection."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipeline.config import ConfigError, dumps_public, load_config, parse_config
from sinks.storage.stores import AzureBlobConnector, FilesystemConnector, GCSConnector, S3Connector


def s3(**fields: Any) -> dict[str, Any]:
    return {"id": "warehouse", "type": "s3", "bucket": "my-bucket", **fields}


def config_error(*connectors: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({"connectors": list(connectors)}, environ={} if environ is None else environ)
    return str(info.value)


def one(connector: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    config = parse_config({"connectors": [connector]}, environ={} if environ is None else environ)
    return config.connectors[0]


# --- each kind of bad config names the connector and the field -------------------------------------------------

def test_unknown_type_is_rejected_naming_the_connector_and_the_allowed_types() -> None:
    message = config_error({"id": "warehouse", "type": "ftp"})
    assert "connector 'warehouse' (connectors[0])" in message
    assert "unknown type 'ftp'" in message
    assert "s3" in message and "azure_blob" in message


def test_missing_type_is_rejected_naming_the_connector() -> None:
    message = config_error({"id": "warehouse", "bucket": "my-bucket"})
    assert "connector 'warehouse' (connectors[0])" in message
    assert "missing 'type'" in message


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_bucket_store_without_bucket_is_rejected_naming_the_field(kind: str) -> None:
    message = config_error({"id": "lake", "type": kind})
    assert "connector 'lake' (connectors[0]): field 'bucket': Field required" in message


def test_azure_blob_without_container_is_rejected_naming_the_field() -> None:
    message = config_error({"id": "az", "type": "azure_blob", "connection_string": "${AZ}"})
    assert "connector 'az' (connectors[0]): field 'container': Field required" in message


def test_azure_blob_without_any_auth_is_rejected_naming_the_auth_fields() -> None:
    message = config_error({"id": "az", "type": "azure_blob", "container": "exports"})
    assert "connector 'az' (connectors[0])" in message
    assert "connection_string" in message and "account_key" in message and "sas_token" in message


def test_azure_blob_account_name_without_key_or_sas_is_rejected() -> None:
    message = config_error({"id": "az", "type": "azure_blob", "container": "exports", "account_name": "acct"})
    assert "connector 'az' (connectors[0])" in message
    assert "account_key or sas_token" in message


@pytest.mark.parametrize("auth", [
    {"connection_string": "UseDevelopmentStorage=true"},
    {"account_name": "acct", "account_key": "secret:gcp:projects/p/secrets/azure-key"},
    {"account_url": "https://acct.blob.core.windows.net", "sas_token": "secret:gcp:projects/p/secrets/sas"},
])
def test_azure_blob_accepts_each_auth_form(auth: dict[str, str]) -> None:
    connector = one({"id": "az", "type": "azure_blob", "container": "exports", **auth})
    assert isinstance(connector, AzureBlobConnector)
    assert connector.connection_type == "AzureBlob"


@pytest.mark.parametrize("pattern, problem", [
    ("users.messages.[ab", "unbalanced brackets"),
    ("users.messages.ab]", "unbalanced brackets"),
    ("users.[[ab]]", "unbalanced brackets"),
    ("", "bad glob ''"),
    ("users.messages.email Send", "bad glob 'users.messages.email Send'"),
    ("users/messages/*", "bad glob 'users/messages/*'"),
])
def test_bad_glob_is_rejected_naming_the_events_field(pattern: str, problem: str) -> None:
    message = config_error(s3(events=["users.behaviors.*", pattern]))
    assert "connector 'warehouse' (connectors[0]): field 'events'" in message
    assert problem in message


def test_empty_events_list_is_rejected_because_it_selects_nothing() -> None:
    message = config_error(s3(events=[]))
    assert "connector 'warehouse' (connectors[0]): field 'events'" in message
    assert "selects nothing" in message


def test_duplicate_connector_id_is_rejected_naming_both_positions() -> None:
    message = config_error(s3(), {"id": "other", "type": "gcs", "bucket": "b-1"},
                           {"id": "warehouse", "type": "filesystem", "path": "/tmp/x"})
    assert "connector 'warehouse' (connectors[2])" in message
    assert "field 'id'" in message
    assert "duplicate id (also connectors[0])" in message


def test_unknown_field_typo_is_rejected_naming_the_typo() -> None:
    message = config_error({"id": "warehouse", "type": "s3", "buket": "my-bucket"})
    assert "connector 'warehouse' (connectors[0]): field 'buket': unknown field" in message
    assert "field 'bucket': Field required" in message


def test_unknown_field_inside_credentials_is_rejected_with_its_dotted_path() -> None:
    message = config_error(s3(credentials={"access_key_id": "a", "secret_access_key": "b", "token": "c"}))
    assert "connector 'warehouse' (connectors[0]): field 'credentials.token': unknown field" in message


@pytest.mark.parametrize("bad_id", ["my id", "-leading-dash", "a/b", "x" * 65, ""])
def test_bad_id_characters_are_rejected_naming_the_id_field(bad_id: str) -> None:
    message = config_error(s3(id=bad_id))
    assert "connectors[0]" in message
    assert "field 'id'" in message


def test_max_events_per_file_over_100000_is_rejected() -> None:
    message = config_error(s3(max_events_per_file=100_001))
    assert "connector 'warehouse' (connectors[0]): field 'max_events_per_file'" in message
    assert "100000" in message


def test_max_events_per_file_of_100000_is_accepted() -> None:
    assert one(s3(max_events_per_file=100_000)).max_events_per_file == 100_000


def test_second_connector_problem_names_the_second_connector() -> None:
    message = config_error(s3(), {"id": "lake", "type": "gcs", "bucket": "b-1", "format": "csv"})
    assert "connector 'lake' (connectors[1]): field 'format'" in message
    assert "warehouse" not in message


def test_empty_connector_list_is_rejected() -> None:
    with pytest.raises(ConfigError, match="connectors"):
        parse_config({"connectors": []}, environ={})


# --- ${ENV} in non-secret fields --------------------------------------------------------------------------------

def test_unset_env_in_non_secret_field_is_rejected_naming_connector_field_and_variable() -> None:
    message = config_error(s3(prefix="${EXPORT_PREFIX}/currents"), environ={})
    assert "connector 'warehouse' (connectors[0])" in message
    assert "field 'prefix'" in message
    assert "EXPORT_PREFIX is not set" in message


def test_env_in_non_secret_field_is_substituted_at_load() -> None:
    connector = one(s3(prefix="${TEAM}/currents"), environ={"TEAM": "growth"})
    assert connector.prefix == "growth/currents"


def test_unset_env_in_a_patterned_field_names_the_field() -> None:
    message = config_error(s3(bucket="${BUCKET}"), environ={})
    assert "connector 'warehouse' (connectors[0]): field 'bucket'" in message
    assert "BUCKET is not set" in message


def test_env_value_that_breaks_the_pattern_is_rejected_naming_the_field() -> None:
    message = config_error(s3(bucket="${BUCKET}"), environ={"BUCKET": "Not A Bucket"})
    assert "connector 'warehouse' (connectors[0]): field 'bucket'" in message


def test_env_in_filesystem_path_is_substituted_at_load() -> None:
    connector = one({"id": "local", "type": "filesystem", "path": "${OUT}/exports"}, environ={"OUT": "/data"})
    assert isinstance(connector, FilesystemConnector)
    assert connector.path == "/data/exports"


def test_env_in_patterned_field_is_substituted_before_the_pattern_check() -> None:
    connector = one(s3(bucket="${BUCKET}", endpoint_url="${S3_ENDPOINT}"),
                    environ={"BUCKET": "my-bucket", "S3_ENDPOINT": "http://127.0.0.1:9000"})
    assert connector.bucket == "my-bucket"
    assert connector.endpoint_url == "http://127.0.0.1:9000"


# --- secrets stay references until a worker resolves them -----------------------------------------------------

def test_secret_fields_keep_env_and_gcp_references_unresolved_after_load() -> None:
    gcp_ref = "secret:gcp:projects/p/secrets/aws-secret/versions/3"
    connector = one(s3(credentials={"access_key_id": "${AWS_ACCESS_KEY_ID}", "secret_access_key": gcp_ref}),
                    environ={})  # the variable is deliberately unset at launch: only the worker needs it
    assert isinstance(connector, S3Connector)
    assert connector.credentials.access_key_id == "${AWS_ACCESS_KEY_ID}"
    assert connector.credentials.secret_access_key == gcp_ref


def test_gcs_service_account_secret_keeps_its_reference() -> None:
    connector = one({"id": "lake", "type": "gcs", "bucket": "b-1",
                     "credentials": {"service_account_json": "${SA_JSON}"}}, environ={"SA_JSON": "{}"})
    assert isinstance(connector, GCSConnector)
    assert connector.credentials.service_account_json == "${SA_JSON}"


@pytest.mark.parametrize("connector", [
    s3(credentials={"access_key_id": "a", "secret_access_key": "b", "session_token": "${AWS_SESSION_TOKEN}"}),
    {"id": "az", "type": "azure_blob", "container": "exports", "connection_string": "${AZ_CONN}"},
    {"id": "az", "type": "azure_blob", "container": "exports", "account_name": "acct", "account_key": "${AZ_KEY}"},
    {"id": "az", "type": "azure_blob", "container": "exports", "account_name": "acct", "sas_token": "${AZ_SAS}"},
], ids=["s3.session_token", "azure.connection_string", "azure.account_key", "azure.sas_token"])
def test_optional_secret_fields_keep_env_references_unresolved_after_load(connector: dict[str, Any]) -> None:
    loaded = one(connector, environ={})  # unset at launch: only the worker resolves it
    dumped = orjson.dumps(loaded.model_dump()).decode()
    reference = next(v for v in orjson.dumps(connector).decode().split('"') if v.startswith("${"))
    assert reference in dumped


def test_dumps_public_masks_secret_fields() -> None:
    connector = one(s3(credentials={"access_key_id": "AKIAREALKEY",
                                    "secret_access_key": "secret:gcp:projects/p/secrets/s"}))
    public = orjson.loads(dumps_public(connector))
    assert public["credentials"] == {"access_key_id": "***", "secret_access_key": "***", "session_token": None}
    assert public["bucket"] == "my-bucket"
    assert public["id"] == "warehouse"
    assert b"AKIAREALKEY" not in dumps_public(connector)


def test_dumps_public_masks_optional_secret_fields() -> None:
    connector = one({"id": "az", "type": "azure_blob", "container": "exports",
                     "connection_string": "AccountName=a;AccountKey=TOPSECRET", "sas_token": "sv=TOPSECRET"})
    public = dumps_public(connector)
    assert b"TOPSECRET" not in public
    assert orjson.loads(public)["connection_string"] == "***"


# --- loading ----------------------------------------------------------------------------------------------------

YAML_DOC = """\
connectors:
  - id: warehouse
    type: s3
    bucket: my-bucket
    prefix: currents
    events: ["users.messages.*", "users.behaviors.CustomEvent"]
    format: avro
    flush_seconds: 300
    max_events_per_file: 15000
    field_transforms: {email_address: hash, phone_number: remove}
  - id: local
    type: filesystem
    path: /tmp/out
"""


def test_loads_a_yaml_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "connectors.yaml"
    path.write_text(YAML_DOC)
    config = load_config(str(path), environ={})
    assert [c.id for c in config.connectors] == ["warehouse", "local"]
    warehouse = config.connector("warehouse")
    assert warehouse.events == ["users.messages.*", "users.behaviors.CustomEvent"]
    assert dict(warehouse.field_transforms) == {"email_address": "hash", "phone_number": "remove"}
    assert warehouse.batch_limits().max_count == 15000
    assert warehouse.batch_limits().flush_seconds == 300


def test_loads_inline_json() -> None:
    inline = json.dumps({"connectors": [s3()]})
    config = load_config(inline, environ={})
    assert config.connectors[0].id == "warehouse"
    assert config.connectors[0].destination() == "s3://my-bucket/currents"


def test_loads_a_bare_yaml_list_file(tmp_path: Path) -> None:
    path = tmp_path / "connectors.yml"
    path.write_text("- id: local\n  type: filesystem\n  path: /tmp/out\n")
    config = load_config(str(path), environ={})
    assert [c.id for c in config.connectors] == ["local"]


def test_loads_an_inline_json_list() -> None:
    config = load_config(json.dumps([s3()]), environ={})
    assert config.connectors[0].id == "warehouse"


def test_missing_file_is_a_config_error_naming_the_option_and_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(missing, environ={})
    assert "--connectors" in str(info.value)
    assert "nope.yaml" in str(info.value)


def test_empty_connectors_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--connectors is required"):
        load_config("  ", environ={})


def test_malformed_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("connectors: [\n")
    with pytest.raises(ConfigError, match="not valid YAML/JSON"):
        load_config(str(path), environ={})


def test_document_that_is_not_a_mapping_or_list_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "scalar.yaml"
    path.write_text("just a string\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(str(path), environ={})


def test_defaults_apply_when_fields_are_omitted() -> None:
    connector = one(s3())
    assert (connector.prefix, connector.format, connector.codec) == ("currents", "avro", "null")
    assert (connector.max_events_per_file, connector.flush_seconds, connector.shards) == (15000, 300, 1)
    assert connector.events is None


def test_prefix_slashes_are_trimmed() -> None:
    assert one(s3(prefix="/exports/currents/")).prefix == "exports/currents"


def test_prefix_with_dot_dot_segment_is_rejected() -> None:
    message = config_error(s3(prefix="exports/../etc"))
    assert "field 'prefix'" in message


# --- event selection --------------------------------------------------------------------------------------------

def selector(*patterns: str) -> Any:
    return one(s3(events=list(patterns)))


@pytest.mark.parametrize("pattern, event_type, selected", [
    ("users.messages.*", "users.messages.email.Send", True),
    ("users.messages.*", "users.behaviors.CustomEvent", False),
    ("users.messages.email.?end", "users.messages.email.Send", True),
    ("users.messages.email.?end", "users.messages.email.Spend", False),
    ("users.messages.[es]*.Send", "users.messages.email.Send", True),
    ("users.messages.[es]*.Send", "users.messages.sms.Send", True),
    ("users.messages.[es]*.Send", "users.messages.webhook.Send", False),
    ("users.messages.[!e]*.Send", "users.messages.email.Send", False),
    ("users.behaviors.CustomEvent", "users.behaviors.CustomEvent", True),
    ("users.behaviors.CustomEvent", "users.behaviors.CustomEventX", False),
])
def test_glob_selects_event_types(pattern: str, event_type: str, selected: bool) -> None:
    assert selector(pattern).selects(event_type) is selected


def test_pattern_must_match_the_whole_type_from_the_start() -> None:
    assert selector("users.messages.*").selects("xusers.messages.email.Send") is False


def test_any_of_several_patterns_selects() -> None:
    connector = selector("users.messages.email.*", "users.behaviors.CustomEvent")
    assert connector.selects("users.messages.email.Open")
    assert connector.selects("users.behaviors.CustomEvent")
    assert not connector.selects("users.messages.sms.Send")


def test_omitted_events_selects_every_type() -> None:
    connector = one(s3())
    assert connector.selects("users.messages.email.Send")
    assert connector.selects("anything.at.All")


# --- filesystem connector ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["s3://bucket/out", "gs://bucket/out", "azfs://acct/container/out"])
def test_filesystem_path_must_be_a_local_folder(path: str) -> None:
    message = config_error({"id": "local", "type": "filesystem", "path": path})
    assert "connector 'local' (connectors[0]): field 'path'" in message
    assert "not a local folder" in message


@pytest.mark.parametrize("path", ["/tmp/out", "out/relative", "file:///tmp/out"])
def test_filesystem_path_accepts_local_folders(path: str) -> None:
    assert one({"id": "local", "type": "filesystem", "path": path}).path == path


def test_filesystem_path_must_not_be_empty() -> None:
    assert "field 'path'" in config_error({"id": "local", "type": "filesystem", "path": ""})
