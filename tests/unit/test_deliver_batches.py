"""The delivery DoFn (sinks/http/deliver.py `DeliverBatches`) against a real receiver on 127.0.0.1: batches are sent
while the next is encoded, yet every batch is settled before its bundle ends, each output with its own batch's
timestamp and window."""
from __future__ import annotations

from typing import Any, Iterator

import orjson
import pytest
from apache_beam.pvalue import TaggedOutput
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from examples.receiver import Receiver
from sinks.http.partners.http import HttpConnector
from sinks.http.deliver import DEAD, IN_FLIGHT, PARKED, DeliverBatches
from core.records import Batch

TOKEN = "secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(TOKEN) as running:
        yield running


def _batch(number: int, size: int = 150) -> Batch:
    items = [orjson.dumps({"id": f"b{number}-e{i}", "event_type": "users.behaviors.CustomEvent", "time": 1_790_000_000,
                           "user_id": "u"}) for i in range(size)]
    return Batch(("p", "users.behaviors.CustomEvent", "2026-09-21-13", 0, ("p",)), number,
                 [(data, len(data)) for data in items], 7)


def _run(receiver: Receiver, batches: int, token: str = TOKEN) -> list[tuple[Any, Any]]:
    """(tag, WindowedValue or plain value) of everything one bundle outputs, from process and finish_bundle."""
    connector = HttpConnector(id="p", type="http", endpoint=receiver.url, token=token, retry_attempts=1)
    fn = DeliverBatches(connector)
    fn.setup()
    fn.start_bundle()
    out: list[Any] = []
    for number in range(batches):
        out += fn.process(_batch(number), timestamp=Timestamp(1000 + number), window=GlobalWindow())
    out += fn.finish_bundle()
    fn.teardown()
    return [(o.tag, o.value) if isinstance(o, TaggedOutput) else (None, o) for o in out]


def test_every_batch_is_delivered_by_the_end_of_its_bundle(receiver: Receiver) -> None:
    outputs = _run(receiver, batches=IN_FLIGHT + 3)
    assert sum(value.value for tag, value in outputs if tag is None) == 150 * (IN_FLIGHT + 3)
    assert len(receiver.ids) == 150 * (IN_FLIGHT + 3)


def test_each_output_carries_its_own_batchs_timestamp(receiver: Receiver) -> None:
    outputs = _run(receiver, batches=4)
    delivered = [value for tag, value in outputs if tag is None]
    assert all(isinstance(v, WindowedValue) for v in delivered)
    assert sorted(v.timestamp for v in delivered) == [Timestamp(1000 + n) for n in range(4)]


def test_a_refused_batch_is_parked_with_its_timestamp_and_later_ones_park_without_a_call(
        receiver: Receiver) -> None:
    outputs = _run(receiver, batches=IN_FLIGHT + 3, token="wrong")
    parked = [value for tag, value in outputs if tag == PARKED]
    assert len(parked) == IN_FLIGHT + 3 and not any(tag == DEAD for tag, _ in outputs)
    first = next(v for v in parked if isinstance(v, WindowedValue))
    assert first.timestamp == Timestamp(1000) and first.value[1][0] == "credentials"
    assert receiver.requests == 0  # the receiver counts accepted requests only: none was
    parked_events = [p.value[1][3] if isinstance(p, WindowedValue) else p[1][3] for p in parked]
    assert sum(len(events) for events in parked_events) == 150 * (IN_FLIGHT + 3)
