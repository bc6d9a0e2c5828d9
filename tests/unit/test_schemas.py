"""The committed Avro schemas: one per catalogue event type, faithful to the catalogue, loadable by fastavro."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import fastavro
import pytest

from sinks.storage.schemas import generic_schema, known_event_types, load_schema, schema_id
from sinks.storage.schemas._build_from_catalog import build

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = REPO_ROOT / "sinks" / "storage" / "schemas"
CATALOGUE_PATH = REPO_ROOT / "docs" / "reference" / "event-catalog.md"
_LINE = re.compile(r"^- \*\*(?P<type>[^*]+)\*\* \(`(?P<full>[^`]+)`, (?P<count>\d+) fields?\): (?P<fields>.+)$")


def _catalogue() -> dict[str, dict[str, Any]]:
    """{type: {"full": full name, "count": stated field count, "fields": [(name, type spec)]}} from the markdown."""
    entries = {}
    for line in CATALOGUE_PATH.read_text(encoding="utf-8").splitlines():
        match = _LINE.match(line)
        if match:
            fields = [tuple(item.split(":", 1)) for item in match["fields"].split(", ")]
            entries[match["type"]] = {"full": match["full"], "count": int(match["count"]), "fields": fields}
    return entries


CATALOGUE = _catalogue()


@pytest.fixture
def catalogue() -> dict[str, dict[str, Any]]:
    return CATALOGUE


def _spec(avro: Any) -> str:
    """Avro field type -> the catalogue's notation (`?string`, `array<?string>`, ...)."""
    if isinstance(avro, list):
        assert len(avro) == 2 and avro[0] == "null", f"unions are only ['null', T], got {avro}"
        return "?" + _spec(avro[1])
    if isinstance(avro, dict):
        assert avro["type"] == "array", avro
        return f"array<{_spec(avro['items'])}>"
    return avro


def _fields(schema: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["name"], _spec(f["type"])) for f in schema["fields"]]


ALL_TYPES = known_event_types()


def test_schemas_exist_for_exactly_the_catalogue_types(catalogue: dict[str, dict[str, Any]]) -> None:
    assert set(ALL_TYPES) == set(catalogue)


def test_the_generator_reproduces_the_committed_schemas_byte_for_byte(tmp_path: Path) -> None:
    written = build(CATALOGUE_PATH, tmp_path)
    committed = sorted(p.name for p in SCHEMAS_DIR.glob("*.avsc"))
    assert sorted(p.name for p in written) == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (SCHEMAS_DIR / name).read_bytes(), name


def test_known_event_types_are_sorted_and_94() -> None:
    assert ALL_TYPES == tuple(sorted(ALL_TYPES))
    assert len(ALL_TYPES) == 94


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_fastavro_accepts_the_schema(event_type: str) -> None:
    parsed = fastavro.parse_schema(load_schema(event_type))
    assert parsed["name"] == f"dataexport.S3.inner.{event_type}"


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_full_name_matches_catalogue(catalogue: dict[str, dict[str, Any]], event_type: str) -> None:
    schema = load_schema(event_type)
    assert f"{schema['namespace']}.{schema['name']}" == catalogue[event_type]["full"]
    assert schema["name"] == event_type.rsplit(".", 1)[1]
    assert schema["doc"] == event_type


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_field_count_matches_catalogue(catalogue: dict[str, dict[str, Any]], event_type: str) -> None:
    assert len(load_schema(event_type)["fields"]) == catalogue[event_type]["count"]


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_fields_match_catalogue_in_order(catalogue: dict[str, dict[str, Any]], event_type: str) -> None:
    assert _fields(load_schema(event_type)) == catalogue[event_type]["fields"]


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_optional_fields_are_null_unions_defaulting_to_null(event_type: str) -> None:
    for field in load_schema(event_type)["fields"]:
        optional = isinstance(field["type"], list)
        assert ("default" in field) == optional, field
        if optional:
            assert field["type"][0] == "null" and field["default"] is None, field


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_every_schema_starts_at_schema_id_1(event_type: str) -> None:
    assert schema_id(load_schema(event_type)) == 1


