"""Sending batches to a partner without losing any event.

`Deliverer` is the state machine of docs/contract.md "HTTP output" for one batch: encode (events a partner cannot
take are skipped and counted), cut into requests within the partner's limits, send with retries (exponential
backoff, full jitter, Retry-After), split on 400 and 413, and — when retries inside the bundle run out or the
credentials are refused — hand what is left to parking. Idempotency comes from the partners' insert ids, so a
request re-sent after a lost answer is harmless.

`DeliverBatches` runs it on a worker: one set of keep-alive connections (`sinks/http/transport.py`) per DoFn
instance, requests sent in waves of up to `max_concurrent_requests` that are in flight together, sending overlapped
with the encoding of the next batch, and a local breaker so that, while a connector is failing, new batches go
straight to parking instead of hammering the endpoint.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from sinks.http.partners.base import HttpConnectorBase
from core.metrics import counter, distribution
from core.secrets import SecretError, SecretResolver
from core.deadletters import INVALID, REJECTED, TOO_LARGE, connector_letter
from sinks.http.partners import partner_for
from sinks.http.partners.base import Partner, Request
from sinks.http.plan import Encoded, plan_requests
from sinks.http.retry import Backoff, Verdict, classify, retry_after_seconds, status_class
from sinks.http.transport import Answer, Transport
from sinks.parking import Breaker
from core.records import CREDENTIALS, RETRYABLE, Batch, ParkedBatch, events_of

DEAD = "dead"
PARKED = "parked"
_LOG = logging.getLogger(__name__)

Exchange = Callable[..., list[Answer]]  # (requests, before_each) → their answers, in order: Transport.exchange


@dataclass
class Outcome:
    delivered: int = 0
    skipped: int = 0
    dead: list[dict[str, Any]] = field(default_factory=list)
    parked: Optional[ParkedBatch] = None
    tries: list[tuple[int, list[Answer]]] = field(default_factory=list)  # (events, answers) per request


@dataclass
class Prepared:
    """A batch encoded and cut into requests, not sent yet."""

    groups: list[list[Encoded]]
    outcome: Outcome  # what is known before sending: skipped events, dead letters


class Deliverer:
    def __init__(self, connector: HttpConnectorBase, partner: Partner, exchange: Exchange,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 rng: Callable[[], float] = random.random) -> None:
        self._c = connector
        self._partner = partner
        self._exchange = exchange
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._backoff = Backoff(connector.backoff_base_seconds, connector.backoff_cap_seconds,
                                connector.retry_attempts)
        self._interval = 1.0 / connector.max_requests_per_second if connector.max_requests_per_second else 0.0
        self._next_slot = 0.0
        self._pace_lock = threading.Lock()
        self._concurrency = connector.max_concurrent_requests
        self._max_events = connector.max_events_per_request or partner.limits.max_events
        cid = connector.id
        self._requests = {k: counter(cid, f"requests_{k}") for k in ("2xx", "3xx", "4xx", "5xx", "error")}
        self._retries = counter(cid, "retries")
        self._delivered = counter(cid, "delivered")
        self._skipped = counter(cid, "skipped")
        self._latency = distribution(cid, "request_latency_ms")
        self._request_events = distribution(cid, "request_events")

    def _pace(self) -> None:
        """The optional per-connector request-rate cap (per worker), before each request is written."""
        if not self._interval:
            return
        with self._pace_lock:
            now = time.monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + self._interval
        if wait > 0:
            self._sleep(wait)

    def _record(self, events: int, tries: list[Answer]) -> None:
        """Metrics, on the DoFn's own thread (Beam counts only there)."""
        self._request_events.update(events)
        for answer in tries:
            self._latency.update(int(answer.latency_ms))
            self._requests.get(status_class(answer.status), self._requests["error"]).inc()
        if len(tries) > 1:
            self._retries.inc(len(tries) - 1)

    def send(self, request: Request) -> Answer:
        """One request, once (a probe); its metrics recorded."""
        answer = self._exchange([request], self._pace)[0]
        self._latency.update(int(answer.latency_ms))
        self._requests.get(status_class(answer.status), self._requests["error"]).inc()
        return answer

    def _send_wave(self, wave: list[list[Encoded]]) -> list[tuple[Verdict, Answer, list[Answer]]]:
        """A wave's requests, sent together until each is answered for good or the bundle's retries are spent.

        Requests that get a retryable answer go again together after one backoff (at least the longest
        Retry-After asked for); one whose Retry-After is longer than we wait inside a bundle stops there and is
        parked, which honours it by not calling."""
        requests = [self._partner.request([encoded for _, encoded in group]) for group in wave]
        results: list[Optional[tuple[Verdict, Answer, list[Answer]]]] = [None] * len(wave)
        tries: list[list[Answer]] = [[] for _ in wave]
        todo = list(range(len(wave)))
        last = self._backoff.attempts - 1
        for attempt in range(self._backoff.attempts):
            again: list[int] = []
            asked_most: Optional[float] = None
            for index, answer in zip(todo, self._exchange([requests[i] for i in todo], self._pace)):
                tries[index].append(answer)
                verdict = classify(answer.status) if answer.status is not None else Verdict.RETRY
                asked = retry_after_seconds(answer.headers) if verdict is Verdict.RETRY else None
                if verdict is not Verdict.RETRY or attempt == last or (
                        asked is not None and asked > max(self._backoff.cap_seconds, 1.0)):
                    results[index] = (verdict, answer, tries[index])
                    continue
                again.append(index)
                if asked is not None:
                    asked_most = max(asked_most or 0.0, asked)
            if not again:
                break
            wait = self._backoff.delay(attempt, self._rng)
            self._sleep(wait if asked_most is None else max(wait, asked_most))
            todo = again
        return results  # type: ignore[return-value]

    def _dead(self, reason: str, error: str, event: dict[str, Any]) -> dict[str, Any]:
        return connector_letter(reason, error, event, self._c.id)

    def deliver(self, events: list[dict[str, Any]], since: Optional[float] = None) -> Outcome:
        """Deliver a batch: what is not delivered is dead-lettered (with its reason) or parked, never lost.

        Requests go out in waves of up to `max_concurrent_requests`: a partner's round trip, not our CPU, is what
        limits a lane that sends one request at a time. This is `prepare`, `transmit` and `account` in a row; a
        caller that overlaps batches runs `transmit` elsewhere and the other two on its own thread."""
        outcome = self.transmit(self.prepare(events), since)
        self.account(outcome)
        return outcome

    def prepare(self, events: list[dict[str, Any]]) -> Prepared:
        """Encode for the partner (events it cannot take are skipped) and cut into requests within its limits."""
        outcome = Outcome()
        encode = self._partner.encode_event
        try:  # the common case, in one comprehension: every event encodes
            encoded: list[tuple[Any, Optional[bytes]]] = [(event, encode(event)) for event in events]
        except Exception:  # noqa: BLE001 - a partner mapping must not fail the bundle: find which, below
            encoded = []
            for event in events:
                try:
                    encoded.append((event, encode(event)))
                except Exception as exc:  # noqa: BLE001
                    outcome.dead.append(self._dead(INVALID, f"cannot encode for {self._c.type}: {exc!r}", event))
        taken: list[Encoded] = [(event, data) for event, data in encoded if data is not None]
        outcome.skipped = len(encoded) - len(taken)
        groups, too_large = plan_requests(taken, self._partner.limits, self._partner.envelope(), self._max_events)
        for event, data in too_large:
            outcome.dead.append(self._dead(
                TOO_LARGE, f"encoded event of {len(data)} bytes is over {self._c.type}'s limit of "
                           f"{self._partner.limits.max_event_bytes} bytes per event", event))
        return Prepared(groups, outcome)

    def transmit(self, prepared: Prepared, since: Optional[float] = None) -> Outcome:
        """Send the requests, splitting on 400 and 413, and park what is left when retries run out or the
        credentials are refused. Records no metrics (it may run on a sending thread): `account` does."""
        outcome = prepared.outcome
        queue = deque(prepared.groups)
        while queue:
            wave = [queue.popleft() for _ in range(min(self._concurrency, len(queue)))]
            again: list[list[Encoded]] = []  # split groups, re-sent before the rest, in order
            failed: list[list[Encoded]] = []
            failure: Optional[tuple[Verdict, Answer]] = None
            for group, (verdict, answer, tries) in zip(wave, self._send_wave(wave)):
                outcome.tries.append((len(group), tries))
                if verdict is Verdict.DONE:
                    outcome.delivered += len(group)
                elif verdict is Verdict.SPLIT_TO_SINGLES and len(group) > 1:
                    again += [[item] for item in group]
                elif verdict is Verdict.SPLIT_TO_SINGLES:
                    outcome.dead.append(self._dead(REJECTED, answer.describe(), group[0][0]))
                elif verdict is Verdict.SPLIT_IN_HALVES and len(group) > 1:
                    half = len(group) // 2
                    again += [group[:half], group[half:]]
                elif verdict is Verdict.SPLIT_IN_HALVES:
                    outcome.dead.append(self._dead(TOO_LARGE, f"{self._c.type} answered 413 to a single event: "
                                                              f"{answer.describe()}", group[0][0]))
                else:
                    failed.append(group)
                    failure = failure or (verdict, answer)
            queue.extendleft(reversed(again))
            if failure is not None:
                verdict, answer = failure
                kind = CREDENTIALS if verdict is Verdict.CREDENTIALS else RETRYABLE
                rest = [event for g in [*failed, *queue] for event, _ in g]
                outcome.parked = ParkedBatch(kind, self._clock() if since is None else since, answer.describe(), rest)
                break
        return outcome

    def account(self, outcome: Outcome) -> None:
        """The batch's metrics, on the DoFn's own thread (Beam counts only there)."""
        for events, tries in outcome.tries:
            self._record(events, tries)
        self._delivered.inc(outcome.delivered)
        self._skipped.inc(outcome.skipped)

    def probe(self) -> Optional[Answer]:
        """Check the credentials with the partner's empty request; None when the partner has no such request."""
        request = self._partner.probe()
        return None if request is None else self.send(request)


