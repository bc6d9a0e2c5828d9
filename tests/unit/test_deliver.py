"""The delivery state machine (sinks/http/deliver.py) against a scripted partner answer, one rule per test.

The real HTTP path (sessions, sockets, partner shapes) is covered by the pipeline tests against stand-in servers;
here the answers are scripted so each status rule is pinned down exactly.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import orjson
import pytest

from sinks.http.partners.http import HttpConnector
from sinks.http.deliver import CREDENTIALS, RETRYABLE, Answer, Deliverer
from sinks.http.partners.base import Envelope, Limits, Partner, Request
from sinks.http.retry import retry_after_seconds


class Plain(Partner):
    """A minimal partner: a JSON array, 3 events a request, events marked `skip` are not taken."""

    type = "plain"
    limits = Limits(max_events=3, max_request_bytes=10_000, max_event_bytes=500)

    @property
    def url(self) -> str:
        return "http://partner.invalid/"

    def headers(self) -> dict[str, str]:
        return {}

    def envelope(self) -> Envelope:
        return Envelope(b"[", b"]")

    def encode_event(self, event: dict[str, Any]) -> Optional[bytes]:
        return None if event.get("skip") else orjson.dumps(event)


class Partner_:
    """A transport's `exchange`: records requests and waves; answers each request with `reply(event ids of the
    request, call number)`."""

    def __init__(self, reply: Callable[[list[str], int], Answer]) -> None:
        self.reply = reply
        self.calls: list[list[str]] = []
        self.waves: list[int] = []

    def __call__(self, requests: Sequence[Request], before_each: Callable[[], None] = lambda: None) -> list[Answer]:
        self.waves.append(len(requests))
        answers = []
        for request in requests:
            before_each()
            ids = [e["id"] for e in orjson.loads(request.body)]
            self.calls.append(ids)
            answers.append(self.reply(ids, len(self.calls)))
        return answers


def _deliverer(send: Partner_, **config: Any) -> tuple[Deliverer, list[float]]:
    """One request at a time unless a test asks for more, so the order of the partner's calls is exact."""
    config = {"max_concurrent_requests": 1, **config}
    connector = HttpConnector(id="p", type="http", endpoint="http://partner.invalid/", retry_attempts=3,
                              backoff_base_seconds=1, backoff_cap_seconds=8, **config)
    slept: list[float] = []
    return Deliverer(connector, Plain(connector), send, clock=lambda: 1000.0, sleep=slept.append,
                     rng=lambda: 1.0), slept


def _events(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": f"e{i}", "event_type": "t", "time": 1, **extra} for i in range(n)]


def test_2xx_delivers_in_requests_within_the_count_limit() -> None:
    send = Partner_(lambda ids, n: Answer(200))
    outcome = _deliverer(send)[0].deliver(_events(7))
    assert outcome.delivered == 7 and [len(c) for c in send.calls] == [3, 3, 1]


def test_5xx_is_retried_with_exponential_backoff_then_delivered() -> None:
    send = Partner_(lambda ids, n: Answer(503) if n <= 2 else Answer(200))
    deliverer, slept = _deliverer(send)
    assert deliverer.deliver(_events(2)).delivered == 2
    assert slept == [1.0, 2.0] and len(send.calls) == 3


def test_429_waits_at_least_retry_after() -> None:
    send = Partner_(lambda ids, n: Answer(429, {"Retry-After": "5"}) if n == 1 else Answer(200))
    deliverer, slept = _deliverer(send)
    assert deliverer.deliver(_events(1)).delivered == 1 and slept == [5.0]


def test_a_retry_after_longer_than_a_bundle_waits_parks_without_sleeping() -> None:
    send = Partner_(lambda ids, n: Answer(429, {"Retry-After": "3600"}))
    deliverer, slept = _deliverer(send)
    outcome = deliverer.deliver(_events(2))
    assert outcome.parked is not None and outcome.parked[0] == RETRYABLE and slept == [] and len(send.calls) == 1


def test_network_errors_are_retried() -> None:
    send = Partner_(lambda ids, n: Answer(None, error="ConnectionError: reset") if n == 1 else Answer(200))
    assert _deliverer(send)[0].deliver(_events(1)).delivered == 1


def test_exhausted_retries_park_the_rest_of_the_batch_as_retryable() -> None:
    send = Partner_(lambda ids, n: Answer(200) if n == 1 else Answer(500, body=b"down"))
    outcome = _deliverer(send)[0].deliver(_events(5))
    assert outcome.delivered == 3
    kind, since, error, events = outcome.parked[:4]
    assert (kind, since, [e["id"] for e in events]) == (RETRYABLE, 1000.0, ["e3", "e4"]) and "500" in error


def test_400_resends_as_single_events_and_dead_letters_the_one_still_rejected() -> None:
    send = Partner_(lambda ids, n: Answer(400, body=b"bad e1") if "e1" in ids else Answer(200))
    outcome = _deliverer(send)[0].deliver(_events(3))
    assert outcome.delivered == 2
    (letter,) = outcome.dead
    assert (letter["reason"], letter["event_id"], letter["error"]) == ("rejected", "e1", "HTTP 400: bad e1")
    assert send.calls == [["e0", "e1", "e2"], ["e0"], ["e1"], ["e2"]]


def test_413_splits_in_halves_down_to_one_event() -> None:
    send = Partner_(lambda ids, n: Answer(413) if len(ids) > 1 else Answer(200))
    outcome = _deliverer(send)[0].deliver(_events(3))
    assert outcome.delivered == 3 and send.calls == [["e0", "e1", "e2"], ["e0"], ["e1", "e2"], ["e1"], ["e2"]]


def test_413_for_a_single_event_is_a_too_large_dead_letter() -> None:
    send = Partner_(lambda ids, n: Answer(413))
    outcome = _deliverer(send)[0].deliver(_events(1))
    assert [d["reason"] for d in outcome.dead] == ["too_large"]


def test_401_parks_the_batch_as_a_credentials_failure_without_retrying() -> None:
    send = Partner_(lambda ids, n: Answer(401))
    deliverer, slept = _deliverer(send)
    outcome = deliverer.deliver(_events(2))
    assert outcome.parked[0] == CREDENTIALS and len(send.calls) == 1 and slept == []


def test_404_is_a_credentials_failure_too() -> None:
    assert _deliverer(Partner_(lambda ids, n: Answer(404)))[0].deliver(_events(1)).parked[0] == CREDENTIALS


def test_events_the_partner_cannot_take_are_skipped_and_counted() -> None:
    send = Partner_(lambda ids, n: Answer(200))
    outcome = _deliverer(send)[0].deliver(_events(2) + _events(1, skip=True))
    assert (outcome.delivered, outcome.skipped, outcome.dead) == (2, 1, [])


def test_an_event_over_the_per_event_limit_is_a_too_large_dead_letter_and_never_sent() -> None:
    send = Partner_(lambda ids, n: Answer(200))
    outcome = _deliverer(send)[0].deliver([{"id": "big", "event_type": "t", "time": 1, "pad": "x" * 600}])
    assert [d["reason"] for d in outcome.dead] == ["too_large"] and send.calls == []


def test_the_request_rate_cap_paces_requests() -> None:
    send = Partner_(lambda ids, n: Answer(200))
    deliverer, slept = _deliverer(send, max_requests_per_second=0.5)  # one request every 2 s
    deliverer.deliver(_events(9))
    assert len(send.calls) == 3
    assert [round(s) for s in slept] == [2, 4]  # the fake sleep does not move the clock: the waits add up


def test_requests_go_out_in_waves_of_up_to_the_concurrency_limit() -> None:
    send = Partner_(lambda ids, n: Answer(200))
    deliverer, _ = _deliverer(send, max_concurrent_requests=3)
    outcome = deliverer.deliver(_events(30))  # ten requests of three
    assert outcome.delivered == 30 and send.waves == [3, 3, 3, 1]


def test_in_a_wave_only_the_requests_that_failed_are_sent_again() -> None:
    send = Partner_(lambda ids, n: Answer(503) if n == 2 else Answer(200))
    deliverer, slept = _deliverer(send, max_concurrent_requests=3)
    outcome = deliverer.deliver(_events(9))
    assert outcome.delivered == 9 and send.waves == [3, 1] and send.calls[3] == send.calls[1] and len(slept) == 1


def test_a_wave_waits_for_the_longest_retry_after_it_was_asked() -> None:
    replies = {1: Answer(429, {"Retry-After": "2"}), 2: Answer(429, {"Retry-After": "5"})}
    send = Partner_(lambda ids, n: replies.get(n, Answer(200)))
    deliverer, slept = _deliverer(send, max_concurrent_requests=2)
    assert deliverer.deliver(_events(6)).delivered == 6 and slept == [5.0]


def test_with_concurrent_requests_a_failure_parks_the_failed_and_unsent_groups_only() -> None:
    send = Partner_(lambda ids, n: Answer(401) if "e3" in ids else Answer(200))
    deliverer, _ = _deliverer(send, max_concurrent_requests=2)
    outcome = deliverer.deliver(_events(9))  # groups e0-2, e3-5 in the first wave; e6-8 never sent
    assert outcome.delivered == 3
    assert sorted(e["id"] for e in outcome.parked[3]) == ["e3", "e4", "e5", "e6", "e7", "e8"]


@pytest.mark.parametrize("value", ["\u00b2", "1e999", "Tue, 99 Foo 2026 25:61:61 GMT", "-3", " ", "\u0663"])
def test_a_malformed_retry_after_is_ignored_not_a_failed_bundle(value: str) -> None:
    assert retry_after_seconds({"Retry-After": value}) is None
    send = Partner_(lambda ids, n: Answer(429, {"Retry-After": value}) if n == 1 else Answer(200))
    assert _deliverer(send)[0].deliver(_events(1)).delivered == 1
