"""The run-end report: every counter of a finished run (names and namespaces: `core.metrics`), and its summary."""
from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from apache_beam.metrics.metric import MetricsFilter

from core.metrics import CONNECTOR_PREFIX, PIPELINE

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


def summary_lines(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """A short per-connector summary for the end of a local run."""
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
    for ns, values in metrics.items():
        if not ns.startswith(CONNECTOR_PREFIX):
            continue
        dead = ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in values.items() if k.startswith("dead_letters."))
        lines.append(f"{ns[len(CONNECTOR_PREFIX):]}: routed {values.get('routed', 0)}, "
                     f"delivered {values.get('delivered', 0)}, files {values.get('files_written', 0)}, "
                     f"bytes {values.get('bytes_written', 0)}, dead letters: {dead or 'none'}")
    return lines