def open_deliverer(connector: HttpConnectorBase,
                   clock: Callable[[], float]) -> tuple[Optional[Deliverer], Transport, str]:
    """(deliverer, transport, error) for a worker; a secret that cannot be resolved gives no deliverer and the
    error, so batches are parked as a credentials failure instead of failing the bundle forever."""
    transport = Transport(connector.connect_timeout_seconds, connector.read_timeout_seconds,
                          connector.max_concurrent_requests)
    try:
        partner = partner_for(connector, SecretResolver())
        partner.headers()  # resolves the secrets now, on the worker
        partner.envelope()
    except SecretError as exc:
        _LOG.error("connector %s: %s", connector.id, exc)
        return None, transport, f"secret: {exc}"
    return Deliverer(connector, partner, transport.exchange, clock=clock), transport, ""


class PartnerLink:
    """A connector's deliverer on a worker, opened on first use. When it cannot be opened (a secret not readable
    yet) it is opened again on the next use; `reopen` re-reads the secrets (a rotated key)."""

    def __init__(self, connector: HttpConnectorBase, clock: Callable[[], float] = time.time) -> None:
        self._c = connector
        self._clock = clock
        self.deliverer: Optional[Deliverer] = None
        self.error = ""
        self._transport: Optional[Transport] = None

    def open(self) -> Optional[Deliverer]:
        if self.deliverer is None:
            self.close()
            self.deliverer, self._transport, self.error = open_deliverer(self._c, self._clock)
        return self.deliverer

    def reopen(self) -> Optional[Deliverer]:
        self.close()
        self.deliverer = None
        return self.open()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class PartnerDoFn(beam.DoFn):
    """A DoFn that talks to a connector's partner through its `PartnerLink`, opened on the worker."""

    def __init__(self, connector: HttpConnectorBase, clock: Callable[[], float] = time.time) -> None:
        self._c = connector
        self._clock = clock

    def setup(self) -> None:
        self._link = PartnerLink(self._c, self._clock)
        self._link.open()

    @property
    def _deliverer(self) -> Optional[Deliverer]:
        return self._link.deliverer

    @property
    def _error(self) -> str:
        return self._link.error

    def _open(self) -> Optional[Deliverer]:
        return self._link.open()

    def teardown(self) -> None:
        self._link.close()


