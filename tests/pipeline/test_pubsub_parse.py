"""Pub/Sub messages through the job's graph under TestStream: parsed like file records, with the publish time
picking the date= hour and an `event_type` attribute honoured."""
from __future__ import annotations

import json

import orjson
from apache_beam.io.gcp.pubsub import PubsubMessage
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue

from pipeline.config import parse_config
from pipeline.graph import JobSpec, build
from pipeline.sources import FileSource
from tests.corpus import decode_file, local_objects

PUBLISHED = 1_790_000_000  # 2026-09-21 14:13 UTC
EVENT_TIME = PUBLISHED - 5 * 3600  # the events themselves are five hours older


def _message(i: int, with_type: bool = True, attributes: dict | None = None) -> TimestampedValue:
    event = {"id": f"m{i}", "time": EVENT_TIME, "user_id": "u", "name": "n", "properties": "{}"}
    if with_type:
        event["event_type"] = "users.behaviors.CustomEvent"
    return TimestampedValue(PubsubMessage(orjson.dumps(event), attributes or {}), PUBLISHED)


def test_pubsub_messages_are_parsed_routed_and_written_by_publish_hour(tmp_path) -> None:  # noqa: ANN001
    stream = (TestStream().advance_watermark_to(PUBLISHED)
              .add_elements([_message(1), _message(2, with_type=False,
                                                   attributes={"event_type": "users.behaviors.CustomEvent"}),
                             TimestampedValue(PubsubMessage(b"not json", {}), PUBLISHED)])
              .advance_watermark_to_infinity())
    config = parse_config({"connectors": [{"id": "lake", "type": "filesystem", "path": str(tmp_path / "out")}]})
    job = JobSpec(source=FileSource("unused"), config=config, dead_letter=str(tmp_path / "dead"),
                  max_event_bytes=921_600, event_time="publish", streaming=True, run_token=1)
    with TestPipeline(runner=BundleBasedDirectRunner(), options=StandardOptions(streaming=True)) as p:
        build(p | stream, job)
    files = local_objects(str(tmp_path / "out"))
    assert len(files) == 1
    (key, data), = files.items()
    assert "/date=2026-09-21-14/" in key
    assert sorted(r["id"] for r in decode_file(key, data)) == ["m1", "m2"]
    letters = [json.loads(line) for path in (tmp_path / "dead").rglob("*.jsonl")
               for line in path.read_bytes().splitlines()]
    assert [(d["reason"], d["payload"]) for d in letters] == [("invalid", "not json")]
