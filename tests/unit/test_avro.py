"""Avro files written straight from events (sinks/storage/avro.py): the same records as projecting each event and
encoding with fastavro, read back with fastavro's reader, for any input; misfits refused exactly as the projector
refuses them."""
from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import placeholder_event
from sinks.storage.avro import BLOCK_BYTES, ContainerWriter, compile_encoder
from sinks.storage.formats import Avro
from sinks.storage.projection import ProjectionError, Projector, projector_for
from sinks.storage.schemas import generic_schema, known_event_types, load_schema

SCHEMA: dict[str, Any] = {"type": "record", "name": "T", "namespace": "test", "fields": [
    {"name": "id", "type": "string"}, {"name": "n", "type": "int"}, {"name": "big", "type": ["null", "long"]},
    {"name": "f", "type": ["null", "float"]}, {"name": "d", "type": "double"},
    {"name": "b", "type": ["null", "boolean"]},
    {"name": "ok", "type": "boolean"}, {"name": "s", "type": ["null", "string"]},
    {"name": "tags", "type": ["null", {"type": "array", "items": "string"}]},
    {"name": "maybe", "type": {"type": "array", "items": ["null", "string"]}}]}
FIELDS = [f["name"] for f in SCHEMA["fields"]]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                   st.floats(allow_nan=False), st.text(max_size=8),
                   st.lists(st.one_of(st.none(), st.text(max_size=3), st.integers()), max_size=3))
BASE: dict[str, Any] = {"id": "x", "n": 0, "d": 0.0, "ok": True, "maybe": []}  # the required fields
# Random fields over a valid event (most write, some are refused), and random dicts (most are refused).
EVENTS = st.one_of(st.dictionaries(st.sampled_from([*FIELDS, "extra"]), VALUES).map(lambda over: {**BASE, **over}),
                   st.dictionaries(st.sampled_from([*FIELDS, "extra"]), VALUES))


def _fastavro_file(schema: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records, sync_marker=b"\x01" * 16)
    return list(fastavro.reader(io.BytesIO(out.getvalue())))


def _read(data: bytes) -> list[dict[str, Any]]:
    return list(fastavro.reader(io.BytesIO(data)))


