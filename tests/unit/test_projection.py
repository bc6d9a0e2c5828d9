"""Projecting events onto an event type's Avro schema (sinks/storage/projection.py)."""
from __future__ import annotations

from typing import Any

import orjson
import pytest

from sinks.storage.projection import GenericProjector, ProjectionError, Projector, projector_for

SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Send", "namespace": "dataexport.S3.inner.users.messages.email", "schema_id": 1,
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "user_id", "type": "string"},
        {"name": "time", "type": "int"},
        {"name": "sent_at", "type": ["null", "long"], "default": None},
        {"name": "email_address", "type": ["null", "string"], "default": None},
        {"name": "price", "type": ["null", "float"], "default": None},
        {"name": "score", "type": ["null", "double"], "default": None},
        {"name": "is_test", "type": ["null", "boolean"], "default": None},
        {"name": "tags", "type": ["null", {"type": "array", "items": "string"}], "default": None},
        {"name": "counts", "type": {"type": "array", "items": "int"}},
    ],
}

GENERIC: dict[str, Any] = {
    "type": "record", "name": "GenericEvent", "namespace": "dataexport.S3.inner.generic", "schema_id": 1,
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "event_type", "type": "string"},
        {"name": "time", "type": "long"},
        {"name": "user_id", "type": ["null", "string"], "default": None},
        {"name": "external_user_id", "type": ["null", "string"], "default": None},
        {"name": "properties", "type": "string"},
    ],
}


def event(**fields: Any) -> dict[str, Any]:
    base = {"id": "ev-1", "event_type": "users.messages.email.Send", "user_id": "u-1", "time": 1_700_000_000,
            "counts": [1, 2]}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def project(**fields: Any) -> dict[str, Any]:
    return Projector(SCHEMA).project(event(**fields))


def error(**fields: Any) -> str:
    with pytest.raises(ProjectionError) as info:
        project(**fields)
    return str(info.value)


def test_record_has_exactly_the_schema_fields_in_order() -> None:
    record = project(email_address="a@example.com", sent_at=1_700_000_001, is_test=False, tags=["x"])
    assert list(record) == [f["name"] for f in SCHEMA["fields"]]
    assert record == {"id": "ev-1", "user_id": "u-1", "time": 1_700_000_000, "sent_at": 1_700_000_001,
                      "email_address": "a@example.com", "price": None, "score": None, "is_test": False,
                      "tags": ["x"], "counts": [1, 2]}


def test_fields_the_schema_lacks_are_dropped_and_counted() -> None:
    projector = Projector(SCHEMA)
    ev = event(campaign_name="spring", extra_1=1, extra_2=None)
    record = projector.project(ev)
    assert "campaign_name" not in record and "extra_1" not in record and "extra_2" not in record
    assert projector.extra_fields(ev) == 3


def test_event_type_is_not_counted_as_an_extra_field() -> None:
    assert Projector(SCHEMA).extra_fields(event()) == 0


def test_missing_optional_field_becomes_null() -> None:
    record = project()
    assert record["email_address"] is None
    assert record["tags"] is None


def test_explicit_null_in_optional_field_stays_null() -> None:
    assert project(email_address=None)["email_address"] is None


@pytest.mark.parametrize("fields", [{"user_id": ...}, {"user_id": None}], ids=["missing", "null"])
def test_missing_or_null_required_field_names_the_field(fields: dict[str, Any]) -> None:
    assert error(**fields) == "field 'user_id': required, missing or null"


