"""File formats: each encoder's bytes read back, with an independent reader, as the records given."""
from __future__ import annotations

import gzip
import io
from typing import Any

import fastavro
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sinks.storage.formats import Avro, JsonLines, Parquet, arrow_schema, check_codec, file_format

SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Send", "namespace": "dataexport.S3.inner.users.messages.email", "schema_id": 3,
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "time", "type": "int"},
        {"name": "sent_at", "type": ["null", "long"], "default": None},
        {"name": "price", "type": "float"},
        {"name": "score", "type": ["null", "double"], "default": None},
        {"name": "is_test", "type": ["null", "boolean"], "default": None},
        {"name": "email_address", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}

RECORDS: list[dict[str, Any]] = [
    {"id": "ev-1", "time": 1_700_000_000, "sent_at": 1_700_000_001_000, "price": 1.5, "score": 0.125,
     "is_test": True, "email_address": "zoë@example.com", "tags": ["a", "b"]},
    {"id": "ev-2", "time": -5, "sent_at": None, "price": 0.0, "score": None, "is_test": None,
     "email_address": None, "tags": []},
]

# --- Avro -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["null", "deflate", "snappy", "zstandard"])
def test_avro_reads_back_as_the_records(codec: str) -> None:
    data = Avro(codec).encoder(SCHEMA)(RECORDS)
    reader = fastavro.reader(io.BytesIO(data))
    assert list(reader) == RECORDS
    assert reader.codec == codec


def test_avro_file_carries_the_schema_name_and_namespace() -> None:
    reader = fastavro.reader(io.BytesIO(Avro().encoder(SCHEMA)(RECORDS)))
    assert reader.writer_schema["name"] == "dataexport.S3.inner.users.messages.email.Send"
    assert [f["name"] for f in reader.writer_schema["fields"]] == [f["name"] for f in SCHEMA["fields"]]


def test_avro_encoder_is_reusable_for_many_files() -> None:
    encode = Avro("deflate").encoder(SCHEMA)
    first, second = encode(RECORDS[:1]), encode(RECORDS[1:])
    assert list(fastavro.reader(io.BytesIO(first))) == RECORDS[:1]
    assert list(fastavro.reader(io.BytesIO(second))) == RECORDS[1:]


def test_avro_is_a_complete_object_container() -> None:
    data = Avro().encoder(SCHEMA)(RECORDS)
    assert data[:4] == b"Obj\x01"


# --- Parquet ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec, parquet_codec", [("null", "UNCOMPRESSED"), ("deflate", "GZIP"),
                                                  ("snappy", "SNAPPY"), ("zstandard", "ZSTD")])
def test_parquet_reads_back_as_the_records(codec: str, parquet_codec: str) -> None:
    data = Parquet(codec).encoder(SCHEMA)(RECORDS)
    assert pq.read_table(io.BytesIO(data)).to_pylist() == RECORDS
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    assert metadata.row_group(0).column(0).compression == parquet_codec


def test_parquet_columns_have_the_avro_types_and_nullability() -> None:
    schema = pq.read_schema(io.BytesIO(Parquet().encoder(SCHEMA)(RECORDS)))
    assert schema.names == [f["name"] for f in SCHEMA["fields"]]
    expected = {
        "id": (pa.string(), False), "time": (pa.int32(), False), "sent_at": (pa.int64(), True),
        "price": (pa.float32(), False), "score": (pa.float64(), True), "is_test": (pa.bool_(), True),
        "email_address": (pa.string(), True),
    }
    for name, (typ, nullable) in expected.items():
        assert (schema.field(name).type, schema.field(name).nullable) == (typ, nullable), name
    tags = schema.field("tags")
    assert pa.types.is_list(tags.type) and tags.type.value_type == pa.string()
    assert tags.nullable is False and tags.type.value_field.nullable is False


def test_arrow_schema_records_the_avro_full_name() -> None:
    assert arrow_schema(SCHEMA).metadata == {b"avro.schema.name": b"dataexport.S3.inner.users.messages.email.Send"}


# --- JSON lines -------------------------------------------------------------------------------------------------

def test_jsonl_gunzips_to_one_record_per_line() -> None:
    data = JsonLines().encoder(SCHEMA)(RECORDS)
    lines = gzip.decompress(data).splitlines()
    assert [orjson.loads(line) for line in lines] == RECORDS


def test_jsonl_output_is_deterministic() -> None:
    encode = JsonLines().encoder(SCHEMA)
    assert encode(RECORDS) == encode(RECORDS)


# --- choosing a format ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls, extension", [("avro", Avro, "avro"), ("parquet", Parquet, "parquet"),
                                                  ("jsonl", JsonLines, "jsonl.gz")])
def test_file_format_by_name(name: str, cls: type, extension: str) -> None:
    fmt = file_format(name, "null")
    assert isinstance(fmt, cls)
    assert fmt.extension == extension


def test_unknown_format_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format 'csv'"):
        file_format("csv", "null")


# --- launch-time codec check ------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["null", "deflate", "snappy", "zstandard"])
def test_every_configurable_avro_codec_is_usable_here(codec: str) -> None:
    check_codec("avro", codec)


def test_unusable_avro_codec_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="codec 'lz4-nope' is not usable"):
        check_codec("avro", "lz4-nope")


def test_codec_check_ignores_non_avro_formats() -> None:
    check_codec("parquet", "zstandard")
    check_codec("jsonl", "null")
