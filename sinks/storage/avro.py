"""Avro object container files, written straight from events: projection and encoding in one pass.

fastavro is general: for every record it looks up each field, and for every nullable field it tries the union's
branches one by one with its validator, after our projector has already checked and copied every value. Here each
schema is compiled once into a Python function that reads every field of the event once, checks its exact type
(and range) and appends its Avro encoding — the checks of the projector's fast path and the encoding, fused. An
event that does not pass (an int for a float, an out-of-range value, a missing required field, a subclass) takes
the projector's careful path, which converts it or refuses it with the field named, and is encoded by fastavro.
Both paths write the same bytes for the same record; `tests/unit/test_avro.py` holds them to it.

The container (header, blocks of about 64 KiB, codecs) follows the Avro 1.11 specification; the header, with the
schema as fastavro writes it, comes from fastavro itself.
"""
from __future__ import annotations

import io
import json
import os
import struct
import sys
import zlib
from functools import lru_cache
from typing import Any, Callable

import fastavro

from sinks.storage.projection import _FLOAT32_MAX, ProjectionError, Projector

BLOCK_BYTES = 64 * 1024  # a block is closed once its records reach this size: readers can split and stream files
_TABLE = 1 << 14
EncodeEvents = Callable[[list[dict[str, Any]]], tuple[bytes, list[dict[str, Any]], list[tuple[dict[str, Any], str]]]]


class _Slow(Exception):
    """The event is not a record of exact types: the careful path decides."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Zigzag varints of small non-negative numbers (lengths, counts, small ints), looked up instead of computed.
_SMALL = [_varint(n << 1) for n in range(_TABLE)]


def _long(n: int) -> bytes:
    """An Avro int/long: zigzag, then a varint."""
    if 0 <= n < _TABLE:
        return _SMALL[n]
    return _varint((n << 1) ^ (n >> 63))


class _Longs:
    """Encodings of the larger ints an encoder meets, remembered: event times repeat from event to event (a
    second holds many events), and a varint costs a Python loop. Bounded: cleared when it fills."""

    def __init__(self, size: int = 1 << 16) -> None:
        self._size = size
        self._known: dict[int, bytes] = {}

    def __call__(self, n: int) -> bytes:
        known = self._known.get(n)
        if known is None:
            if len(self._known) >= self._size:
                self._known.clear()
            known = self._known[n] = _long(n)
        return known


def _length(n: int) -> bytes:
    return _SMALL[n] if n < _TABLE else _varint(n << 1)


_RANGES = {"int": (-(2 ** 31), 2 ** 31 - 1), "long": (-(2 ** 63), 2 ** 63 - 1)}


def _value_code(kind: Any, var: str, indent: str) -> list[str]:
    """Statements that check `var` is exactly a value of Avro type `kind` (not null) and append its encoding."""
    if kind == "string":
        return [f"{indent}if {var}.__class__ is not str: raise _Slow",
                f"{indent}b = {var}.encode()",
                f"{indent}n = len(b)",
                f"{indent}w(_SMALL[n] if n < {_TABLE} else _length(n))",
                f"{indent}w(b)"]
    if isinstance(kind, str) and kind in _RANGES:
        low, high = _RANGES[kind]
        return [f"{indent}if {var}.__class__ is not int or not {low} <= {var} <= {high}: raise _Slow",
                f"{indent}w(_SMALL[{var}] if 0 <= {var} < {_TABLE} else _long({var}))"]
    if kind == "boolean":
        return [f"{indent}if {var} is True: w(b'\\x01')",
                f"{indent}elif {var} is False: w(b'\\x00')",
                f"{indent}else: raise _Slow"]
    if kind == "float":
        return [f"{indent}if {var}.__class__ is not float or not {-_FLOAT32_MAX!r} <= {var} <= {_FLOAT32_MAX!r}: "
                "raise _Slow",
                f"{indent}w(_f32({var}))"]
    if kind == "double":
        return [f"{indent}if {var}.__class__ is not float: raise _Slow",
                f"{indent}w(_f64({var}))"]
    if isinstance(kind, dict) and kind.get("type") == "array":
        item = f"{var}_i"
        lines = [f"{indent}if {var}.__class__ is not list: raise _Slow",
                 f"{indent}if {var}:",
                 f"{indent}    w(_length(len({var})))",
                 f"{indent}    for {item} in {var}:"]
        lines += _type_code(kind["items"], item, indent + "        ")
        return lines + [f"{indent}w(b'\\x00')"]
    raise ValueError(f"unsupported Avro type {kind!r}")


def _type_code(avro_type: Any, var: str, indent: str) -> list[str]:
    """Statements for a field type: a plain type, or a union of null and one type (`["null", T]`, null first)."""
    if isinstance(avro_type, list):
        if len(avro_type) != 2 or avro_type[0] != "null":
            raise ValueError(f"unsupported union {avro_type!r}")
        return ([f"{indent}if {var} is None: w(b'\\x00')",
                 f"{indent}else:",
                 f"{indent}    w(b'\\x02')"] + _value_code(avro_type[1], var, indent + "    "))
    return _value_code(avro_type, var, indent)


Encode = Callable[[dict[str, Any], Callable[[bytes], Any]], None]


def compile_encoder(schema: dict[str, Any]) -> Encode:
    """`encode(event, write)`: appends the event's Avro record, or raises _Slow having written part of it."""
    return _compiled(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=512)
