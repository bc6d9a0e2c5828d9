"""The partner stand-ins themselves: each documented rule answers as the reference says and is recorded.

Why: sender tests lean on `standin.violations == []` and on `.accepted`; if a stand-in silently accepted a broken
request (or rejected a correct one) every sender test built on it would be meaningless. Requests here are written
by hand from the reference with `requests`, not produced by our senders.
"""
from __future__ import annotations

import base64
import gzip
import threading
import uuid
from collections import Counter
from typing import Any, Callable, Iterator, Optional

import orjson
import pytest
import requests

from tests.partner_standins import (
    Records, Reply, StandIn, combine, fail_first, reject_events_where, reset_every, too_large_over,
    unauthorized_until, unauthorized_while,
)

T_S = 1_700_000_000
T_MS = T_S * 1000
CREDS: dict[str, dict[str, str]] = {
    "http": {"token": "dG9rZW4-._~"},
    "heap": {"token": "aGVhcA"},
    "amplitude": {"api_key": "amp-key"},
    "mixpanel": {"project_token": "mp-token", "secret": "mp-secret"},
    "segment": {"write_key": "seg-write-key"},
    "mparticle": {"key": "mp-key", "secret": "mp-secret"},
}
KINDS = tuple(CREDS)


def _basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def event(kind: str, i: int = 0, *, id: Optional[str] = None, pad: int = 0) -> dict[str, Any]:
    """One documented-shape record for `kind` (mParticle: one batch holding one event)."""
    eid = id or f"evt-{i}-{uuid.uuid4()}"
    extra = {"pad": "x" * pad} if pad else {}
    if kind in ("http", "heap"):
        return {"event_type": "users.messages.email.Open", "id": eid, "time": T_S,
                "user": {"user_id": "braze-1", "external_user_id": "ext-1", "timezone": "UTC"},
                "properties": {"campaign_id": "c", **extra}}
    if kind == "amplitude":
        return {"event_type": "Email Open", "insert_id": eid, "time": T_MS, "user_id": "ext-user-1",
                "event_properties": {"campaign_id": "c", **extra}}
    if kind == "mixpanel":
        return {"event": "Email Open", "properties": {"token": "mp-token", "distinct_id": "ext-1",
                                                       "$insert_id": eid, "time": T_S, **extra}}
    if kind == "segment":
        return {"type": "track", "event": "Email Opened", "userId": "ext-1", "anonymousId": "braze-1",
                "messageId": eid, "timestamp": "2023-11-14T22:13:20Z", "properties": extra}
    return {"environment": "production", "schema_version": 2, "user_identities": {"customer_id": "ext-1"},
            "events": [{"event_type": "custom_event",
                        "data": {"event_name": "Email Open", "custom_event_type": "other",
                                 "source_message_id": eid, "timestamp_unixtime_ms": T_MS,
                                 "custom_attributes": extra}}]}


def envelope(kind: str, records: list[dict[str, Any]]) -> Any:
    if kind in ("http", "heap"):
        return {"events": records}
    if kind == "amplitude":
        return {"api_key": "amp-key", "events": records}
    if kind == "segment":
        return {"batch": records}
    return records


def auth_headers(kind: str, *, wrong: bool = False) -> dict[str, str]:
    bad = "nope" if wrong else None
    if kind in ("http", "heap"):
        return {"Authorization": f"Bearer {bad or CREDS[kind]['token']}"}
    if kind == "mixpanel":
        return {"Authorization": _basic(bad or "mp-token")}
    if kind == "segment":
        return {"Authorization": _basic(bad or "seg-write-key")}
    if kind == "mparticle":
        return {"Authorization": _basic("mp-key", bad or "mp-secret")}
    return {}


def post(s: StandIn, records: Optional[list[dict[str, Any]]] = None, *, body: Optional[bytes] = None,
         wrong: bool = False, headers: Optional[dict[str, str]] = None, params: Optional[dict[str, str]] = None,
         session: Any = requests) -> requests.Response:
    """A documented request for the stand-in's kind; keyword arguments break one thing at a time."""
    h = {"Content-Type": "application/json", **auth_headers(s.kind, wrong=wrong)}
    if s.kind in ("http", "heap"):
        h["Braze-Currents-Version"] = "1"
    h.update(headers or {})
    if params is None:
        params = {"strict": "1"} if s.kind == "mixpanel" else {}
    if body is None:
        payload = envelope(s.kind, records if records is not None else [event(s.kind)])
        if s.kind == "amplitude" and wrong:
            payload["api_key"] = "nope"
        body = orjson.dumps(payload)
    response: requests.Response = session.post(
        s.url, data=body, headers={k: v for k, v in h.items() if v is not None}, params=params, timeout=5)
    return response


