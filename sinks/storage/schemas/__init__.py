"""Avro schemas of the storage export: one `<event_type>.avsc` per catalogue event type, plus `_generic.avsc`.

The files are package data, read through importlib.resources so they load the same from a checkout, a wheel or a
zipped worker package. Each file is parsed once per process (lru_cache) and the same dict is returned to every
caller: callers must not mutate the returned schemas (fastavro.parse_schema builds its own copy; use
copy.deepcopy before editing one).

`schema_id` is a custom top-level attribute holding the schema version; it is advanced whenever a schema changes
(behaviour §1.5), so files written under different versions can be told apart. Regenerate the files from the
catalogue with `_build_from_catalog.py`.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["generic_schema", "known_event_types", "load_schema", "schema_id"]

_SUFFIX = ".avsc"
_GENERIC = "_generic.avsc"


def _read(filename: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(resources.files(__name__).joinpath(filename).read_text(encoding="utf-8"))
    return schema


@lru_cache(maxsize=1)
def known_event_types() -> tuple[str, ...]:
    """Every event type that has its own schema, sorted (files starting with `_` are not event types)."""
    names = (entry.name for entry in resources.files(__name__).iterdir())
    return tuple(sorted(n[: -len(_SUFFIX)] for n in names if n.endswith(_SUFFIX) and not n.startswith("_")))


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(known_event_types())


@lru_cache(maxsize=None)
def _load_known(event_type: str) -> dict[str, Any]:
    return _read(event_type + _SUFFIX)


def load_schema(event_type: str) -> dict[str, Any] | None:
    """The schema of `event_type` (shared, do not mutate), or None when the type has no schema of its own.

    Unknown names are answered from the set of known types, never from the file system and never cached, so
    arbitrary event_type strings from input data cannot reach a path or grow the cache.
    """
    if event_type not in _known():
        return None
    return _load_known(event_type)


@lru_cache(maxsize=1)
def generic_schema() -> dict[str, Any]:
    """Schema for event types without their own (shared, do not mutate): fixed columns + the rest as JSON."""
    return _read(_GENERIC)


def schema_id(schema: dict[str, Any]) -> int:
    """The schema version stored in the top-level `schema_id` attribute (also kept by fastavro.parse_schema)."""
    value = schema.get("schema_id")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"schema {schema.get('name')!r} has no valid schema_id (got {value!r})")
    return value
