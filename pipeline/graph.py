"""The job's graph, composed in one place; it reads like the data-flow picture in the docs:

    source ─► parse ─► route ─► batch ─┬─► connector/<id>/write                          (a storage lane)
                                       ├─► connector/<id>/deliver ─► connector/<id>/park  (an analytics partner)
                                       └─► dead-letters/write    (every drop, with its reason)

Connectors share work in lanes (core/lanes.py): storage connectors that would write byte-identical files are one
lane, batched and encoded once, written to each. `batch` and `park` are the keyed buffer (core/buffer.py) with
the batching and the parking policy: it alone knows whether the job streams.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import apache_beam as beam

from core.buffer import Hold
from core.lanes import Lane, plan_lanes
from core.records import PARKED as PARKED_TYPE
from core.runs import new_run_token
from pipeline.config import CurrentsConfig, HttpConnectorBase, StorageConnector
from pipeline.sources import ReadSource, SourceSpec
from sinks.deadletter import WriteDeadLetters
from sinks.http.deliver import PARKED, DeliverBatches
from sinks.http.parking import Park
from sinks.storage.holding import HoldFiles
from sinks.storage.writer import WriteFiles
from transforms.batch import Batching
from transforms.parse import DEAD, ParseEvents
from transforms.route import Route

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobSpec:
    """Everything the graph needs, validated at launch."""

    source: SourceSpec
    config: CurrentsConfig
    dead_letter: str
    max_event_bytes: int
    event_time: str
    streaming: bool
    run_token: int = field(default_factory=new_run_token)
    clock: Callable[[], float] = time.time  # processing-time clock of the flush timers (tests inject one)
    bounded_hold_seconds: Optional[float] = None  # a bounded run holds a failing destination this long at most

    @property
    def hold_limit(self) -> Optional[float]:
        """How long a failing destination is held at most: a bounded run must end (streaming: the windows)."""
        return None if self.streaming else self.bounded_hold_seconds


@dataclass
class JobOutputs:
    files: dict[str, beam.PCollection]  # storage connector id → WrittenFile per file written
    delivered: dict[str, beam.PCollection]  # partner connector id → events delivered per batch
    dead_letter_files: beam.PCollection  # paths of dead-letter files


def build(records: beam.PCollection, job: JobSpec) -> JobOutputs:
    """Wire parse, route, batch, every lane's sink and the dead-letter path onto a PCollection of raw records."""
    lanes = plan_lanes(job.config.connectors)
    parsed = records | "parse" >> beam.ParDo(ParseEvents(job.max_event_bytes, job.event_time)).with_outputs(
        DEAD, main="events")
    routed, unroutable = parsed.events | "route" >> Route(job.config.connectors)
    batches = routed | "batch" >> Hold([Batching(lane, lane.lead.batch_limits()) for lane in lanes],
                                       job.streaming, job.run_token, job.clock)
    files: dict[str, beam.PCollection] = {}
    delivered: dict[str, beam.PCollection] = {}
    dead = [parsed[DEAD], unroutable]
    for lane in lanes:
        dead += _sink(lane, batches[lane.id], job, files, delivered)
    letters = dead | "dead-letters/collect" >> beam.Flatten()
    paths = letters | "dead-letters/write" >> WriteDeadLetters(job.dead_letter, job.run_token)
    return JobOutputs(files, delivered, paths)


def _sink(lane: Lane, batches: beam.PCollection, job: JobSpec, files: dict[str, beam.PCollection],
          delivered: dict[str, beam.PCollection]) -> list[beam.PCollection]:
    """A lane's batches → files in each member's store (added to `files`), or requests to its partner, parking
    what fails (added to `delivered`). → its dead letters."""
    connector = lane.lead
    name = f"connector/{lane.id}"
    if isinstance(connector, StorageConnector):
        if lane.shared:
            _LOG.info("connectors %s share one lane (same format, codec, field transforms, batching and shards): "
                      "each file is encoded once and written to each", ", ".join(c.id for c in lane.members))
        members = [c for c in lane.members if isinstance(c, StorageConnector)]  # a lane's members are alike
        written = batches | f"{name}/write" >> beam.ParDo(WriteFiles(
            members, clock=job.clock, bounded_limit=job.hold_limit)).with_output_types(
            Any, **{PARKED: PARKED_TYPE, DEAD: Any}).with_outputs(DEAD, PARKED, main="files")
        for member in lane.members:
            files[member.id] = written.files if not lane.shared else (
                written.files | f"{name}/files-of/{member.id}" >> beam.Filter(
                    lambda file, cid=member.id: file.connector == cid))
        held = written[PARKED] | f"{name}/hold" >> HoldFiles(members, job.streaming, job.clock,
                                                             bounded_limit=job.hold_limit)
        return [written[DEAD], held]
    assert isinstance(connector, HttpConnectorBase)
    sent = batches | f"{name}/deliver" >> beam.ParDo(DeliverBatches(connector, job.clock)).with_output_types(
        Any, **{PARKED: PARKED_TYPE, DEAD: Any}).with_outputs(DEAD, PARKED, main="delivered")
    delivered[connector.id] = sent.delivered
    return [sent[DEAD], sent[PARKED] | f"{name}/park" >> Park(connector, job.streaming, job.clock,
                                                              bounded_limit=job.hold_limit)]


def build_pipeline(pipeline: beam.Pipeline, job: JobSpec) -> JobOutputs:
    records = pipeline | "source" >> ReadSource(job.source, job.max_event_bytes)
    return build(records, job)