@pytest.fixture
def make() -> Iterator[Callable[..., StandIn]]:
    started: list[StandIn] = []

    def factory(kind: str, **kw: Any) -> StandIn:
        s = StandIn(kind, **{**CREDS[kind], **kw}).start()
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()


# ---- documented shape ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_documented_request_is_accepted_and_recorded(make: Callable[..., StandIn], kind: str) -> None:
    s = make(kind)
    records = [event(kind, i) for i in range(3)]
    r = post(s, records)
    assert r.status_code == (202 if kind == "mparticle" else 200), r.text
    assert s.violations == []
    assert s.accepted == records
    assert s.requests[0].status == r.status_code and s.requests[0].n_events == 3
    assert s.requests[0].n_bytes == len(r.request.body or b"")


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_credentials_get_401_and_a_violation(make: Callable[..., StandIn], kind: str) -> None:
    s = make(kind)
    r = post(s, wrong=True)
    assert r.status_code == 401
    assert s.accepted == [] and len(s.violations) == 1


@pytest.mark.parametrize("kind", ["http", "mixpanel", "segment", "mparticle"])
def test_missing_credentials_get_401(make: Callable[..., StandIn], kind: str) -> None:
    s = make(kind)
    assert post(s, headers={"Authorization": None}).status_code == 401  # type: ignore[dict-item]
    assert "missing" in s.violations[0]


def test_http_without_token_configured_needs_no_auth(make: Callable[..., StandIn]) -> None:
    s = make("http", token=None)
    assert post(s, headers={"Authorization": None}).status_code == 200  # type: ignore[dict-item]
    assert s.violations == []


def test_amplitude_missing_api_key_is_an_auth_failure(make: Callable[..., StandIn]) -> None:
    s = make("amplitude")
    assert post(s, body=orjson.dumps({"events": [event("amplitude")]})).status_code == 401
    assert "api_key" in s.violations[0]


def test_mixpanel_accepts_secret_and_service_account(make: Callable[..., StandIn]) -> None:
    s = make("mixpanel", key="sa-user", secret="sa-secret")
    assert post(s, headers={"Authorization": _basic("mp-token")}).status_code == 200
    assert post(s, headers={"Authorization": _basic("sa-user", "sa-secret")},
                params={"strict": "1", "project_id": "42"}).status_code == 200
    assert s.violations == []
    assert post(s, headers={"Authorization": _basic("sa-user", "sa-secret")}).status_code == 401
    assert "project_id" in s.violations[0]


def test_mixpanel_api_secret_as_username(make: Callable[..., StandIn]) -> None:
    s = make("mixpanel")
    assert post(s, headers={"Authorization": _basic("mp-secret")}).status_code == 200


def test_segment_write_key_in_body(make: Callable[..., StandIn]) -> None:
    s = make("segment")
    body = orjson.dumps({"batch": [event("segment")], "writeKey": "seg-write-key"})
    assert post(s, body=body, headers={"Authorization": None}).status_code == 200  # type: ignore[dict-item]
    assert s.violations == []


def test_mixpanel_gzip_and_ndjson_accepted(make: Callable[..., StandIn]) -> None:
    s = make("mixpanel")
    records = [event("mixpanel", i) for i in range(2)]
    assert post(s, body=gzip.compress(orjson.dumps(records)), headers={"Content-Encoding": "gzip"}).ok
    ndjson = b"\n".join(orjson.dumps(r) for r in records)
    assert post(s, body=ndjson, headers={"Content-Type": "application/x-ndjson"}).ok
    assert s.violations == [] and len(s.accepted) == 4


