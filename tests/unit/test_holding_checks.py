"""The last check before held files are given up (sinks/storage/holding.py): a store that cannot answer is asked
once per round, not once per held file, and a store that can answer is asked about each file. And the state lines
of a bounded hold (sinks/parking.py): "failing" once, and no "recovered" when everything was given up."""
from __future__ import annotations

import logging
from typing import Any

import pytest

from core.buffer import release_group
from core.records import RETRYABLE, ParkedBatch
from pipeline.config import parse_config
from sinks.parking import Parking, expire
from sinks.storage.holding import StoreDestination
from sinks.storage.stores import StoreError

CONNECTOR = parse_config({"connectors": [{"id": "lake", "type": "s3", "bucket": "a-bucket"}]}).connectors[0]


class FakeStore:
    """A store whose `matches` answers from `present`, or raises as a store that does not answer."""

    def __init__(self, present: set[str], answers: bool = True) -> None:
        self.present = present
        self.answers = answers
        self.checks: list[str] = []

    def matches(self, key: str, data: bytes) -> bool:
        self.checks.append(key)
        if not self.answers:
            raise StoreError(f"head {key!r} failed (retryable): read timeout", retryable=True, key=key)
        return key in self.present

    def put(self, key: str, data: bytes, content_type: str = "") -> None:
        raise StoreError("put failed (retryable)", retryable=True, key=key)


def _destination(store: FakeStore) -> StoreDestination:
    def factory(connector: Any, resolver: Any, **options: Any) -> FakeStore:
        return store

    destination = StoreDestination(CONNECTOR, bounded_limit=60.0, store_factory=factory)  # type: ignore[arg-type]
    destination.open()
    return destination


def _held(n: int) -> list[ParkedBatch]:
    return [ParkedBatch(RETRYABLE, 0.0, "timed out", [{"id": f"e{i}", "event_type": "t", "time": 1}],
                        f"key-{i}", b"data") for i in range(n)]


def test_a_store_that_cannot_answer_is_checked_once_for_all_files_given_up_together() -> None:
    store = FakeStore(set(), answers=False)
    kept, dead = expire(_destination(store), _held(5), now=1_000.0)
    assert kept == [] and sorted(d["event_id"] for d in dead) == [f"e{i}" for i in range(5)]
    assert {d["reason"] for d in dead} == {"expired"}
    assert store.checks == ["key-0"]  # not one timeout per held file


def test_the_next_round_asks_again() -> None:
    store = FakeStore(set(), answers=False)
    destination = _destination(store)
    expire(destination, _held(2), now=1_000.0)
    destination.ready()  # a probe cycle went by
    store.answers, store.present = True, {"key-1"}
    kept, dead = expire(destination, _held(2), now=2_000.0)
    assert store.checks == ["key-0", "key-0", "key-1"]
    assert [d["event_id"] for d in dead] == ["e0"]  # key-1 is there: delivered, not a dead letter


def test_a_store_that_answers_is_asked_about_every_file() -> None:
    store = FakeStore({"key-1", "key-3"})
    kept, dead = expire(_destination(store), _held(5), now=1_000.0)
    assert store.checks == [f"key-{i}" for i in range(5)]
    assert sorted(d["event_id"] for d in dead) == ["e0", "e2", "e4"]


# ---- the connector's state lines of a bounded hold (sinks/parking.py) ---------------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _bounded_hold(store: FakeStore, caplog: pytest.LogCaptureFixture) -> list[str]:
    clock = _Clock()
    destination = _destination(store)
    policy = Parking(CONNECTOR.id, destination)
    with caplog.at_level(logging.INFO, logger="sinks.parking"):
        out = list(release_group(policy, CONNECTOR.id, _held(3), 1, clock, clock.sleep))
    assert sorted(d["event_id"] for d in out) == ["e0", "e1", "e2"]
    return [r.getMessage() for r in caplog.records if r.name == "sinks.parking"]


def test_a_bounded_hold_says_once_that_the_connector_is_failing(caplog: pytest.LogCaptureFixture) -> None:
    lines = _bounded_hold(FakeStore(set(), answers=False), caplog)
    assert len([line for line in lines if line.startswith("connector lake: failing")]) == 1


def test_a_hold_that_gave_everything_up_does_not_say_recovered(caplog: pytest.LogCaptureFixture) -> None:
    lines = _bounded_hold(FakeStore(set(), answers=False), caplog)
    assert not [line for line in lines if "recovered" in line]
    assert "connector lake: holds nothing any more: of 3 held batches (3 events), 3 events are dead letters" in \
        lines[-1]