IN_FLIGHT = 2  # batches a lane sends while it encodes the next one


class DeliverBatches(PartnerDoFn):
    """Batches → the partner. Outputs the number of events delivered; dead letters and parked batches on their
    own outputs.

    Sending overlaps encoding: a batch's requests go out on a sending thread while the DoFn decodes and encodes
    the next batch, so a lane's CPU work and its partner's round trips add up to the larger of the two, not their
    sum. Up to `IN_FLIGHT` batches are out at once; all are settled (outputs, metrics) on the DoFn's thread, with
    their own batch's timestamp and window, before the bundle ends.
    """

    def setup(self) -> None:
        super().setup()
        self._breaker = Breaker(self._c.probe_interval_seconds)
        self._parked = counter(self._c.id, "parked_batches")
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"transmit-{self._c.id}")

    def start_bundle(self) -> None:
        self._pending: deque[tuple[Deliverer, Future[Outcome], Timestamp, Any]] = deque()

    def process(self, batch: Batch, timestamp: Timestamp = beam.DoFn.TimestampParam,
                window: Any = beam.DoFn.WindowParam) -> Iterator[Any]:
        while self._pending and self._pending[0][1].done():  # what is known before deciding: the breaker
            yield from self._settle(*self._pending.popleft())
        events = events_of(batch)
        now = self._clock()
        deliverer = None if self._breaker.is_open(now) else self._open()
        if deliverer is None:
            if self._deliverer is None:  # could not open: try again after a probe interval
                self._breaker.trip(now, CREDENTIALS, self._error)
            self._parked.inc()
            yield TaggedOutput(PARKED, (self._c.id, self._breaker.held(now, events)))
            return
        future = self._sender.submit(deliverer.transmit, deliverer.prepare(events))
        self._pending.append((deliverer, future, timestamp, window))
        while len(self._pending) > IN_FLIGHT:
            yield from self._settle(*self._pending.popleft())

    def finish_bundle(self) -> Iterator[Any]:
        while self._pending:
            yield from self._settle(*self._pending.popleft())

    def _settle(self, deliverer: Deliverer, future: Future[Outcome], timestamp: Timestamp,
                window: Any) -> Iterator[Any]:
        outcome = future.result()
        deliverer.account(outcome)
        for letter in outcome.dead:
            yield TaggedOutput(DEAD, WindowedValue(letter, timestamp, (window,)))
        if outcome.delivered:
            yield WindowedValue(outcome.delivered, timestamp, (window,))
        parked = outcome.parked
        if parked is not None:
            self._breaker.trip(self._clock(), parked.kind, parked.error)
            self._parked.inc()
            yield TaggedOutput(PARKED, WindowedValue((self._c.id, parked), timestamp, (window,)))

    def teardown(self) -> None:
        self._sender.shutdown(wait=True)
        super().teardown()