# ---- shape violations ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, breaks", [
    ("http", lambda e: e.pop("properties")),
    ("http", lambda e: e.update(extra=1)),
    ("http", lambda e: e["user"].update(email="a@b")),
    ("http", lambda e: e.update(time=T_MS)),
    ("heap", lambda e: e.update(id="")),
    ("amplitude", lambda e: e.update(time=T_S)),
    ("amplitude", lambda e: e.pop("insert_id")),
    ("amplitude", lambda e: e.pop("user_id")),
    ("amplitude", lambda e: e.update(user_id="ab")),
    ("mixpanel", lambda e: e["properties"].pop("$insert_id")),
    ("mixpanel", lambda e: e["properties"].update(token="other")),
    ("segment", lambda e: e.update(timestamp="2023-11-14T22:13:20")),
    ("segment", lambda e: e.update(type="identify")),
    ("segment", lambda e: e.pop("messageId")),
    ("mparticle", lambda e: e.update(user_identities={"customerid": "ext-1"})),
    ("mparticle", lambda e: e["events"][0]["data"].update(timestamp_unixtime_ms=T_S)),
    ("mparticle", lambda e: e.update(environment="prod")),
])
def test_undocumented_shape_gets_400(make: Callable[..., StandIn], kind: str,
                                     breaks: Callable[[dict[str, Any]], Any]) -> None:
    s = make(kind)
    bad = event(kind)
    breaks(bad)
    assert post(s, [event(kind), bad]).status_code == 400
    assert s.accepted == [] and s.violations and all("[1]" in v for v in s.violations)


def test_http_requires_currents_version_header(make: Callable[..., StandIn]) -> None:
    s = make("http")
    assert post(s, headers={"Braze-Currents-Version": None}).status_code == 400  # type: ignore[dict-item]
    assert "Braze-Currents-Version" in s.violations[0]


@pytest.mark.parametrize("kind", ["http", "segment"])
def test_content_type_must_be_json(make: Callable[..., StandIn], kind: str) -> None:
    s = make(kind)
    assert post(s, headers={"Content-Type": "text/plain"}).status_code == 400
    assert "Content-Type" in s.violations[0]


def test_mixpanel_requires_strict(make: Callable[..., StandIn]) -> None:
    s = make("mixpanel")
    assert post(s, params={}).status_code == 400
    assert "strict=1" in s.violations[0]


def test_partner_path_and_method_are_checked(make: Callable[..., StandIn]) -> None:
    s = make("segment")
    assert requests.post(s.url.replace("/v1/batch", "/v1/track"), json={"batch": [event("segment")]},
                         headers=auth_headers("segment"), timeout=5).status_code == 404
    assert requests.get(s.url, timeout=5).status_code == 405
    assert len(s.requests) == 2 and len(s.violations) >= 2


def test_invalid_json_gets_400(make: Callable[..., StandIn]) -> None:
    s = make("amplitude")
    assert post(s, body=b'{"api_key": "amp-key", "events": [NaN]}').status_code == 400


# ---- limits --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, limit", [("http", 100), ("heap", 100), ("amplitude", 2000), ("mixpanel", 2000),
                                         ("mparticle", 100)])
def test_too_many_events_gets_413(make: Callable[..., StandIn], kind: str, limit: int) -> None:
    s = make(kind)
    template = event(kind)
    assert post(s, [template] * limit).ok
    assert s.violations == []
    assert post(s, [template] * (limit + 1)).status_code == 413
    assert len(s.violations) == 1 and "limit" in s.violations[0]


def test_max_events_is_configurable(make: Callable[..., StandIn]) -> None:
    s = make("http", max_events=2)
    assert post(s, [event("http", i) for i in range(3)]).status_code == 413


@pytest.mark.parametrize("kind, limit, status", [
    ("amplitude", 999_999, 413),  # < 1,000,000 bytes
    ("mixpanel", 2 * 1024 * 1024, 413),
    ("segment", 500 * 1024, 400),
    ("mparticle", 256 * 1024, 413),
])
def test_body_over_the_size_limit(make: Callable[..., StandIn], kind: str, limit: int, status: int) -> None:
    s = make(kind)
    per_record = 20_000 if kind in ("segment", "mparticle") else 200_000  # under the per-event/batch limits
    n = limit // per_record + 1
    body = orjson.dumps(envelope(kind, [event(kind, i, pad=per_record) for i in range(n)]))
    assert len(body) > limit
    assert post(s, body=body).status_code == status
    assert any("bytes; limit" in v for v in s.violations)


