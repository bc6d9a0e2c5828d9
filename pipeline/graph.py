"""The job's graph, composed in one place; it reads like the diagram in DESIGN.md §1:

    source ─► parse ─► route ─┬─► connector/<id>/batch ─► connector/<id>/write          (a storage connector)
                              ├─► connector/<id>/batch ─► connector/<id>/deliver ─► connector/<id>/park
                              │                                                       (an analytics partner)
                              └─► dead-letters/write    (every drop, with its reason)

Storage connectors that would write byte-identical files share one lane, named after the first of them
(pipeline/lanes.py): batched and encoded once, written to each. In batch mode, lanes that see the same routed
events share one grouping step (`flow/<id>/group`), from which each lane cuts its own batches.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import apache_beam as beam

from pipeline.config import CurrentsConfig, StorageConnector
from core.lanes import Lane, plan_flows, plan_lanes
from pipeline.sources import ReadSource, SourceSpec
from sinks.deadletter import WriteDeadLetters
from sinks.http.deliver import PARKED, DeliverBatches
from sinks.http.parking import Park
from sinks.storage.writer import WriteFiles
from transforms.batch import Batch, BatchEvents, CutGroups
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
    run_token: int = field(default_factory=lambda: int(time.time()))
    clock: Callable[[], float] = time.time  # processing-time clock of the flush timers (tests inject one)


@dataclass
class JobOutputs:
    files: dict[str, beam.PCollection]  # storage connector id → WrittenFile per file written
    delivered: dict[str, beam.PCollection]  # partner connector id → events delivered per batch
    dead_letter_files: beam.PCollection  # paths of dead-letter files


def build(records: beam.PCollection, job: JobSpec) -> JobOutputs:
    """Wire parse, route, every connector's lane and the dead-letter path onto a PCollection of raw records."""
    parsed = records | "parse" >> beam.ParDo(ParseEvents(job.max_event_bytes, job.event_time)).with_outputs(
        DEAD, main="events")
    flows = plan_flows(plan_lanes(job.config.connectors), job.streaming)
    routed, unroutable = parsed.events | "route" >> Route(job.config.connectors, [f.members for f in flows])
    dead = [parsed[DEAD], unroutable]
    files: dict[str, beam.PCollection] = {}
    delivered: dict[str, beam.PCollection] = {}
    for flow in flows:
        grouped = None if job.streaming else routed[flow.id] | f"flow/{flow.id}/group" >> beam.GroupByKey()
        for lane in flow.lanes:
            files_, delivered_, dead_ = _lane(lane, routed[flow.id], grouped, job)
            files.update(files_)
            delivered.update(delivered_)
            dead += dead_
    letters = dead | "dead-letters/collect" >> beam.Flatten()
    paths = letters | "dead-letters/write" >> WriteDeadLetters(job.dead_letter, job.run_token)
    return JobOutputs(files, delivered, paths)


def _lane(lane: Lane, routed: beam.PCollection, grouped: Optional[beam.PCollection],
          job: JobSpec) -> tuple[dict[str, beam.PCollection], dict[str, beam.PCollection], list[beam.PCollection]]:
    """One lane: batch (in streaming from the routed chunks; in batch mode from its flow's groups), then write
    files or deliver to a partner. → (files per connector, delivered per connector, dead letters)."""
    connector = lane.lead
    name = f"connector/{lane.id}"
    files: dict[str, beam.PCollection] = {}
    delivered: dict[str, beam.PCollection] = {}
    dead: list[beam.PCollection] = []
    if lane.shared:
        _LOG.info("connectors %s share one lane (same format, codec, field transforms, batching and shards): "
                  "each file is encoded once and written to each", ", ".join(c.id for c in lane.members))
    if grouped is None:
        batches = routed | f"{name}/batch" >> BatchEvents(connector.batch_limits(), job.streaming, job.run_token,
                                                          job.clock)
    else:
        batches = grouped | f"{name}/batch" >> beam.ParDo(CutGroups(
            connector.batch_limits(), job.run_token, (lane.id, frozenset(c.id for c in lane.members)))
        ).with_output_types(Batch)
    if isinstance(connector, StorageConnector):
        written = batches | f"{name}/write" >> beam.ParDo(
            WriteFiles(lane.members)).with_outputs(DEAD, main="files")
        for member in lane.members:
            files[member.id] = written.files if not lane.shared else (
                written.files | f"{name}/files-of/{member.id}" >> beam.Filter(
                    lambda file, cid=member.id: file.connector == cid))
        dead.append(written[DEAD])
    else:
        sent = batches | f"{name}/deliver" >> beam.ParDo(
            DeliverBatches(connector, job.clock)).with_outputs(DEAD, PARKED, main="delivered")
        delivered[connector.id] = sent.delivered
        dead += [sent[DEAD], sent[PARKED] | f"{name}/park" >> Park(connector, job.streaming, job.clock)]
    return files, delivered, dead


def build_pipeline(pipeline: beam.Pipeline, job: JobSpec) -> JobOutputs:
    records = pipeline | "source" >> ReadSource(job.source)
    return build(records, job)
