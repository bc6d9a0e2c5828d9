"""The projector's fast path agrees with its careful path on any input: same record, or both refuse."""
from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.storage.projection import ProjectionError, Projector
from sinks.storage.schemas import load_schema

SCHEMA = {"type": "record", "name": "T", "fields": [
    {"name": "id", "type": "string"}, {"name": "n", "type": "int"}, {"name": "big", "type": ["null", "long"]},
    {"name": "f", "type": ["null", "float"]}, {"name": "d", "type": "double"},
    {"name": "b", "type": ["null", "boolean"]},
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
    assert _outcome(projector.project, event) == _outcome(projector._checked, event)  # noqa: SLF001 - the slow path


def test_an_int_for_a_float_field_is_written_as_a_float() -> None:
    event = {"id": "p1", "user_id": "u", "time": 1, "product_id": "sku", "price": 3, "currency": "USD",
             "properties": "{}"}
    record = Projector(load_schema("users.behaviors.Purchase")).project(event)
    assert record["price"] == 3.0 and isinstance(record["price"], float)
