"""Parking rules (sinks/http/parking.py) with a scripted partner: windows, the cap, probes, oldest first."""
from __future__ import annotations

from typing import Any

from core.records import ParkedBatch
from sinks.http.partners.base import Request
from sinks.http.partners.http import HttpConnector
from sinks.http.deliver import CREDENTIALS, RETRYABLE, Answer, Deliverer
from sinks.http.parking import admit, expire, resolve
from tests.unit.test_deliver import Partner_, Plain

HOUR = 3600.0


def _connector(**config: Any) -> HttpConnector:
    return HttpConnector(id="p", type="http", endpoint="http://partner.invalid/", retry_attempts=1,
                         max_concurrent_requests=1, retry_window_hours=1, credential_grace_hours=2,
                         max_parked_events=5, **config)


def _events(*ids: str) -> list[dict[str, Any]]:
    return [{"id": i, "event_type": "t", "time": 1} for i in ids]


def test_retryable_batches_expire_after_the_retry_window() -> None:
    keep, dead = expire(_connector(), [ParkedBatch(RETRYABLE, 0.0, "HTTP 503", _events("a"))], now=HOUR)
    assert keep == [] and [(d["reason"], d["event_id"]) for d in dead] == [("expired", "a")]


def test_credential_failures_get_the_longer_grace_window() -> None:
    batch = ParkedBatch(CREDENTIALS, 0.0, "HTTP 401", _events("a"))
    assert expire(_connector(), [batch], now=HOUR) == ([batch], [])
    keep, dead = expire(_connector(), [batch], now=2 * HOUR)
    assert keep == [] and dead[0]["reason"] == "credentials_expired" and "HTTP 401" in dead[0]["error"]


def test_events_over_the_parking_cap_are_parking_full_dead_letters() -> None:
    batch, overflow = admit(_connector(), ParkedBatch(RETRYABLE, 0.0, "HTTP 500", _events("a", "b", "c")),
                            parked_events=3)
    assert [e["id"] for e in batch[3]] == ["a", "b"]
    assert [(d["reason"], d["event_id"]) for d in overflow] == [("parking_full", "c")]


class _Probing(Plain):
    """A partner with an empty-batch probe, like the Currents format."""

    def probe(self) -> Request:
        return self.request([])


def _deliverer(connector: HttpConnector, reply, probing: bool = False) -> tuple[Deliverer, Partner_]:  # noqa: ANN001
    send = Partner_(reply)
    partner = (_Probing if probing else Plain)(connector)
    return Deliverer(connector, partner, send, clock=lambda: 0.0, sleep=lambda s: None), send


def test_a_failing_probe_keeps_everything_parked_and_sends_no_data() -> None:
    connector = _connector()
    deliverer, send = _deliverer(connector, lambda ids, n: Answer(401), probing=True)
    parked = [ParkedBatch(CREDENTIALS, 0.0, "HTTP 401", _events("a", "b"))]
    keep, dead = resolve(connector, deliverer, parked, now=60.0)
    assert keep == parked and dead == [] and send.calls == [[]]


def test_after_a_good_probe_parked_batches_go_out_oldest_first() -> None:
    connector = _connector()
    deliverer, send = _deliverer(connector, lambda ids, n: Answer(200), probing=True)
    parked = [ParkedBatch(RETRYABLE, 20.0, "HTTP 500", _events("new")),
              ParkedBatch(CREDENTIALS, 10.0, "HTTP 401", _events("old"))]
    keep, dead = resolve(connector, deliverer, parked, now=60.0)
    assert (keep, dead) == ([], []) and send.calls == [[], ["old"], ["new"]]


def test_without_a_probe_request_the_oldest_batch_is_the_probe() -> None:
    connector = _connector()
    deliverer, send = _deliverer(connector, lambda ids, n: Answer(503))
    parked = [ParkedBatch(RETRYABLE, 10.0, "HTTP 503", _events("a")),
              ParkedBatch(RETRYABLE, 20.0, "HTTP 503", _events("b"))]
    keep, dead = resolve(connector, deliverer, parked, now=60.0)
    assert send.calls == [["a"]] and [b[3][0]["id"] for b in keep] == ["a", "b"]
    assert keep[0][1] == 10.0  # the give-up clock keeps running from the first failure