@pytest.mark.parametrize("fields, field", [
    ({"time": "1700000000"}, "time"),  # string for int
    ({"time": True}, "time"),  # bool for int
    ({"time": 2 ** 31}, "time"),  # above int32
    ({"time": -(2 ** 31) - 1}, "time"),  # below int32
    ({"time": 1.5}, "time"),  # float for int
    ({"sent_at": 2 ** 63}, "sent_at"),  # above int64
    ({"is_test": 1.0}, "is_test"),  # float for boolean
    ({"is_test": 1}, "is_test"),  # int for boolean
    ({"is_test": "true"}, "is_test"),  # string for boolean
    ({"email_address": 42}, "email_address"),  # int for string
    ({"price": "9.99"}, "price"),  # string for float
    ({"price": False}, "price"),  # bool for float
    ({"tags": "x"}, "tags"),  # non-list for array
    ({"tags": {"a": 1}}, "tags"),  # dict for array
    ({"tags": ["x", 1]}, "tags"),  # wrong item type
    ({"counts": [1, 2 ** 40]}, "counts"),  # array item out of int32
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_wrong_type_is_a_projection_error_naming_the_field(fields: dict[str, Any], field: str) -> None:
    assert error(**fields).startswith(f"field '{field}': expected")


def test_int32_bounds_are_accepted() -> None:
    assert project(time=2 ** 31 - 1)["time"] == 2 ** 31 - 1
    assert project(time=-(2 ** 31))["time"] == -(2 ** 31)


def test_long_accepts_a_64_bit_value() -> None:
    assert project(sent_at=2 ** 63 - 1)["sent_at"] == 2 ** 63 - 1


@pytest.mark.parametrize("field", ["price", "score"])
def test_int_is_accepted_for_a_floating_field_as_a_float(field: str) -> None:
    value = project(**{field: 3})[field]
    assert value == 3.0 and isinstance(value, float)


def test_float32_maximum_is_accepted_for_a_float_field() -> None:
    assert project(price=3.4e38)["price"] == 3.4e38


@pytest.mark.parametrize("value", [1e39, -1e300, 10 ** 40])
def test_number_beyond_float32_range_is_a_projection_error_for_a_float_field(value: float) -> None:
    assert error(price=value).startswith("field 'price': expected")


def test_double_field_accepts_numbers_beyond_float32_range() -> None:
    assert project(score=1e300)["score"] == 1e300


def test_empty_array_is_kept() -> None:
    assert project(tags=[], counts=[])["tags"] == []


def test_unsupported_schema_type_is_refused_when_the_projector_is_built() -> None:
    schema = {"type": "record", "name": "X", "fields": [{"name": "m", "type": {"type": "map", "values": "string"}}]}
    with pytest.raises(ValueError, match="unsupported"):
        Projector(schema)


# --- generic projector ------------------------------------------------------------------------------------------

def test_generic_projector_keeps_every_non_core_field_in_properties_json() -> None:
    ev = {"id": "ev-1", "event_type": "acme.custom.Thing", "time": 1_700_000_000, "user_id": "u-1",
          "color": "red", "nested": {"a": [1, 2]}, "nothing": None}
    record = GenericProjector(GENERIC).project(ev)
    assert record["id"] == "ev-1"
    assert record["event_type"] == "acme.custom.Thing"
    assert record["time"] == 1_700_000_000
    assert record["user_id"] == "u-1"
    assert record["external_user_id"] is None
    assert orjson.loads(record["properties"]) == {"color": "red", "nested": {"a": [1, 2]}, "nothing": None}
    assert list(record) == [f["name"] for f in GENERIC["fields"]]


def test_generic_projector_with_only_core_fields_has_empty_properties() -> None:
    record = GenericProjector(GENERIC).project({"id": "e", "event_type": "a.B", "time": 1})
    assert record["properties"] == "{}"


def test_generic_projector_counts_no_extra_fields() -> None:
    assert GenericProjector(GENERIC).extra_fields({"id": "e", "event_type": "a.B", "time": 1, "x": 1}) == 0


def test_generic_projector_still_checks_core_field_types() -> None:
    with pytest.raises(ProjectionError, match="field 'time'"):
        GenericProjector(GENERIC).project({"id": "e", "event_type": "a.B", "time": "now"})


def test_projector_for_picks_the_generic_projector_for_unknown_types() -> None:
    assert type(projector_for(GENERIC, generic=True)) is GenericProjector
    assert type(projector_for(SCHEMA, generic=False)) is Projector


# --- the real schemas, when present ------------------------------------------------------------------------------

def test_purchase_schema_projects_a_purchase_event() -> None:
    schemas = pytest.importorskip("sinks.storage.schemas")
    schema = schemas.load_schema("users.behaviors.Purchase")
    if schema is None:
        pytest.skip("users.behaviors.Purchase.avsc not written yet")
    ev = {"id": "p-1", "event_type": "users.behaviors.Purchase", "user_id": "u-1", "time": 1_700_000_000,
          "product_id": "sku-1", "price": 10, "currency": "USD", "properties": "{}", "unknown_field": 1}
    projector = Projector(schema)
    record = projector.project(ev)
    assert record["price"] == 10.0 and record["currency"] == "USD"
    assert record["external_user_id"] is None
    assert projector.extra_fields(ev) == 1


def test_generic_schema_file_works_with_the_generic_projector() -> None:
    schemas = pytest.importorskip("sinks.storage.schemas")
    record = GenericProjector(schemas.generic_schema()).project(
        {"id": "e", "event_type": "a.B", "time": 1, "k": "v"})
    assert orjson.loads(record["properties"]) == {"k": "v"}
