"""Streaming batching under TestStream (BundleBasedDirectRunner, processing time advanced by the test).

Files are told apart by when they were cut: a batch cut while the stream runs ("live": the count threshold or the
flush timer) carries an ordinary timestamp; one cut by the final drain carries DRAIN_AT.
"""
from __future__ import annotations

import json
import os
import uuid

import apache_beam as beam
import orjson
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue

from pipeline.config import parse_config
from pipeline.graph import JobSpec, build
from pipeline.sources import FileSource
from core.records import DRAIN_AT

HOUR = 3600
T0 = 1_790_000_000 // HOUR * HOUR  # the start of an hour
H0, H1 = "2026-09-21-14", "2026-09-21-15"  # the date= folders of T0's hour and the next


class MarkCut(beam.DoFn):
    """Records each written file as (date, events, live|drain) in a marker file: an observation that, unlike
    assert_that, also sees files cut by the final drain (after the watermark has passed the window's end)."""

    def __init__(self, folder: str) -> None:
        self._folder = folder

    def process(self, written, timestamp=beam.DoFn.TimestampParam) -> None:  # noqa: ANN001
        hour = written.key.split("/date=")[1].split("/")[0]
        cut = [hour, written.events, "drain" if timestamp >= DRAIN_AT else "live"]
        with open(os.path.join(self._folder, uuid.uuid4().hex), "w") as handle:
            json.dump(cut, handle)


class FixedClock:
    """The flush timers' clock pinned at the TestStream's processing-time origin (0)."""

    def __call__(self) -> float:
        return 0.0


def _event(n: int, event_type: str = "users.behaviors.CustomEvent") -> bytes:
    return orjson.dumps({"id": f"e{n}", "event_type": event_type, "time": T0 + n, "user_id": "u",
                         "name": "clicked", "properties": "{}"})


def _stamped(numbers: range, at: int) -> list[TimestampedValue]:
    return [TimestampedValue(_event(n), at) for n in numbers]


def _assert_cuts(stream: TestStream, tmp_path, expected: list, max_events: int,  # noqa: ANN001
                 flush_seconds: float) -> None:
    """Run the job's graph on `stream`; assert the files cut as (date, events, live|drain)."""
    config = parse_config({"connectors": [{"id": "lake", "type": "filesystem", "path": str(tmp_path / "out"),
                                           "max_events_per_file": max_events, "flush_seconds": flush_seconds}]})
    job = JobSpec(source=FileSource("unused"), config=config, dead_letter=str(tmp_path / "dead"),
                  max_event_bytes=921_600, event_time="publish", streaming=True, clock=FixedClock(), run_token=1)
    marks = tmp_path / "cuts"
    marks.mkdir()
    with TestPipeline(runner=BundleBasedDirectRunner(), options=StandardOptions(streaming=True)) as p:
        outputs = build(p | stream, job)
        _ = outputs.files["lake"] | beam.ParDo(MarkCut(str(marks)))
    cuts = [json.loads(path.read_bytes()) for path in marks.iterdir()]
    assert sorted(tuple(c) for c in cuts) == sorted(expected)


def test_the_count_threshold_cuts_a_file_as_soon_as_it_is_reached(tmp_path) -> None:  # noqa: ANN001
    stream = (TestStream().advance_watermark_to(T0)
              .add_elements(_stamped(range(7), T0 + 1))
              .advance_watermark_to_infinity())
    expected = [(H0, 3, "live"), (H0, 3, "live"), (H0, 1, "drain")]
    _assert_cuts(stream, tmp_path, expected, max_events=3, flush_seconds=10 * HOUR)


def test_the_flush_interval_cuts_a_file_when_processing_time_passes_it(tmp_path) -> None:  # noqa: ANN001
    stream = (TestStream().advance_watermark_to(T0)
              .add_elements(_stamped(range(2), T0 + 1))
              .advance_processing_time(61)
              .add_elements(_stamped(range(2, 4), T0 + 2))
              .advance_processing_time(61)
              .advance_watermark_to_infinity())
    _assert_cuts(stream, tmp_path, [(H0, 2, "live"), (H0, 2, "live")], max_events=100, flush_seconds=60)


def test_events_of_two_hours_land_in_two_date_folders(tmp_path) -> None:  # noqa: ANN001
    stream = (TestStream().advance_watermark_to(T0)
              .add_elements(_stamped(range(2), T0 + 10))
              .add_elements(_stamped(range(2, 5), T0 + HOUR + 10))
              .advance_watermark_to_infinity())
    _assert_cuts(stream, tmp_path, [(H0, 2, "drain"), (H1, 3, "drain")], max_events=100, flush_seconds=10 * HOUR)


def test_a_dead_letter_born_in_the_final_drain_is_written(tmp_path) -> None:  # noqa: ANN001
    wrong = orjson.dumps({"id": "bad-price", "event_type": "users.behaviors.Purchase", "time": T0, "user_id": "u",
                          "product_id": "p", "price": "free", "currency": "USD", "properties": "{}"})
    stream = (TestStream().advance_watermark_to(T0)
              .add_elements(_stamped(range(2), T0 + 10) + [TimestampedValue(wrong, T0 + 10)])
              .advance_watermark_to_infinity())
    _assert_cuts(stream, tmp_path, [(H0, 2, "drain")], max_events=100, flush_seconds=10 * HOUR)
    letters = [json.loads(line) for path in (tmp_path / "dead").rglob("*.jsonl")
               for line in path.read_bytes().splitlines()]
    assert [(d["reason"], d["event_id"]) for d in letters] == [("schema_mismatch", "bad-price")]


class SteppingClock:
    """A clock that moves on by `step` seconds at every reading: the second chunk of a key arrives well after the
    first, as far as the batcher can tell. The readings are counted on the class, since the runner works on
    copies of the DoFn (and so of its clock)."""

    readings = 0

    def __init__(self, step: float) -> None:
        self._step = step
        SteppingClock.readings = 0

    def __call__(self) -> float:
        SteppingClock.readings += 1
        return (SteppingClock.readings - 1) * self._step


def test_an_idle_key_is_forgotten_and_its_next_files_get_a_new_token(tmp_path) -> None:  # noqa: ANN001
    config = parse_config({"connectors": [{"id": "lake", "type": "filesystem", "path": str(tmp_path / "out"),
                                           "max_events_per_file": 100, "flush_seconds": 60}]})
    job = JobSpec(source=FileSource("unused"), config=config, dead_letter=str(tmp_path / "dead"),
                  max_event_bytes=921_600, event_time="publish", streaming=True, clock=SteppingClock(4000),
                  run_token=1)
    stream = (TestStream().advance_watermark_to(T0)
              .add_elements(_stamped(range(2), T0 + 1))   # the key opens at clock 0; flush at 60
              .advance_processing_time(61)                # flushed; the key is idle from 61
              .advance_processing_time(3700)              # idle for an hour: its state is dropped
              .add_elements(_stamped(range(2, 5), T0 + 2))  # reopens at clock 4000; flush at 4060
              .advance_processing_time(400)
              .advance_watermark_to_infinity())
    with TestPipeline(runner=BundleBasedDirectRunner(), options=StandardOptions(streaming=True)) as p:
        build(p | stream, job)
    offsets = sorted(int(path.name.rsplit("+", 1)[1].removesuffix(".avro"))
                     for path in (tmp_path / "out").rglob("*.avro"))
    assert offsets == [0, 4000 * 1_000_000]  # the second file starts the reopened key's own sequence