def _expected(schema: dict[str, Any], events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """What projecting each event and writing the records with fastavro gives: (records read back, refused)."""
    projector, records, refused = Projector(schema), [], []
    for index, event in enumerate(events):
        try:
            records.append(projector.project(event))
        except ProjectionError:
            refused.append(index)
    return (_fastavro_file(schema, records) if records else []), refused


@settings(max_examples=500, deadline=None)
@given(st.lists(EVENTS, max_size=6))
def test_any_events_give_the_records_and_refusals_of_projection_and_fastavro(events: list[dict[str, Any]]) -> None:
    records, refused = _expected(SCHEMA, events)
    data, written, misfits = ContainerWriter(SCHEMA, "null", Projector(SCHEMA))(events)
    assert (_read(data) if data else []) == records
    assert [id(e) for e, _ in misfits] == [id(events[i]) for i in refused]
    assert len(written) + len(misfits) == len(events)


def test_each_writer_has_its_own_random_sync_marker_in_header_and_blocks() -> None:
    events = [dict(BASE, id=f"e{i}") for i in range(5)]
    first, second = (ContainerWriter(SCHEMA, "null", Projector(SCHEMA))(events)[0] for _ in range(2))
    assert first[-16:] != second[-16:] and _read(first) == _read(second)


def test_a_misfit_says_which_field_and_why() -> None:
    _, written, [(event, why)] = ContainerWriter(SCHEMA, "null", Projector(SCHEMA))([{"id": "x", "n": "seven"}])
    assert written == [] and why.startswith("field 'n'")


def test_when_no_event_fits_there_is_no_file() -> None:
    data, written, misfits = ContainerWriter(SCHEMA, "null", Projector(SCHEMA))([{"n": 1}])
    assert data == b"" and written == [] and len(misfits) == 1


def test_an_int_for_a_float_takes_the_careful_path_and_is_written_as_a_float() -> None:
    data, _, _ = ContainerWriter(SCHEMA, "null", Projector(SCHEMA))([dict(BASE, d=3)])
    [record] = _read(data)
    assert record["d"] == 3.0 and isinstance(record["d"], float)


def test_fields_the_schema_lacks_are_left_out_and_the_event_is_not_changed() -> None:
    event = dict(BASE, not_in_schema={"a": 1})
    snapshot = dict(event)
    [record] = _read(ContainerWriter(SCHEMA, "null", Projector(SCHEMA))([event])[0])
    assert "not_in_schema" not in record and event == snapshot


@pytest.mark.parametrize("value", [2 ** 31, -(2 ** 31) - 1])
def test_an_int_outside_32_bits_is_refused(value: int) -> None:
    _, _, [(_, why)] = ContainerWriter(SCHEMA, "null", Projector(SCHEMA))([dict(BASE, n=value)])
    assert "32-bit" in why


@pytest.mark.parametrize("value", [2 ** 63 - 1, -(2 ** 63), 0, -1, 8191, 8192, 16383, 16384, 1_700_000_000_000])
def test_longs_at_the_edges_read_back(value: int) -> None:
    [record] = _read(ContainerWriter(SCHEMA, "null", Projector(SCHEMA))([dict(BASE, big=value)])[0])
    assert record["big"] == value


def test_long_strings_and_arrays_read_back() -> None:
    event = dict(BASE, id="é" * 20_000, tags=[str(i) for i in range(20_000)], maybe=[None, "a"] * 10_000)
    [record] = _read(ContainerWriter(SCHEMA, "null", Projector(SCHEMA))([event])[0])
    assert record["id"] == event["id"] and record["tags"] == event["tags"] and record["maybe"] == event["maybe"]


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy", "zstandard"])
def test_every_codec_reads_back_and_is_named_in_the_header(codec: str) -> None:
    events = [dict(BASE, id=f"e{i}", n=i, d=i / 3, ok=i % 2 == 0, s="x" * (i % 50)) for i in range(3000)]
    data, _, _ = ContainerWriter(SCHEMA, codec, Projector(SCHEMA))(events)
    reader = fastavro.reader(io.BytesIO(data))
    assert reader.codec == codec
    assert list(reader) == _fastavro_file(SCHEMA, [Projector(SCHEMA).project(e) for e in events])


def test_large_files_are_cut_into_blocks_of_about_64_kib() -> None:
    events = [dict(BASE, id=f"e{i}", n=i, s="y" * 200) for i in range(2000)]
    data, _, _ = ContainerWriter(SCHEMA, "null", Projector(SCHEMA))(events)
    blocks = list(fastavro.block_reader(io.BytesIO(data)))
    assert len(blocks) > 1 and sum(b.num_records for b in blocks) == 2000
    assert all(b.size >= BLOCK_BYTES for b in blocks[:-1]) and all(b.size < BLOCK_BYTES + 400 for b in blocks)


def test_the_header_carries_the_schema_as_fastavro_writes_it() -> None:
    data, _, _ = ContainerWriter(SCHEMA, "null", Projector(SCHEMA))([BASE])
    assert fastavro.reader(io.BytesIO(data)).writer_schema == fastavro.reader(
        io.BytesIO(Avro().encoder(SCHEMA)([Projector(SCHEMA).project(BASE)]))).writer_schema


@pytest.mark.parametrize("event_type", known_event_types())
def test_every_catalogue_schema_compiles_and_its_events_read_back(event_type: str) -> None:
    schema = load_schema(event_type)
    event = placeholder_event(event_type)
    data, written, misfits = ContainerWriter(schema, "deflate", Projector(schema))([event, dict(event, id="2")])
    assert not misfits and len(written) == 2
    assert _read(data) == _fastavro_file(schema, [Projector(schema).project(e) for e in written])


def test_unknown_event_types_keep_every_field_in_properties() -> None:
    schema = generic_schema()
    event = {"id": "x", "event_type": "acme.Thing", "time": 5, "user_id": "u", "colour": "red", "n": [1, 2]}
    [record] = _read(ContainerWriter(schema, "null", projector_for(schema, generic=True))([event])[0])
    assert record["id"] == "x" and record["properties"] == '{"colour":"red","n":[1,2]}'


ORJSON_INTS = st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1)  # what orjson reads as an int
GENERIC_EVENTS = st.dictionaries(
    st.sampled_from(["user_id", "external_user_id", "properties", "colour", "n"]),
    st.one_of(st.none(), st.text(max_size=5), ORJSON_INTS, st.lists(ORJSON_INTS, max_size=2))).map(
    lambda extra: {"id": "x", "event_type": "acme.Thing", "time": 5, **extra})


@settings(max_examples=300, deadline=None)
@given(st.lists(GENERIC_EVENTS, max_size=4))
def test_unknown_event_types_give_the_records_of_the_generic_projection(events: list[dict[str, Any]]) -> None:
    schema = generic_schema()
    projector = projector_for(schema, generic=True)
    expected, refused = [], 0
    for event in events:
        try:
            expected.append(projector.project(event))
        except ProjectionError:
            refused += 1
    data, written, misfits = ContainerWriter(schema, "null", projector)(events)
    assert (_read(data) if data else []) == (_fastavro_file(schema, expected) if expected else [])
    assert len(misfits) == refused


def test_an_unknown_types_own_properties_field_is_kept_with_the_others() -> None:
    schema = generic_schema()
    event = {"id": "x", "event_type": "acme.T", "time": 5, "properties": "mine", "colour": "red"}
    [record] = _read(ContainerWriter(schema, "null", projector_for(schema, generic=True))([event])[0])
    assert record["properties"] == '{"properties":"mine","colour":"red"}'


def test_an_unsupported_avro_type_fails_when_compiled_not_when_writing() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        compile_encoder({"type": "record", "name": "M", "fields": [{"name": "m", "type": {"type": "map",
                                                                                          "values": "string"}}]})
