"""Test corpora and readers of what the job wrote, shared by the pipeline and integration tests."""
from __future__ import annotations

import gzip
import io
import json
import os
from typing import Any, Iterable

import fastavro
import orjson
import pyarrow.parquet as pq

from transforms.generate import bad_line_kinds, generate_lines

# Hand-made records that the generator does not make: an unknown event type (kept whole by the generic schema)
# and an event whose field has the wrong type for its schema (a schema_mismatch dead letter).
UNKNOWN_TYPE = {"id": "unknown-1", "event_type": "acme.custom.Thing", "time": 1790000000, "user_id": "u1",
                "color": "red", "nested": {"a": 1}}
WRONG_TYPE = {"id": "wrong-1", "event_type": "users.behaviors.Purchase", "time": 1790000000, "user_id": "u2",
              "product_id": "p", "price": "free", "currency": "USD", "properties": "{}"}


def corpus(count: int, seed: int = 1, invalid: int = 0, oversize: int = 0,
           extra: Iterable[dict[str, Any]] = ()) -> tuple[list[bytes], dict[int, str]]:
    """Generated lines plus `extra` events at the end; the kinds map says which lines are bad and why."""
    lines = list(generate_lines(count, seed=seed, invalid=invalid, oversize=oversize))
    kinds = dict(bad_line_kinds(count, seed, invalid, oversize))
    lines += [orjson.dumps(e) for e in extra]
    return lines, kinds


def valid_events(lines: list[bytes], kinds: dict[int, str]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for i, line in enumerate(lines) if i not in kinds]


def write_lines(path: str, lines: list[bytes]) -> str:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")
    return path


def decode_file(name: str, data: bytes) -> list[dict[str, Any]]:
    """Records of one written object, by its extension."""
    if name.endswith(".avro"):
        return list(fastavro.reader(io.BytesIO(data)))
    if name.endswith(".parquet"):
        return pq.read_table(io.BytesIO(data)).to_pylist()
    if name.endswith(".jsonl.gz"):
        return [json.loads(line) for line in gzip.decompress(data).splitlines()]
    raise ValueError(f"unknown file type: {name}")


def local_objects(root: str) -> dict[str, bytes]:
    """Every file under root as {relative key: bytes}."""
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, root).replace(os.sep, "/")] = handle.read()
    return out


def event_type_of(key: str) -> str:
    return key.split("event_type=", 1)[1].split("/", 1)[0]


def dead_letters(root: str) -> list[dict[str, Any]]:
    letters = []
    for data in local_objects(root).values():
        letters += [json.loads(line) for line in data.splitlines()]
    return letters