def test_custom_event_schema_is_the_documented_one() -> None:
    schema = load_schema("users.behaviors.CustomEvent")
    assert (schema["type"], schema["namespace"], schema["name"]) == (
        "record", "dataexport.S3.inner.users.behaviors", "CustomEvent")
    assert _fields(schema) == [
        ("id", "string"), ("user_id", "string"), ("external_user_id", "?string"), ("app_id", "?string"),
        ("time", "int"), ("timezone", "?string"), ("platform", "?string"), ("os_version", "?string"),
        ("device_model", "?string"), ("device_id", "?string"), ("name", "string"), ("properties", "string"),
        ("ad_id", "?string"), ("ad_id_type", "?string"), ("ad_tracking_enabled", "?boolean"),
        ("app_group_id", "?string"),
    ]


def test_email_send_requires_email_address() -> None:
    schema = load_schema("users.messages.email.Send")
    assert schema["namespace"] == "dataexport.S3.inner.users.messages.email"
    assert dict(_fields(schema))["email_address"] == "string"
    assert len(schema["fields"]) == 22


@pytest.mark.parametrize(("event_type", "time_type"), [
    ("agentconsole.AgentExecuted", "long"),
    ("agentconsole.ToolInvocation", "long"),
    ("users.messages.whatsapp.Send", "long"),
    ("users.messages.whatsapp.Click", "int"),
    ("users.messages.whatsapp.Retry", "int"),
    ("users.behaviors.Purchase", "int"),
])
def test_time_is_int_or_long_per_type(event_type: str, time_type: str) -> None:
    assert dict(_fields(load_schema(event_type)))["time"] == time_type


def test_tool_invocation_has_no_user_id() -> None:
    assert "user_id" not in dict(_fields(load_schema("agentconsole.ToolInvocation")))


def test_array_fields_keep_their_item_optionality() -> None:
    rcs_click = dict(_fields(load_schema("users.messages.rcs.Click")))
    rcs_inbound = dict(_fields(load_schema("users.messages.rcs.InboundReceive")))
    assert rcs_click["suspected_bot_click_reason"] == "?array<string>"
    assert rcs_inbound["media_urls"] == "?array<?string>"
    assert rcs_inbound["user_id"] == "?string"


def test_numeric_types_follow_the_catalogue() -> None:
    location = dict(_fields(load_schema("users.behaviors.Location")))
    token = dict(_fields(load_schema("users.behaviors.pushnotification.TokenStateChange")))
    assert (location["latitude"], location["altitude"]) == ("float", "?float")
    assert (token["time_ms"], token["push_token_created_at"]) == ("?long", "?int")
    assert dict(_fields(load_schema("users.profile.Update")))["time_ms"] == "long"


def test_generic_schema_keeps_every_other_field_as_json() -> None:
    schema = generic_schema()
    fastavro.parse_schema(schema)
    assert (schema["name"], schema["namespace"], schema_id(schema)) == (
        "GenericEvent", "dataexport.S3.inner.generic", 1)
    assert _fields(schema) == [("id", "string"), ("event_type", "string"), ("time", "long"),
                               ("user_id", "?string"), ("external_user_id", "?string"), ("properties", "string")]
    assert "no field is lost" in schema["fields"][-1]["doc"]


@pytest.mark.parametrize("event_type", ["users.messages.email.Nope", "", "_generic", "../schemas/_generic",
                                        "users.behaviors.CustomEvent.avsc", "users.behaviors.customevent"])
def test_unknown_event_type_has_no_schema(event_type: str) -> None:
    assert load_schema(event_type) is None


def test_generic_schema_is_not_an_event_type() -> None:
    assert not any(t.startswith("_") for t in ALL_TYPES)


def test_loaded_schemas_are_cached() -> None:
    assert load_schema("users.behaviors.Purchase") is load_schema("users.behaviors.Purchase")
    assert generic_schema() is generic_schema()


def test_schema_id_survives_fastavro_parsing() -> None:
    assert schema_id(fastavro.parse_schema(load_schema("users.behaviors.Purchase"))) == 1


@pytest.mark.parametrize("bad", [{}, {"schema_id": "1"}, {"schema_id": 0}, {"schema_id": True}])
def test_schema_id_rejects_a_missing_or_malformed_id(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="schema_id"):
        schema_id(bad)
