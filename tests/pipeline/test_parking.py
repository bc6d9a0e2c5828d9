"""Parking under TestStream with advancing processing time: the credential grace window and probe cadence."""
from __future__ import annotations

import json

import orjson
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue

from pipeline.config import parse_config
from pipeline.graph import JobSpec, build
from pipeline.sources import FileSource
from tests.partner_standins import StandIn, unauthorized_until

T0 = 1_790_000_000
PROBE_EVERY = 60
GRACE_HOURS = 0.25  # 900 s


class FixedClock:
    def __call__(self) -> float:
        return 0.0


def _events(first: int, n: int) -> list[TimestampedValue]:
    return [TimestampedValue(orjson.dumps({"id": f"e{i}", "event_type": "users.behaviors.CustomEvent",
                                           "time": T0, "user_id": "u", "external_user_id": "x", "name": "n",
                                           "properties": "{}"}), T0) for i in range(first, first + n)]


def _run(tmp_path, standins: dict[str, StandIn], minutes: int) -> list[dict]:  # noqa: ANN001
    connectors = [{"id": cid, "type": "http", "endpoint": s.url, "token": "t0ken", "flush_seconds": 1,
                   "probe_interval_seconds": PROBE_EVERY, "credential_grace_hours": GRACE_HOURS,
                   "retry_attempts": 1} for cid, s in standins.items()]
    job = JobSpec(source=FileSource("unused"), config=parse_config({"connectors": connectors}),
                  dead_letter=str(tmp_path / "dead"), max_event_bytes=921_600, event_time="publish",
                  streaming=True, clock=FixedClock(), run_token=1)
    stream = TestStream().advance_watermark_to(T0).add_elements(_events(0, 10)).advance_processing_time(1)
    stream = stream.advance_processing_time(PROBE_EVERY).add_elements(_events(10, 10))  # arrives while parked
    for _ in range(minutes):
        stream = stream.advance_processing_time(PROBE_EVERY)
    stream = stream.advance_watermark_to_infinity()
    with TestPipeline(runner=BundleBasedDirectRunner(), options=StandardOptions(streaming=True)) as p:
        build(p | stream, job)
    return [json.loads(line) for path in (tmp_path / "dead").rglob("*.jsonl")
            for line in path.read_bytes().splitlines()]


def test_credentials_bad_for_longer_than_the_grace_window_expire_the_parked_events(tmp_path) -> None:  # noqa: ANN001
    with StandIn("http", token="t0ken") as bad:
        bad.credentials_valid = False
        letters = _run(tmp_path, {"bad": bad}, minutes=20)
        accepted, probes = bad.accepted, sum(1 for r in bad.requests if r.n_events == 0)
    assert accepted == []
    assert sorted(d["event_id"] for d in letters) == sorted(f"e{i}" for i in range(20))
    assert {d["reason"] for d in letters} == {"credentials_expired"}
    # one probe a minute until the window closes at 900 s, not one per event or per batch
    assert 13 <= probes <= 16


def test_credentials_fixed_within_the_grace_window_deliver_everything(tmp_path) -> None:  # noqa: ANN001
    with StandIn("http", token="t0ken", script=unauthorized_until(5)) as fixed:
        letters = _run(tmp_path, {"fixed": fixed}, minutes=10)
        accepted = sorted(e["id"] for e in fixed.accepted)
        violations = list(fixed.violations)
    assert letters == [] and violations == []
    assert accepted == sorted(f"e{i}" for i in range(20))


def test_events_still_parked_when_the_stream_ends_are_drained_dead_letters(tmp_path) -> None:  # noqa: ANN001
    with StandIn("http", token="t0ken") as bad:
        bad.credentials_valid = False
        letters = _run(tmp_path, {"bad": bad}, minutes=3)  # well inside the 15-minute grace window
    assert sorted(d["event_id"] for d in letters) == sorted(f"e{i}" for i in range(20))
    assert {d["reason"] for d in letters} == {"drained"}