def _compiled(schema_json: str) -> Encode:
    """One compiled function per schema and process, whichever lanes and workers use it."""
    schema = json.loads(schema_json)
    lines = ["def encode(e, w):", "    g = e.get"]
    for index, field in enumerate(schema["fields"]):
        var = f"v{index}"
        lines.append(f"    {var} = g({field['name']!r})")
        lines += _type_code(field["type"], var, "    ")
    namespace: dict[str, Any] = {"_Slow": _Slow, "_SMALL": _SMALL, "_long": _Longs(), "_length": _length,
                                 "_f32": struct.Struct("<f").pack, "_f64": struct.Struct("<d").pack}
    exec(compile("\n".join(lines), f"<avro encoder {schema.get('name')}>", "exec"), namespace)  # noqa: S102
    encode: Encode = namespace["encode"]
    return encode


def _zstd() -> Callable[[bytes], bytes]:
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
    return zstd.compress


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)  # raw deflate, as the spec says
    return compressor.compress(data) + compressor.flush()


def _snappy(data: bytes) -> bytes:
    from cramjam import snappy

    return bytes(snappy.compress_raw(data)) + struct.pack(">I", zlib.crc32(data) & 0xFFFFFFFF)


def block_compressor(codec: str) -> Callable[[bytes], bytes]:
    if codec == "null":
        return bytes
    if codec == "deflate":
        return _deflate
    if codec == "snappy":
        return _snappy
    if codec == "zstandard":
        return _zstd()
    raise ValueError(f"unsupported Avro codec {codec!r}")


class ContainerWriter:
    """Events of one schema → one Avro container file (records that fit) and the events that do not fit."""

    def __init__(self, schema: dict[str, Any], codec: str, projector: Projector) -> None:
        self._parsed = fastavro.parse_schema(schema)
        self._encode = compile_encoder(schema)
        self._projector = projector
        # A projector that builds fields (the generic schema's `properties`) must see every event first: the
        # event's own fields are not the record's.
        self._build = None if type(projector) is Projector else projector.project
        self._compress = block_compressor(codec)
        # Random, as the spec wants: a marker anyone could compute could be forged inside a string value, and
        # readers that split files on it would then start a block in the middle of a record.
        self._sync = os.urandom(16)
        header = io.BytesIO()
        fastavro.writer(header, self._parsed, [], codec=codec, sync_marker=self._sync)
        self._header = header.getvalue()

    def _careful(self, event: dict[str, Any], write: Callable[[bytes], Any]) -> None:
        record = self._projector.project(event)  # converts, or raises ProjectionError naming the field
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self._parsed, record)
        write(out.getvalue())

    def __call__(self, events: list[dict[str, Any]]) -> tuple[bytes, list[dict[str, Any]],
                                                              list[tuple[dict[str, Any], str]]]:
        """(file, events written, [(event, why it does not fit)]); the file is empty when no event fits."""
        encode, careful, build = self._encode, self._careful, self._build
        blocks: list[bytes] = [self._header]
        written: list[dict[str, Any]] = []
        misfits: list[tuple[dict[str, Any], str]] = []
        buffer = bytearray()
        write = buffer.extend
        count = 0
        for event in events:
            mark = len(buffer)
            try:
                encode(build(event) if build else event, write)
            except ProjectionError as exc:
                misfits.append((event, str(exc)))
                continue
            except _Slow:
                del buffer[mark:]
                try:
                    careful(event, write)
                except ProjectionError as exc:
                    misfits.append((event, str(exc)))
                    continue
            written.append(event)
            count += 1
            if len(buffer) >= BLOCK_BYTES:
                blocks.append(self._block(count, buffer))
                buffer.clear()
                count = 0
        if count:
            blocks.append(self._block(count, buffer))
        return (b"".join(blocks) if written else b""), written, misfits

    def _block(self, count: int, records: bytearray) -> bytes:
        data = self._compress(bytes(records))
        return _long(count) + _long(len(data)) + data + self._sync
