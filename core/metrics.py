"""Counter names: namespace `currents` for the pipeline as a whole, `connector.<id>` per connector, so the Dataflow
UI and `--metrics_out` group a connector's figures together. Reading them back after a run is `pipeline.metrics`."""
from __future__ import annotations

from typing import Optional

from apache_beam.metrics import Metrics

from core.progress import TALLY

PIPELINE = "currents"
CONNECTOR_PREFIX = "connector."


def namespace(connector_id: Optional[str]) -> str:
    return f"{CONNECTOR_PREFIX}{connector_id}" if connector_id else PIPELINE


class _Counter:
    """A Beam counter that also adds to this process's running tally (`core.progress`)."""

    __slots__ = ("_beam", "_namespace", "_name")

    def __init__(self, namespace: str, name: str) -> None:
        self._beam = Metrics.counter(namespace, name)
        self._namespace, self._name = namespace, name

    def inc(self, n: int = 1) -> None:
        self._beam.inc(n)
        TALLY.add(self._namespace, self._name, n)

    def dec(self, n: int = 1) -> None:
        self.inc(-n)


def counter(connector_id: Optional[str], name: str) -> _Counter:
    return _Counter(namespace(connector_id), name)


def distribution(connector_id: Optional[str], name: str):  # noqa: ANN201
    return Metrics.distribution(namespace(connector_id), name)
