"""The projector's fast path agrees with its careful path on any input: same record, or both refuse."""
from __future__ import annotations

import io
from typing import Any

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.storage.formats import Avro
from sinks.storage.projection import ProjectionError, Projector
from sinks.storage.schemas import load_schema

SCHEMA = {"type": "record", "name": "T", "fields": [
    {"name": "id", "type": "string"}, {"name": "n", "type": "int"}, {"name": "big", "type": ["null", "long"]},
    {"name": "f", "type": ["null", "float"]}, {"name": "d", "type": "double"}, {"name": "b", "type": ["null", "boolean"]},
    {"name": "tags", "type": ["null", {"type": "array", "items": "string"}]}]}
VALUES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                   st.floats(allow_nan=False), st.text(max_size=5), st.lists(st.text(max_size=3), max_size=3))


def _outcome(fn: Any, event: dict[str, Any]) -> Any:
    try:
        return fn(event)
    except ProjectionError:
        return "refused"


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "n", "big", "f", "d", "b", "tags", "extra"]), VALUES))
def test_fast_and_careful_paths_agree(event: dict[str, Any]) -> None:
    projector = Projector(SCHEMA)
    assert _outcome(projector.project, event) == _outcome(projector._checked, event)


def test_an_int_for_a_float_field_is_written_as_a_float() -> None:
    event = {"id": "p1", "user_id": "u", "time": 1, "product_id": "sku", "price": 3, "currency": "USD",
             "properties": "{}"}
    record = Projector(load_schema("users.behaviors.Purchase")).project(event)
    assert record["price"] == 3.0 and isinstance(record["price"], float)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "n", "big", "f", "d", "b", "tags", "extra"]), VALUES))
def test_an_avro_file_of_uncopied_records_is_the_file_of_copied_records(event: dict[str, Any]) -> None:
    copied, uncopied = Projector(SCHEMA), Projector(SCHEMA, copy=False)
    if _outcome(copied.project, event) == "refused":
        assert _outcome(uncopied.project, event) == "refused"
        return
    encode = Avro().encoder(SCHEMA)

    def decoded(record: dict[str, Any]) -> list[dict[str, Any]]:
        return list(fastavro.reader(io.BytesIO(encode([record]))))

    assert decoded(uncopied.project(event)) == decoded(copied.project(event))


def test_without_copy_an_event_that_fits_is_its_own_record_and_is_not_changed() -> None:
    event = {"id": "e", "n": 1, "d": 2.0, "extra": "kept"}
    snapshot = dict(event)
    assert Projector(SCHEMA, copy=False).project(event) is event and event == snapshot


def test_without_copy_an_event_that_needs_converting_gets_a_new_record() -> None:
    event = {"id": "e", "n": 1, "d": 2}  # an int for a double
    record = Projector(SCHEMA, copy=False).project(event)
    assert record is not event and record["d"] == 2.0 and event["d"] == 2
