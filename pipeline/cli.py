"""`currents`: check a connector config, and send test events through it, before running the job.

    currents validate --connectors FILE
    currents test-events --connectors FILE [--connector ID]

`test-events` is the reference's "Send Test Events": one placeholder event of each selected event type to each
connector (storage connectors included), through the same writer and delivery code as the job, and a line per
connector saying whether it worked.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
import uuid
from typing import Any, Optional, Sequence, TextIO

import orjson

from core.secrets import install_log_redaction, redact

from pipeline.config import ConfigError, ConnectorBase, HttpConnectorBase, StorageConnector, load_config
from sinks.storage.schemas import known_event_types, load_schema

_PLACEHOLDERS: dict[str, Any] = {"string": "placeholder", "int": 0, "long": 0, "float": 0.0, "double": 0.0,
                                 "boolean": False}
_JSON_FIELDS = {"properties", "custom_attributes", "tool_arguments", "flow_response_json"}


def _placeholder(name: str, avro_type: Any, now: int) -> Any:
    if isinstance(avro_type, list):
        avro_type = next(t for t in avro_type if t != "null")
    if isinstance(avro_type, dict):
        return []
    if name in ("time",):
        return now
    if name == "time_ms":
        return now * 1000
    if name in ("user_id", "external_user_id"):
        return "currents-test-user"
    if name in _JSON_FIELDS:
        return "{}"
    if name.endswith("email_address"):
        return "test@example.com"
    return _PLACEHOLDERS[avro_type]


def placeholder_event(event_type: str, now: Optional[int] = None) -> dict[str, Any]:
    """An event of the type with every field set to a placeholder value of the right Avro type."""
    now = int(time.time()) if now is None else now
    schema = load_schema(event_type)
    event: dict[str, Any] = {f["name"]: _placeholder(f["name"], f["type"], now) for f in schema["fields"]} \
        if schema else {"time": now}
    event.update({"id": f"test-{uuid.uuid4()}", "event_type": event_type})
    return event


def selected_types(connector: ConnectorBase) -> list[str]:
    return [t for t in known_event_types() if connector.selects(t)]


def _batching(connector: ConnectorBase) -> str:
    limits = connector.batch_limits()
    return f"{limits.max_count} events / {limits.max_bytes} B / {limits.flush_seconds:g} s"


def validate(connectors: Sequence[ConnectorBase], out: TextIO) -> None:
    rows = [("id", "type", "destination", "events", "batching")]
    for c in connectors:
        types = selected_types(c)
        events = "all" if c.events is None else f"{len(types)} types ({', '.join(c.events)})"
        rows.append((c.id, c.type, redact(c.destination()), events, _batching(c)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")
    for c in connectors:
        if c.events is not None and not selected_types(c):
            out.write(f"warning: connector {c.id}: events {', '.join(c.events)} match no catalogue event type\n")


def _test_storage(connector: StorageConnector, events: list[dict[str, Any]]) -> str:
    from core.records import Batch, BatchKey
    from sinks.storage.writer import WriteFiles, WrittenFile

    run_token = int(time.time())
    writer = WriteFiles([connector])
    writer.setup()
    hour = time.strftime("%Y-%m-%d-%H", time.gmtime())
    written, problems = 0, []
    for event in events:
        data = orjson.dumps(event)
        batch = Batch(BatchKey(connector.id, event["event_type"], hour, 0, (connector.id,)), 0, [(data, len(data))],
                      run_token)
        for out in writer.process(batch):
            if isinstance(out, WrittenFile):
                written += 1
            else:
                problems.append(f"{out.value['event_type']}: {out.value['reason']}: {out.value['error']}")
    if problems:
        return f"FAILED  {written}/{len(events)} files written; first problem: {problems[0]}"
    return f"ok      {written} files written to {connector.destination()}"


def _test_partner(connector: HttpConnectorBase, events: list[dict[str, Any]]) -> str:
    from sinks.http.deliver import open_deliverer

    deliverer, transport, error = open_deliverer(connector, time.time)
    try:
        if deliverer is None:
            return f"FAILED  {error}"
        outcome = deliverer.deliver(events)
    finally:
        transport.close()
    if outcome.parked is not None:
        return f"FAILED  {outcome.parked[2]} ({len(outcome.parked[3])} events not delivered)"
    dead = f", {len(outcome.dead)} refused: {outcome.dead[0]['error']}" if outcome.dead else ""
    state = "ok    " if not outcome.dead else "FAILED"
    return f"{state}  {outcome.delivered} delivered, {outcome.skipped} skipped by the partner{dead}"


def test_events(connectors: Sequence[ConnectorBase], out: TextIO) -> bool:
    all_ok = True
    for c in connectors:
        events = [placeholder_event(t) for t in selected_types(c)]
        if isinstance(c, StorageConnector):
            line = _test_storage(c, events)
        else:
            line = _test_partner(c, events)  # type: ignore[arg-type]
        all_ok &= line.startswith("ok")
        out.write(redact(f"{c.id} ({c.type}): {line}") + "\n")
    return all_ok


def main(argv: Optional[Sequence[str]] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    parser = argparse.ArgumentParser(prog="currents", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("validate", "check the config; one row per connector, no secrets"),
                       ("test-events", "send one placeholder event of each selected type to each connector")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--connectors", required=True, help="YAML/JSON file (any Beam filesystem) or inline JSON")
        if name == "test-events":
            command.add_argument("--connector", help="only this connector id")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.connectors)
    except ConfigError as exc:
        sys.stderr.write(f"error: {redact(str(exc))}\n")
        return 2
    if args.command == "validate":
        validate(config.connectors, sys.stdout)
        return 0
    connectors = [c for c in config.connectors if args.connector in (None, c.id)]
    if not connectors:
        sys.stderr.write(f"error: no connector with id {args.connector!r}\n")
        return 2
    return 0 if test_events(connectors, sys.stdout) else 1


if __name__ == "__main__":
    raise SystemExit(main())
