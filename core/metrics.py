"""Counter names: namespace `currents` for the pipeline as a whole, `connector.<id>` per connector, so the Dataflow
UI and `--metrics_out` group a connector's figures together. Reading them back after a run is `pipeline.metrics`."""
from __future__ import annotations

from typing import Optional

from apache_beam.metrics import Metrics

PIPELINE = "currents"
CONNECTOR_PREFIX = "connector."


def namespace(connector_id: Optional[str]) -> str:
    return f"{CONNECTOR_PREFIX}{connector_id}" if connector_id else PIPELINE


def counter(connector_id: Optional[str], name: str):  # noqa: ANN201 - Beam's counter type is private
    return Metrics.counter(namespace(connector_id), name)


def distribution(connector_id: Optional[str], name: str):  # noqa: ANN201
    return Metrics.distribution(namespace(connector_id), name)
