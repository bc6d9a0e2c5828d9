"""Projection of an event onto its event type's Avro schema, compiled once per schema.

fastavro trusts what it is given (we write with validation off, for speed), so every value is checked here:
a missing required field or a value of the wrong type makes the event a `schema_mismatch` dead letter instead of a
crashed bundle or a corrupt file. Fields the schema does not have are left out (and counted by the writer); unknown
event types use the generic schema, which keeps every field in a JSON `properties` string.
"""
from __future__ import annotations

from typing import Any, Callable

import orjson

Check = Callable[[Any], Any]
_MISSING = object()


class ProjectionError(ValueError):
    pass


def _int(bits: int) -> Check:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def check(v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool) and low <= v <= high:
            return v
        raise ProjectionError(f"expected a {bits}-bit integer, got {v!r:.60}")

    return check


def _string(v: Any) -> Any:
    if isinstance(v, str):
        return v
    raise ProjectionError(f"expected a string, got {type(v).__name__}")


_FLOAT32_MAX = 3.4028234663852886e38


def _float(bits: int) -> Check:
    """A number; for 32-bit floats also in range, since fastavro and pyarrow would write inf without a word."""

    def check(v: Any) -> Any:
        if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)):
            value = float(v)
            if bits == 32 and abs(value) > _FLOAT32_MAX:
                raise ProjectionError(f"expected a 32-bit float, got {v!r:.60} (out of range)")
            return value
        raise ProjectionError(f"expected a number, got {type(v).__name__}")

    return check


def _boolean(v: Any) -> Any:
    if isinstance(v, bool):
        return v
    raise ProjectionError(f"expected a boolean, got {type(v).__name__}")


_PRIMITIVES: dict[str, Check] = {"string": _string, "int": _int(32), "long": _int(64), "float": _float(32),
                                 "double": _float(64), "boolean": _boolean}


def _nullable(check: Check) -> Check:
    def nullable(v: Any) -> Any:
        return None if v is None else check(v)

    return nullable


def _array(item: Check) -> Check:
    def array(v: Any) -> Any:
        if not isinstance(v, list):
            raise ProjectionError(f"expected an array, got {type(v).__name__}")
        return [item(x) for x in v]

    return array


def compile_type(avro_type: Any) -> tuple[Check, bool]:
    """(check, optional) for an Avro field type of the kinds our schemas use."""
    if isinstance(avro_type, str):
        if avro_type not in _PRIMITIVES:
            raise ValueError(f"unsupported Avro type {avro_type!r}")
        return _PRIMITIVES[avro_type], False
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        if len(branches) != 1:
            raise ValueError(f"unsupported union {avro_type!r}")
        inner, _ = compile_type(branches[0])
        return (_nullable(inner), True) if "null" in avro_type else (inner, False)
    if isinstance(avro_type, dict) and avro_type.get("type") == "array":
        item, _ = compile_type(avro_type["items"])
        return _array(item), False
    raise ValueError(f"unsupported Avro type {avro_type!r}")


_FAST_TYPES = {"string": (str,), "int": (int,), "long": (int,), "float": (float,), "double": (float,),
               "boolean": (bool,)}
_RANGED = {"int": (-(2 ** 31), 2 ** 31 - 1), "long": (-(2 ** 63), 2 ** 63 - 1), "float": (-_FLOAT32_MAX, _FLOAT32_MAX)}


class Projector:
    """Turns events into records of one schema. Built once per event type per worker.

    The fast path copies the schema's fields with one dict comprehension and checks each value's exact type
    (bool is not int) and the ranges of ints and float32s; anything unusual — an int for a float, an array, a wrong
    type — takes the careful path, which converts or raises with the field named.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._fields: list[tuple[str, Check, bool]] = []
        self._fast: list[tuple[str, frozenset[type]]] = []
        self._ranged: list[tuple[str, float, float]] = []
        for field in schema["fields"]:
            check, optional = compile_type(field["type"])
            name = field["name"]
            self._fields.append((name, check, optional))
            base = field["type"]
            if isinstance(base, list):
                base = next(t for t in base if t != "null")
            allowed = set(_FAST_TYPES.get(base, ())) if isinstance(base, str) else set()  # arrays: careful path
            if optional:
                allowed.add(type(None))
            self._fast.append((name, frozenset(allowed)))
            if isinstance(base, str) and base in _RANGED:
                self._ranged.append((name, *_RANGED[base]))
        self._index()
        self._names = frozenset(self._field_names) | {"event_type"}

    def _index(self) -> None:
        """Positional views of the fields for the fast path (map/zip/all run in C, not in a Python loop)."""
        self._field_names = tuple(name for name, _, _ in self._fields)
        self._allowed = tuple(allowed for _, allowed in self._fast)
        position = {name: i for i, name in enumerate(self._field_names)}
        self._ranged_at = tuple((position[name], low, high) for name, low, high in self._ranged if name in position)

    def project(self, event: dict[str, Any]) -> dict[str, Any]:
        values = list(map(event.get, self._field_names))
        if not all(map(frozenset.__contains__, self._allowed, map(type, values))):
            return self._checked(event)
        for index, low, high in self._ranged_at:
            value = values[index]
            if value is not None and not low <= value <= high:
                return self._checked(event)
        return dict(zip(self._field_names, values))

    def _checked(self, event: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for name, check, optional in self._fields:
            value = event.get(name, _MISSING)
            if value is _MISSING or value is None:
                if not optional:
                    raise ProjectionError(f"field '{name}': required, missing or null")
                record[name] = None
                continue
            try:
                record[name] = check(value)
            except ProjectionError as exc:
                raise ProjectionError(f"field '{name}': {exc}") from None
        return record

    def extra_fields(self, event: dict[str, Any]) -> int:
        """How many of the event's fields the schema has no place for."""
        return len(event.keys() - self._names)


class GenericProjector(Projector):
    """Unknown event types: the core fields as columns, every other field kept in `properties` (JSON)."""

    _CORE = ("id", "event_type", "time", "user_id", "external_user_id")

    def __init__(self, schema: dict[str, Any]) -> None:
        super().__init__(schema)
        self._fields = [f for f in self._fields if f[0] != "properties"]
        self._fast = [f for f in self._fast if f[0] != "properties"]
        self._index()

    def project(self, event: dict[str, Any]) -> dict[str, Any]:
        record = super().project(event)
        record["properties"] = orjson.dumps({k: v for k, v in event.items() if k not in self._CORE}).decode()
        return record

    def extra_fields(self, event: dict[str, Any]) -> int:
        return 0


def projector_for(schema: dict[str, Any], generic: bool) -> Projector:
    return GenericProjector(schema) if generic else Projector(schema)