def test_size_limit_boundary_is_inclusive(make: Callable[..., StandIn]) -> None:
    s = make("segment", max_bytes=5000)
    base = orjson.dumps({"batch": [event("segment", pad=1)]})
    body = orjson.dumps({"batch": [event("segment", pad=1 + 5000 - len(base))]})
    assert len(body) == 5000 and post(s, body=body).ok
    assert post(s, body=body.replace(b'"pad":"', b'"pad":"x')).status_code == 400


def test_segment_event_over_32kb(make: Callable[..., StandIn]) -> None:
    s = make("segment")
    assert post(s, [event("segment", pad=33 * 1024)]).status_code == 400
    assert "32 KB" in s.violations[0]


def test_segment_too_large_status_is_configurable(make: Callable[..., StandIn]) -> None:
    s = make("segment", too_large_status=413)
    assert post(s, [event("segment", pad=33 * 1024)]).status_code == 413


def test_mparticle_batch_over_128kb(make: Callable[..., StandIn]) -> None:
    s = make("mparticle")
    assert post(s, [event("mparticle", pad=130 * 1024)]).status_code == 413
    assert "128 KB" in s.violations[0]


# ---- empty-batch credential probes (http/heap) ---------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"", b'{"events": []}'])
def test_http_empty_batch_is_a_probe(make: Callable[..., StandIn], body: bytes) -> None:
    s = make("http")
    assert post(s, body=body).status_code == 200
    assert s.probes == 1 and s.accepted == [] and s.violations == []


def test_http_probe_still_checks_auth(make: Callable[..., StandIn]) -> None:
    s = make("heap")
    assert post(s, body=b"", wrong=True).status_code == 401
    assert s.probes == 0 and len(s.violations) == 1


def test_partner_empty_batch_is_a_violation(make: Callable[..., StandIn]) -> None:
    s = make("segment")
    assert post(s, []).status_code == 400
    assert s.probes == 0


# ---- scripted faults -----------------------------------------------------------------------------------------------

def test_fail_first(make: Callable[..., StandIn]) -> None:
    s = make("http", script=fail_first(2, 503))
    e = event("http")
    assert [post(s, [e]).status_code for _ in range(3)] == [503, 503, 200]
    assert s.accepted == [e] and s.violations == []
    assert [r.status for r in s.requests] == [503, 503, 200]


def test_429_with_retry_after(make: Callable[..., StandIn]) -> None:
    s = make("mparticle", script=fail_first(1, 429, {"Retry-After": "1"}))
    r = post(s)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert post(s).status_code == 202


def test_reset_drops_the_connection(make: Callable[..., StandIn]) -> None:
    s = make("amplitude", script=reset_every(2))
    with requests.Session() as session:
        assert post(s, session=session).ok
        with pytest.raises(requests.ConnectionError):
            post(s, session=session)
        assert post(s, session=session).ok
    assert [r.status for r in s.requests] == [200, 0, 200]
    assert len(s.accepted) == 2


def test_reject_events_where_only_hits_marked_requests(make: Callable[..., StandIn]) -> None:
    s = make("http", script=reject_events_where(lambda e: e["properties"].get("poison") is True))
    poison = event("http")
    poison["properties"]["poison"] = True
    clean = event("http", 1)
    assert post(s, [clean, poison]).status_code == 400
    assert post(s, [clean]).status_code == 200
    assert post(s, [poison]).status_code == 400
    assert s.accepted == [clean] and s.violations == []


def test_too_large_over(make: Callable[..., StandIn]) -> None:
    s = make("http", script=too_large_over(2000))
    assert post(s, [event("http", i) for i in range(20)]).status_code == 413
    assert post(s, [event("http")]).status_code == 200


def test_unauthorized_until(make: Callable[..., StandIn]) -> None:
    s = make("segment", script=unauthorized_until(2))
    assert [post(s).status_code for _ in range(3)] == [401, 401, 200]
    assert s.violations == []  # the sender's credentials were right


def test_unauthorized_while(make: Callable[..., StandIn]) -> None:
    fixed = {"yes": False}
    s = make("mixpanel", script=unauthorized_while(lambda _n: not fixed["yes"]))
    assert post(s).status_code == 401
    fixed["yes"] = True
    assert post(s).status_code == 200


