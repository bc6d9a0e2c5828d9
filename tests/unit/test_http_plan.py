"""The request splitter: any batch of events of any sizes becomes requests that each fit the partner's count and
byte limits and together carry every event exactly once, in order (or, alone over a limit, `too_large`)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.http.partners.base import Envelope, Limits
from sinks.http.plan import plan_requests, request_size

ENVELOPES = st.sampled_from([Envelope(b'{"events":[', b"]}"), Envelope(b"[", b"]"),
                             Envelope(b'{"api_key":"k","events":[', b"]}")])


@st.composite
def cases(draw):  # noqa: ANN001, ANN201
    sizes = draw(st.lists(st.integers(min_value=1, max_value=3000), max_size=300))
    limits = Limits(max_events=draw(st.integers(1, 120)), max_request_bytes=draw(st.integers(40, 20_000)),
                    max_event_bytes=draw(st.integers(1, 5000)))
    return [(i, b"x" * n) for i, n in enumerate(sizes)], limits, draw(ENVELOPES), draw(st.integers(1, 200))


@settings(max_examples=400, deadline=None)
@given(cases())
def test_every_request_fits_the_count_and_byte_limits(case) -> None:  # noqa: ANN001
    items, limits, envelope, max_events = case
    requests, _ = plan_requests(items, limits, envelope, max_events)
    for request in requests:
        assert 1 <= len(request) <= min(max_events, limits.max_events)
        assert request_size(request, envelope) <= limits.max_request_bytes
        body = envelope.prefix + envelope.separator.join(e for _, e in request) + envelope.suffix
        assert len(body) == request_size(request, envelope)


@settings(max_examples=400, deadline=None)
@given(cases())
def test_every_event_is_carried_exactly_once_in_order(case) -> None:  # noqa: ANN001
    items, limits, envelope, max_events = case
    requests, too_large = plan_requests(items, limits, envelope, max_events)
    sent = [i for request in requests for i, _ in request]
    assert sent == sorted(sent)
    assert sorted(sent + [i for i, _ in too_large]) == [i for i, _ in items]


@settings(max_examples=400, deadline=None)
@given(cases())
def test_only_events_that_cannot_fit_alone_are_too_large(case) -> None:  # noqa: ANN001
    items, limits, envelope, max_events = case
    _, too_large = plan_requests(items, limits, envelope, max_events)
    for _, encoded in too_large:
        assert (len(encoded) > limits.max_event_bytes
                or request_size([(0, encoded)], envelope) > limits.max_request_bytes)
    for _, encoded in items:
        fits = request_size([(0, encoded)], envelope) <= limits.max_request_bytes
        if len(encoded) <= limits.max_event_bytes and fits:
            assert all(e is not encoded for _, e in too_large)


def test_requests_are_filled_before_a_new_one_starts() -> None:
    items = [(i, b"x" * 10) for i in range(25)]
    requests, too_large = plan_requests(items, Limits(10, 10_000, 100), Envelope(b"[", b"]"), 100)
    assert [len(r) for r in requests] == [10, 10, 5] and too_large == []
