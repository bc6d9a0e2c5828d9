"""The run-end report: every counter of a finished run (names and namespaces: `core.metrics`), and its summary."""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Optional, Sequence

from apache_beam.metrics.metric import MetricsFilter

from core.config import ConnectorBase
from core.metrics import CONNECTOR_PREFIX, PIPELINE, namespace
from core.secrets import redact

_LOG = logging.getLogger(__name__)


def collect(result: Any) -> dict[str, dict[str, Any]]:
    """Every counter and distribution of a finished run as {namespace: {name: value}}, summed over steps."""
    query = result.metrics().query(MetricsFilter())
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for c in query.get("counters", []):
        value = c.committed if c.committed is not None else c.attempted
        ns, name = c.key.metric.namespace, c.key.metric.name
        out[ns][name] = out[ns].get(name, 0) + (value or 0)
    for d in query.get("distributions", []):
        value = d.committed if d.committed is not None else d.attempted
        if value is None or not value.count:
            continue
        ns, name = d.key.metric.namespace, d.key.metric.name
        prev = out[ns].get(name)
        merged = {"count": value.count, "sum": value.sum, "min": value.min, "max": value.max}
        if prev:
            merged = {"count": prev["count"] + value.count, "sum": prev["sum"] + value.sum,
                      "min": min(prev["min"], value.min), "max": max(prev["max"], value.max)}
        merged["mean"] = merged["sum"] / merged["count"]
        out[ns][name] = merged
    return {ns: dict(sorted(values.items())) for ns, values in sorted(out.items())}


def summary_lines(metrics: dict[str, dict[str, Any]], connectors: Sequence[ConnectorBase] = (),
                  dead_letter: Optional[str] = None) -> list[str]:
    """The end of a local run: what came in, then per connector what was delivered, what became dead letters by
    reason, and where the files and the dead letters are."""
    top = metrics.get(PIPELINE, {})
    lines = [f"events in {top.get('events_in', 0)}, valid {top.get('events_valid', 0)} (selected "
             f"{top.get('selected', 0)}, unselected {top.get('unselected', 0)}), invalid {top.get('invalid', 0)}, "
             f"oversize {top.get('oversize', 0)}, blank lines {top.get('blank_lines', 0)}"]
    if top.get("unreadable"):
        lines.append(f"input that could not be read: {top['unreadable']} (dead letters with reason unreadable name "
                     "the file and byte offset)")
    unselected = {k.split(".", 1)[1]: v for k, v in top.items() if k.startswith("unselected.")}
    if unselected:
        lines.append("unselected by any connector: " + ", ".join(f"{t} {n}" for t, n in sorted(unselected.items())))
    where = {c.id: redact(c.destination()) for c in connectors}
    ids = list(where) + sorted(ns[len(CONNECTOR_PREFIX):] for ns in metrics
                               if ns.startswith(CONNECTOR_PREFIX) and ns[len(CONNECTOR_PREFIX):] not in where)
    for cid in ids:
        values = metrics.get(namespace(cid), {})
        dead = ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in values.items() if k.startswith("dead_letters."))
        files = (f", files {values.get('files_written', 0)}, bytes {values.get('bytes_written', 0)}"
                 if "files_written" in values or "bytes_written" in values else "")
        to = f" → {where[cid]}" if cid in where else ""
        lines.append(f"{cid}: routed {values.get('routed', 0)}, delivered {values.get('delivered', 0)}{files}, "
                     f"dead letters: {dead or 'none'}{to}")
    dead_total = sum(v for k, v in top.items() if k.startswith("dead_letters."))
    if dead_letter is not None:
        lines.append(f"dead letters: {dead_total} in {redact(dead_letter)}" if dead_total else "dead letters: none")
    return lines


def progress_line(tally: dict[tuple[str, str], int], seconds: float) -> str:
    """A long run's progress from the running tally (`core.progress`): events read and their rate, then per
    connector what was delivered and dead-lettered so far."""
    read = tally.get((PIPELINE, "events_in"), 0)
    rate = read / seconds if seconds > 0 else 0.0
    per: dict[str, dict[str, int]] = defaultdict(dict)
    for (ns, name), value in tally.items():
        if ns.startswith(CONNECTOR_PREFIX):
            per[ns[len(CONNECTOR_PREFIX):]][name] = value
    parts = [f"progress after {seconds:.0f} s: read {read} events ({rate:.0f}/s), dead letters "
             f"{sum(v for (ns, n), v in tally.items() if ns == PIPELINE and n.startswith('dead_letters.'))}"]
    for cid, values in sorted(per.items()):
        dead = sum(v for k, v in values.items() if k.startswith("dead_letters."))
        delivered = values.get("delivered", 0)
        parts.append(f"{cid}: delivered {delivered} ({delivered / seconds if seconds > 0 else 0:.0f}/s), "
                     f"dead letters {dead}")
    return "; ".join(parts)