def test_combine_first_answer_wins(make: Callable[..., StandIn]) -> None:
    seen: list[int] = []

    def spy(number: int, events: Records) -> Optional[Reply]:
        seen.append(number)
        return None

    s = make("http", script=combine(fail_first(1, 500), fail_first(2, 429), spy))
    assert [post(s).status_code for _ in range(3)] == [500, 429, 200]
    assert seen == [3]


def test_script_sees_records_and_body_size(make: Callable[..., StandIn]) -> None:
    got: list[tuple[int, int, int]] = []

    def spy(number: int, events: Records) -> Optional[Reply]:
        got.append((number, len(events), events.n_bytes))
        return None

    s = make("mparticle", script=spy)
    r = post(s, [event("mparticle", i) for i in range(2)])
    assert got == [(1, 2, len(r.request.body or b""))]


def test_violations_recorded_even_when_script_answers(make: Callable[..., StandIn]) -> None:
    s = make("http", script=fail_first(1, 500))
    assert post(s, wrong=True).status_code == 500
    assert len(s.violations) == 1


# ---- runtime credential switch -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["http", "amplitude"])
def test_credentials_switch(make: Callable[..., StandIn], kind: str) -> None:
    s = make(kind)
    s.credentials_valid = False
    assert post(s).status_code == 401
    if kind == "http":
        assert post(s, body=b"").status_code == 401 and s.probes == 0
    s.credentials_valid = True
    assert post(s).ok
    assert s.violations == [] and len(s.accepted) == 1


# ---- connection handling -------------------------------------------------------------------------------------------

def test_keep_alive_reuses_one_connection(make: Callable[..., StandIn]) -> None:
    s = make("mixpanel")
    with requests.Session() as session:
        for i in range(3):
            assert post(s, [event("mixpanel", i)], session=session).ok
        post(s, params={}, session=session)  # an error answer must not break the connection either
        assert post(s, session=session).ok
    assert s.connections == 1


def test_separate_clients_get_separate_connections(make: Callable[..., StandIn]) -> None:
    s = make("http")
    post(s)
    post(s)
    assert s.connections == 2


def test_chunked_body_is_read(make: Callable[..., StandIn]) -> None:
    s = make("http")
    body = orjson.dumps({"events": [event("http")]})
    with requests.Session() as session:
        r = session.post(s.url, data=iter([body[:10], body[10:]]), timeout=5,
                         headers={"Content-Type": "application/json", "Braze-Currents-Version": "1",
                                  **auth_headers("http")})
        assert r.status_code == 200
        assert post(s, session=session).ok
    assert s.violations == [] and s.connections == 1


def test_stop_does_not_wait_for_an_idle_keep_alive_connection() -> None:
    """stop() returns while a client still holds a keep-alive connection open. A stop that waited for that
    connection would never return before the session closes (after the `with`), so it is given 30 s in a thread:
    generous for a loaded machine, and a hang fails the test instead of the suite."""
    with requests.Session() as session:
        s = StandIn("http").start()
        post(s, session=session)
        stopper = threading.Thread(target=s.stop, daemon=True)
        stopper.start()
        stopper.join(30)
        assert not stopper.is_alive()


def test_quiet(make: Callable[..., StandIn], capfd: pytest.CaptureFixture[str]) -> None:
    s = make("http")
    post(s)
    post(s, wrong=True)
    requests.get(s.url, timeout=5)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_context_manager_and_url() -> None:
    with StandIn("mparticle") as s:
        assert s.url.startswith("http://127.0.0.1:") and s.url.endswith("/v2/bulkevents")
    with pytest.raises(RuntimeError):
        _ = s.url


def test_unknown_kind() -> None:
    with pytest.raises(ValueError):
        StandIn("tealium")


# ---- dedupe --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_duplicates_counted_by_dedupe_key(make: Callable[..., StandIn], kind: str) -> None:
    s = make(kind)
    a, b, c = (event(kind, id=x) for x in ("id-a", "id-b", "id-c"))
    post(s, [a, b])
    post(s, [b, c])
    post(s, [b])
    assert sorted(s.accepted_ids()) == ["id-a", "id-b", "id-b", "id-b", "id-c"]
    assert s.duplicates() == Counter({"id-b": 3})
