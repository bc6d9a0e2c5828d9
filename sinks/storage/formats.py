"""File formats: each turns a list of projected records of one schema into one complete file.

An encoder is built once per (format, schema) on a worker: fastavro's parsed schema and pyarrow's schema are
compiled there and reused for every file.
"""
from __future__ import annotations

import gzip
import io
from typing import Any, Callable

import fastavro
import orjson

from sinks.storage.avro import ContainerWriter, EncodeEvents
from sinks.storage.projection import ProjectionError, Projector

Encoder = Callable[[list[dict[str, Any]]], bytes]


class FileFormat:
    name: str
    extension: str
    content_type: str

    def encoder(self, schema: dict[str, Any]) -> Encoder:
        """Projected records → one file."""
        raise NotImplementedError

    def events_writer(self, schema: dict[str, Any], projector: Projector) -> EncodeEvents:
        """Events → (one file, the events in it, [(event, why it does not fit the schema)]); b"" when none fit."""
        encode = self.encoder(schema)
        project = projector.project

        def write(events: list[dict[str, Any]]) -> tuple[bytes, list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
            try:  # the common case, in one comprehension: every event fits
                return encode([project(event) for event in events]), events, []
            except ProjectionError:
                pass
            records, written, misfits = [], [], []
            for event in events:
                try:
                    records.append(project(event))
                except ProjectionError as exc:
                    misfits.append((event, str(exc)))
                    continue
                written.append(event)
            return (encode(records) if records else b""), written, misfits

        return write


class Avro(FileFormat):
    """An Avro object container (fastavro), the reference format."""

    name, extension, content_type = "avro", "avro", "avro/binary"

    def __init__(self, codec: str = "null") -> None:
        self._codec = codec

    def events_writer(self, schema: dict[str, Any], projector: Projector) -> EncodeEvents:
        """Projection and encoding fused, per schema (sinks/storage/avro.py): the job's hot path."""
        return ContainerWriter(schema, self._codec, projector)

    def encoder(self, schema: dict[str, Any]) -> Encoder:
        parsed = fastavro.parse_schema(schema)
        codec = self._codec

        def encode(records: list[dict[str, Any]]) -> bytes:
            buffer = io.BytesIO()
            fastavro.writer(buffer, parsed, records, codec=codec, validator=False)
            return buffer.getvalue()

        return encode


_ARROW_CODECS = {"null": "NONE", "deflate": "GZIP", "snappy": "SNAPPY", "zstandard": "ZSTD"}


def arrow_schema(schema: dict[str, Any]):  # noqa: ANN201 - pyarrow is imported lazily
    import pyarrow as pa

    primitives = {"string": pa.string(), "int": pa.int32(), "long": pa.int64(), "float": pa.float32(),
                  "double": pa.float64(), "boolean": pa.bool_()}

    def arrow_type(avro_type: Any) -> tuple[Any, bool]:
        if isinstance(avro_type, str):
            return primitives[avro_type], False
        if isinstance(avro_type, list):
            inner = [t for t in avro_type if t != "null"][0]
            return arrow_type(inner)[0], "null" in avro_type
        if avro_type.get("type") == "array":
            item, item_nullable = arrow_type(avro_type["items"])
            return pa.list_(pa.field("item", item, nullable=item_nullable)), False
        raise ValueError(f"unsupported Avro type {avro_type!r}")

    fields = []
    for field in schema["fields"]:
        typ, nullable = arrow_type(field["type"])
        fields.append(pa.field(field["name"], typ, nullable=nullable))
    return pa.schema(fields, metadata={"avro.schema.name": f"{schema.get('namespace', '')}.{schema['name']}"})


class Parquet(FileFormat):
    """Parquet (pyarrow) with the Avro schema's columns, types and nullability."""

    name, extension, content_type = "parquet", "parquet", "application/vnd.apache.parquet"

    def __init__(self, codec: str = "null") -> None:
        self._codec = _ARROW_CODECS[codec]

    def encoder(self, schema: dict[str, Any]) -> Encoder:
        import pyarrow as pa
        import pyarrow.parquet as pq

        target = arrow_schema(schema)
        codec = self._codec

        def encode(records: list[dict[str, Any]]) -> bytes:
            table = pa.Table.from_pylist(records, schema=target)
            buffer = io.BytesIO()
            pq.write_table(table, buffer, compression=codec)
            return buffer.getvalue()

        return encode


class JsonLines(FileFormat):
    """Gzipped JSON lines of the projected records: easy to eyeball, same content as the Avro files."""

    name, extension, content_type = "jsonl", "jsonl.gz", "application/x-ndjson"

    def encoder(self, schema: dict[str, Any]) -> Encoder:
        def encode(records: list[dict[str, Any]]) -> bytes:
            return gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in records), compresslevel=6, mtime=0)

        return encode


def check_codec(name: str, codec: str) -> None:
    """Fail at launch, not per file, when a codec's library is missing (fastavro loads them lazily)."""
    if name != "avro":
        return
    schema = fastavro.parse_schema({"type": "record", "name": "Probe", "fields": [{"name": "x", "type": "int"}]})
    try:
        fastavro.writer(io.BytesIO(), schema, [{"x": 1}], codec=codec)
    except ValueError as exc:
        raise ValueError(f"codec {codec!r} is not usable here: {exc}") from None


def file_format(name: str, codec: str) -> FileFormat:
    if name == "avro":
        return Avro(codec)
    if name == "parquet":
        return Parquet(codec)
    if name == "jsonl":
        return JsonLines()
    raise ValueError(f"unknown format {name!r}")
