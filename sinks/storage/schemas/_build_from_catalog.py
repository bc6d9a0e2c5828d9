"""Regenerate the `<event_type>.avsc` files of this directory from the event catalogue.

The catalogue, docs/reference/event-catalog.md in this repository (one `- **type** (`full.name`, N fields):
name:type, ...` line per event type), is the source of truth; the .avsc files are committed so that workers need
neither the catalogue nor this script (tests/unit/test_schemas.py checks that this script reproduces them byte for
byte). Rerun after a catalogue change with the next `--schema-id`: `schema_id` is the global schema version and a
changed schema must get a new one (docs/reference/currents-behaviour.md §1.5), so that files written under the old
and the new schema never share a path. From the repository root:

    python sinks/storage/schemas/_build_from_catalog.py [docs/reference/event-catalog.md] [--out DIR] [--schema-id N]

The script refuses a catalogue line whose stated field count or full name disagrees with its content, so a typo in
the catalogue cannot silently produce a wrong schema.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

NAMESPACE_ROOT = "dataexport.S3.inner"
PRIMITIVES = frozenset({"string", "int", "long", "float", "double", "boolean"})
GENERIC_FILE = "_generic.avsc"
# The repository's own copy: <repo>/docs/reference/event-catalog.md (this file is <repo>/sinks/storage/schemas/).
DEFAULT_CATALOGUE = Path(__file__).resolve().parents[3] / "docs" / "reference" / "event-catalog.md"

_LINE = re.compile(r"^- \*\*(?P<type>[^*]+)\*\* \(`(?P<full>[^`]+)`, (?P<count>\d+) fields?\): (?P<fields>.+)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ARRAY = re.compile(r"^array<(?P<items>\??[a-z]+)>$")


class CatalogueError(ValueError):
    """A catalogue line that cannot be turned into a schema, with the offending line named."""


def avro_type(spec: str) -> tuple[Any, bool]:
    """Catalogue type (`string`, `?int`, `?array<?string>`, ...) -> (Avro type, optional)."""
    optional = spec.startswith("?")
    base = spec[1:] if optional else spec
    array = _ARRAY.match(base)
    if array:
        items = array["items"]
        item_type: Any = ["null", items[1:]] if items.startswith("?") else items
        if (items.lstrip("?")) not in PRIMITIVES:
            raise CatalogueError(f"unknown array item type {items!r}")
        avro: Any = {"type": "array", "items": item_type}
    elif base in PRIMITIVES:
        avro = base
    else:
        raise CatalogueError(f"unknown type {spec!r}")
    return (["null", avro] if optional else avro), optional


def parse_catalogue(text: str) -> dict[str, dict[str, Any]]:
    """Catalogue markdown -> {event_type: Avro record schema}, in catalogue order."""
    schemas: dict[str, dict[str, Any]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.startswith("- **"):
            continue
        match = _LINE.match(line)
        if not match:
            raise CatalogueError(f"line {lineno}: not in the catalogue line format")
        event_type, full_name = match["type"], match["full"]
        prefix, _, name = event_type.rpartition(".")
        if not prefix or full_name != f"{NAMESPACE_ROOT}.{event_type}":
            raise CatalogueError(f"line {lineno}: full name {full_name!r} does not match type {event_type!r}")
        if event_type in schemas:
            raise CatalogueError(f"line {lineno}: duplicate event type {event_type!r}")
        fields: list[dict[str, Any]] = []
        for item in match["fields"].split(", "):
            field_name, sep, spec = item.strip().partition(":")
            if not sep or not _NAME.match(field_name):
                raise CatalogueError(f"line {lineno}: bad field {item!r}")
            try:
                avro, optional = avro_type(spec)
            except CatalogueError as exc:
                raise CatalogueError(f"line {lineno}, field {field_name!r}: {exc}") from None
            field: dict[str, Any] = {"name": field_name, "type": avro}
            if optional:
                field["default"] = None
            fields.append(field)
        names = [f["name"] for f in fields]
        if len(set(names)) != len(names):
            raise CatalogueError(f"line {lineno}: duplicate field names in {event_type!r}")
        if len(fields) != int(match["count"]):
            raise CatalogueError(
                f"line {lineno}: {event_type!r} states {match['count']} fields but lists {len(fields)}")
        schemas[event_type] = record(name, f"{NAMESPACE_ROOT}.{prefix}", event_type, fields)
    if not schemas:
        raise CatalogueError("no event type lines found")
    return schemas


def record(name: str, namespace: str, doc: str, fields: list[dict[str, Any]], schema_id: int = 1) -> dict[str, Any]:
    """One record schema with the top-level keys in the committed order."""
    return {"type": "record", "name": name, "namespace": namespace, "doc": doc, "schema_id": schema_id,
            "fields": fields}


def generic_schema(schema_id: int = 1) -> dict[str, Any]:
    """Fallback schema for event types outside the catalogue: fixed columns plus the rest as one JSON string."""
    return record("GenericEvent", f"{NAMESPACE_ROOT}.generic", "Any event type without its own schema", [
        {"name": "id", "type": "string"},
        {"name": "event_type", "type": "string"},
        {"name": "time", "type": "long"},
        {"name": "user_id", "type": ["null", "string"], "default": None},
        {"name": "external_user_id", "type": ["null", "string"], "default": None},
        {"name": "properties", "type": "string",
         "doc": "JSON object of every other field of the event, so no field is lost"},
    ], schema_id)


def render(schema: dict[str, Any]) -> str:
    """JSON text with one field per line, so a schema change is a one-line diff."""
    head = {k: v for k, v in schema.items() if k != "fields"}
    lines = ["{"] + [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()] + ['  "fields": [']
    fields = [f"    {json.dumps(f)}" for f in schema["fields"]]
    lines.append(",\n".join(fields))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def build(catalogue: Path, out: Path, schema_id: int = 1) -> list[Path]:
    """Write every catalogue schema plus the generic one into `out`; returns the written paths."""
    schemas = parse_catalogue(catalogue.read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in schemas.items():
        schema["schema_id"] = schema_id
        path = out / f"{event_type}.avsc"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    generic = out / GENERIC_FILE
    generic.write_text(render(generic_schema(schema_id)), encoding="utf-8")
    written.append(generic)
    stale = sorted(p.name for p in out.glob("*.avsc") if p not in written)
    if stale:
        log.warning("not in the catalogue (left in place, delete by hand if retired): %s", ", ".join(stale))
    log.info("wrote %d event schemas and %s to %s", len(schemas), GENERIC_FILE, out)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("catalogue", type=Path, nargs="?", default=DEFAULT_CATALOGUE,
                        help="path to event-catalog.md (default: the repository's docs/reference/event-catalog.md)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="output directory (default: this schemas directory)")
    parser.add_argument("--schema-id", type=int, default=1, help="schema_id written into every schema")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        build(args.catalogue, args.out, args.schema_id)
    except (OSError, CatalogueError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
