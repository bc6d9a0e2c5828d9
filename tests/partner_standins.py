"""Local stand-ins for the Currents Custom HTTP endpoint and the analytics partners' ingest APIs.

Why: the senders are written from docs/reference/currents-behaviour.md (§2 Custom HTTP, §5 partners). These
stand-ins are written from the same reference, independently of the senders, so a test that drives a sender against
them checks the documented request shape, auth and limits rather than the sender's own idea of them. Every request
that breaks the documentation is answered with the partner's error status *and* recorded in `.violations`, so a test
can simply assert `standin.violations == []` at the end.

Real HTTP on 127.0.0.1 (port chosen by the OS, so no races between parallel workers), HTTP/1.1 keep-alive with exact
Content-Length so a client's connection pool is exercised as it would be against the real partner.

    with StandIn("amplitude", api_key="k", script=fail_first(1, 503)) as amp:
        send(endpoint=amp.url, ...)
        assert amp.violations == []
        assert amp.duplicates() == Counter()

Limit choices (where the reference leaves room) are listed in `_SPECS` and the `StandIn` docstring.
"""
from __future__ import annotations

import base64
import binascii
import gzip
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from email.message import Message
from typing import Any, Callable, Mapping, NamedTuple, Optional, TypeGuard
from urllib.parse import parse_qs, urlsplit

import orjson

__all__ = [
    "KINDS", "Records", "Reply", "RequestRecord", "Script", "StandIn",
    "combine", "fail_first", "reject_events_where", "reset_every", "too_large_over",
    "unauthorized_until", "unauthorized_while",
]

KINDS = ("http", "heap", "amplitude", "mixpanel", "segment", "mparticle")

KiB = 1024
_MAX_READ = 64 * 1024 * KiB  # refuse to buffer absurd bodies; far above every documented limit
_MS_THRESHOLD = 10**11  # a UNIX time above this is in milliseconds (10**11 s is the year 5138)
_MAX_MESSAGES_PER_REQUEST = 10  # keep `.violations` readable when a 2,000-event batch is wholly wrong


# --------------------------------------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    """A scripted answer that replaces the stand-in's normal answer (violations are still recorded).

    `reset=True` closes the socket with an RST and no answer at all, the way a crashed proxy or a load balancer
    dropping the connection looks to a client. The default status is 500 because a script exists to inject faults.
    """

    status: int = 500
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    reset: bool = False


class Records(list[dict[str, Any]]):
    """The request's top-level records as parsed (mParticle: batches), plus the body size in bytes.

    A list subclass so scripts keep the simple `(request_number, events)` signature while size-based faults
    (`too_large_over`) can look at the real wire size instead of re-serialising.
    """

    n_bytes: int = 0


Script = Callable[[int, Records], Optional[Reply]]


class RequestRecord(NamedTuple):
    """One received request. `status` is 0 when the connection was reset without an answer."""

    status: int
    n_events: int  # top-level records (mParticle: batches)
    n_bytes: int  # body bytes on the wire (compressed size when gzip)
    headers: dict[str, str]


# --------------------------------------------------------------------------------------------------------------------
# Scripted faults
# --------------------------------------------------------------------------------------------------------------------

def fail_first(n: int, status: int, headers: Optional[Mapping[str, str]] = None) -> Script:
    """Answer `status` (with `headers`, e.g. {"Retry-After": "1"}) to requests 1..n, so retry paths are exercised."""
    reply = Reply(status, dict(headers or {}))
    return lambda number, _events: reply if number <= n else None


def unauthorized_until(n_requests: int) -> Script:
    """Answer 401 to requests 1..n_requests: credentials that start working later (a customer fixing them)."""
    return unauthorized_while(lambda number: number <= n_requests)


def unauthorized_while(predicate: Callable[[int], bool]) -> Script:
    """Answer 401 while `predicate(request_number)` is true; the predicate may also ignore its argument and look at
    a clock or a threading.Event, so a test can end the outage at a moment of its choosing."""
    reply = Reply(401, {}, b'{"error":"invalid credentials (scripted)"}')
    return lambda number, _events: reply if predicate(number) else None


def reject_events_where(pred: Callable[[dict[str, Any]], bool]) -> Script:
    """Answer 400 to any request holding a record that matches `pred` (a "poison" event).

    Models the Currents rule that 400 makes the sender split to batches of one and drop what still fails: the
    clean events must eventually arrive, the marked ones never. For mParticle `pred` sees whole batches.
    """
    reply = Reply(400, {}, b'{"error":"rejected event (scripted)"}')
    return lambda _number, events: reply if any(pred(e) for e in events) else None


def too_large_over(n_bytes: int) -> Script:
    """Answer 413 to bodies larger than `n_bytes`, to drive the split-smaller path below the documented limits."""
    reply = Reply(413, {}, b'{"error":"payload too large (scripted)"}')
    return lambda _number, events: reply if events.n_bytes > n_bytes else None


def reset_every(k: int) -> Script:
    """Drop every k-th request's connection without an answer (request numbers k, 2k, ...)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    reply = Reply(reset=True)
    return lambda number, _events: reply if number % k == 0 else None


def combine(*scripts: Script) -> Script:
    """Consult `scripts` in order; the first that answers wins."""
    def script(number: int, events: Records) -> Optional[Reply]:
        for s in scripts:
            reply = s(number, events)
            if reply is not None:
                return reply
        return None
    return script


# --------------------------------------------------------------------------------------------------------------------
# Per-partner documented behaviour
# --------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Spec:
    """What §2/§5 of the reference document for one partner. `max_bytes` is the largest accepted body."""

    path: Optional[str]  # None: any path (the customer chooses the URL)
    max_events: Optional[int]
    max_bytes: Optional[int]
    too_large_status: int
    ok_status: int


_SPECS: dict[str, _Spec] = {
    # §2.2: up to 100 events; 413 is the documented "split smaller" answer, so more than 100 gets 413.
    "http": _Spec(None, 100, None, 413, 200),
    "heap": _Spec(None, 100, None, 413, 200),  # §5.5: Heap uses the Custom HTTP protocol
    # §5.1: <= 2,000 events and < 1 MB (1,000,000 bytes) per request, else 413.
    "amplitude": _Spec("/2/httpapi", 2000, 1_000_000 - 1, 413, 200),
    # §5.2: <= 2,000 events; size: current docs 10 MB, older 2 MB -> the stricter 2 MiB (uncompressed) by default.
    "mixpanel": _Spec("/import", 2000, 2 * 1024 * KiB, 413, 200),
    # §5.3: <= 500 KB per request and 32 KB per event, Segment answers 400 (configurable: too_large_status).
    "segment": _Spec("/v1/batch", None, 500 * KiB, 400, 200),
    # §5.4: <= 100 batches, <= 256 KB per request, <= 128 KB per batch; success is 202 Accepted.
    "mparticle": _Spec("/v2/bulkevents", 100, 256 * KiB, 413, 202),
}

_HTTP_KEYS = frozenset({"event_type", "id", "time", "user", "properties"})
_HTTP_USER_KEYS = frozenset({"user_id", "external_user_id", "device_id", "timezone"})
_SEGMENT_EVENT_MAX = 32 * KiB
_MPARTICLE_BATCH_MAX = 128 * KiB
_MIXPANEL_EVENT_MAX = 1_000_000 - 1  # "each event < 1 MB"
_MIXPANEL_MAX_PROPERTIES = 254  # "< 255 properties"
_AMPLITUDE_MIN_ID_LENGTH = 5  # ids shorter than this are dropped by Amplitude unless options.min_id_length says so


class _Problem(NamedTuple):
    status: int
    message: str
    violation: bool = True  # False for simulated server-side states (credentials switched off)


# Which problem decides the answer when there are several: the order a real server checks in.
_PRIORITY = (405, 404, 401, 403, 413, 400)


def _nonempty_str(v: Any) -> TypeGuard[str]:
    return isinstance(v, str) and v != ""


def _int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _size(obj: Any) -> int:
    """Compact serialised size: a lower bound of what the sender put on the wire for this record."""
    return len(orjson.dumps(obj))


def _basic(headers: Message) -> Optional[tuple[str, str]]:
    value = headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _check_http_event(e: dict[str, Any]) -> list[str]:
    """§2.3: exactly event_type/id/time/user/properties, user ⊆ the four identity keys, time in seconds."""
    out: list[str] = []
    keys = set(e)
    if keys != _HTTP_KEYS:
        missing, extra = sorted(_HTTP_KEYS - keys), sorted(keys - _HTTP_KEYS)
        out.append(f"top-level keys must be exactly {sorted(_HTTP_KEYS)}; missing {missing}, unexpected {extra}")
    if "event_type" in e and not _nonempty_str(e["event_type"]):
        out.append("event_type must be a non-empty string")
    if "id" in e and not _nonempty_str(e["id"]):
        out.append("id must be a non-empty string (it is the dedupe key)")
    if "time" in e:
        t = e["time"]
        if not _int(t):
            out.append(f"time must be an integer UNIX time in seconds, got {t!r}")
        elif t > _MS_THRESHOLD:
            out.append(f"time {t} looks like milliseconds; Currents sends seconds")
    if "user" in e:
        user = e["user"]
        if not isinstance(user, dict):
            out.append("user must be an object")
        else:
            extra_user = sorted(set(user) - _HTTP_USER_KEYS)
            if extra_user:
                out.append(f"user may only hold {sorted(_HTTP_USER_KEYS)}; unexpected {extra_user}")
            bad = sorted(k for k, v in user.items() if not isinstance(v, str))
            if bad:
                out.append(f"user fields must be strings: {bad}")
    if "properties" in e and not isinstance(e["properties"], dict):
        out.append("properties must be an object")
    return out


def _check_amplitude_event(e: dict[str, Any], min_id_length: int) -> list[str]:
    """§5.1: event_type, insert_id (dedupe), time in ms, and a user_id or device_id Amplitude will not drop."""
    out: list[str] = []
    if not _nonempty_str(e.get("event_type")):
        out.append("event_type must be a non-empty string")
    if not _nonempty_str(e.get("insert_id")):
        out.append("insert_id must be a non-empty string (Braze id -> Amplitude dedupe key)")
    t = e.get("time")
    if not _int(t):
        out.append(f"time must be an integer in milliseconds, got {t!r}")
    elif t <= _MS_THRESHOLD:
        out.append(f"time {t} looks like seconds; Amplitude expects milliseconds")
    present = []
    for name in ("user_id", "device_id"):
        value = e.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            out.append(f"{name} must be a string")
        elif len(value) < min_id_length:
            out.append(f"{name} {value!r} is shorter than min_id_length={min_id_length}; Amplitude drops it")
        else:
            present.append(name)
    if not present and not any(e.get(n) is not None for n in ("user_id", "device_id")):
        out.append("needs user_id or device_id")
    for name in ("event_properties", "user_properties"):
        if name in e and not isinstance(e[name], dict):
            out.append(f"{name} must be an object")
    return out


def _check_mixpanel_event(e: dict[str, Any], project_token: Optional[str]) -> list[str]:
    """§5.2: {event, properties: {token, distinct_id, $insert_id, time}}, < 255 properties, < 1 MB."""
    out: list[str] = []
    if set(e) - {"event", "properties"}:
        out.append(f"unexpected keys {sorted(set(e) - {'event', 'properties'})}; only event and properties")
    if not _nonempty_str(e.get("event")):
        out.append("event must be a non-empty string")
    props = e.get("properties")
    if not isinstance(props, dict):
        out.append("properties must be an object")
        return out
    token = props.get("token")
    if not _nonempty_str(token):
        out.append("properties.token missing")
    elif project_token is not None and token != project_token:
        out.append("properties.token is not the project token")
    if not _nonempty_str(props.get("distinct_id")):
        out.append("properties.distinct_id must be a non-empty string (users without external_user_id are skipped)")
    if not _nonempty_str(props.get("$insert_id")):
        out.append("properties.$insert_id must be a non-empty string (dedupe key)")
    if not _number(props.get("time")):
        out.append(f"properties.time must be a number, got {props.get('time')!r}")
    if len(props) > _MIXPANEL_MAX_PROPERTIES:
        out.append(f"{len(props)} properties; Mixpanel allows < 255")
    if _size(e) > _MIXPANEL_EVENT_MAX:
        out.append("event is >= 1 MB")
    return out


def _iso_8601_with_offset(value: Any) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _check_segment_event(e: dict[str, Any]) -> list[str]:
    """§5.3: track call with event, userId/anonymousId, messageId (dedupe) and an ISO-8601 timestamp."""
    out: list[str] = []
    if e.get("type") != "track":
        out.append(f"type must be 'track', got {e.get('type')!r}")
    if not _nonempty_str(e.get("event")):
        out.append("event must be a non-empty string")
    ids = [n for n in ("userId", "anonymousId") if e.get(n) is not None]
    for n in ids:
        if not _nonempty_str(e[n]):
            out.append(f"{n} must be a non-empty string")
    if not ids:
        out.append("needs userId or anonymousId")
    if not _nonempty_str(e.get("messageId")):
        out.append("messageId must be a non-empty string (dedupe key)")
    if not _iso_8601_with_offset(e.get("timestamp")):
        out.append(f"timestamp must be ISO-8601 date-time with a UTC offset, got {e.get('timestamp')!r}")
    for n in ("properties", "context"):
        if n in e and not isinstance(e[n], dict):
            out.append(f"{n} must be an object")
    return out


def _check_mparticle_batch(b: dict[str, Any]) -> list[str]:
    """§5.4: {environment, schema_version?, user_identities, events: [{event_type, data: {...}}]}.

    `user_identities` must use mParticle's own key `customer_id`; the Braze glossary prints `customerid`, which the
    reference flags as a misprint, so sending it is recorded as a violation.
    """
    out: list[str] = []
    if b.get("environment") not in ("production", "development"):
        out.append(f"environment must be 'production' or 'development', got {b.get('environment')!r}")
    if "schema_version" in b and not _int(b["schema_version"]):
        out.append("schema_version must be an integer")
    identities = b.get("user_identities")
    if not isinstance(identities, dict) or not identities:
        out.append("user_identities must be a non-empty object (users without external_user_id are skipped)")
    else:
        if "customerid" in identities:
            out.append("user_identities.customerid is the glossary's misprint; mParticle's key is customer_id")
        bad = sorted(k for k, v in identities.items() if not _nonempty_str(v))
        if bad:
            out.append(f"user_identities values must be non-empty strings: {bad}")
    events = b.get("events")
    if not isinstance(events, list) or not events:
        out.append("events must be a non-empty array")
        return out
    for j, ev in enumerate(events):
        if not isinstance(ev, dict):
            out.append(f"events[{j}] must be an object")
            continue
        kind = ev.get("event_type")
        if not _nonempty_str(kind):
            out.append(f"events[{j}].event_type must be a non-empty string")
        data = ev.get("data")
        if not isinstance(data, dict):
            out.append(f"events[{j}].data must be an object")
            continue
        if kind == "custom_event" and not _nonempty_str(data.get("event_name")):
            out.append(f"events[{j}].data.event_name must be a non-empty string")
        if not _nonempty_str(data.get("source_message_id")):
            out.append(f"events[{j}].data.source_message_id must be a non-empty string (dedupe key)")
        ts = data.get("timestamp_unixtime_ms")
        if not _int(ts) or ts <= _MS_THRESHOLD:
            out.append(f"events[{j}].data.timestamp_unixtime_ms must be integer milliseconds, got {ts!r}")
    return out


def _dedupe_ids(kind: str, record: dict[str, Any]) -> list[str]:
    """The partner's dedupe key(s) for one accepted record (§5: Braze `id` -> partner key)."""
    try:
        if kind in ("http", "heap"):
            return [record["id"]]
        if kind == "amplitude":
            return [record["insert_id"]]
        if kind == "mixpanel":
            return [record["properties"]["$insert_id"]]
        if kind == "segment":
            return [record["messageId"]]
        return [ev["data"]["source_message_id"] for ev in record.get("events", [])]
    except (KeyError, TypeError):
        return []


# --------------------------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------------------------

class _BadFraming(Exception):
    """The body could not be read as HTTP/1.1 framing; the connection cannot be reused."""


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """Read exactly the body (Content-Length or chunked) so the connection stays usable for keep-alive."""
    rfile = handler.rfile
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            line = rfile.readline(65537)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise _BadFraming("bad chunk size line") from exc
            if size == 0:
                while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > _MAX_READ:
                raise _BadFraming("body too large to buffer")
            chunk = rfile.read(size)
            if len(chunk) != size:
                raise _BadFraming("short chunk")
            chunks.append(chunk)
            rfile.readline()
    length = handler.headers.get("Content-Length")
    if length is None:
        return b""
    try:
        n = int(length)
    except ValueError as exc:
        raise _BadFraming("bad Content-Length") from exc
    if n < 0 or n > _MAX_READ:
        raise _BadFraming("Content-Length out of range")
    body = rfile.read(n)
    if len(body) != n:
        raise _BadFraming("short body")
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's session reuses one connection
    server_version = "PartnerStandIn/1"
    sys_version = ""
    timeout = 30  # idle keep-alive connections release their thread eventually
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle + delayed ACK adds ~40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: tests read records, not logs
        pass

    def do_POST(self) -> None:
        self.server.standin._handle(self)  # noqa: SLF001 - the handler is the stand-in's own

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST


class _Server(ThreadingHTTPServer):
    """Threading server that counts connections and can drop one with an RST."""

    daemon_threads = True
    block_on_close = False  # stop() closes live connections itself; joining idle keep-alive threads would hang

    def __init__(self, standin: "StandIn") -> None:
        self.standin = standin
        self._conn_lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._to_reset: set[socket.socket] = set()
        self.connections = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self.connections += 1
            self._open.add(request)
        super().process_request(request, client_address)

    def mark_reset(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._conn_lock:
            self._to_reset.add(sock)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._open.discard(request)
            reset = request in self._to_reset
            self._to_reset.discard(request)
        if reset:
            self.close_request(request)  # no FIN first: linger 0 makes close() send RST
        else:
            super().shutdown_request(request)

    def close_all(self) -> None:
        with self._conn_lock:
            live = list(self._open)
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet: clients hanging up is normal
        pass


# --------------------------------------------------------------------------------------------------------------------
# The stand-in
# --------------------------------------------------------------------------------------------------------------------

class StandIn:
    """One partner's ingest API on 127.0.0.1, checking every request against the reference and recording it.

    Credentials (None = not configured, so any well-formed credential of the right kind is accepted):
      http/heap: `token` (Bearer);  amplitude: `api_key` (in the body);  segment: `write_key` (Basic
      "<writeKey>:" or `writeKey` in the body);  mixpanel: `project_token` or `secret` as Basic username with
      empty password, or service account `key`:`secret` plus a `project_id` query parameter;  mparticle:
      `key`:`secret` (Basic).
    Limits default to the reference (see `_SPECS`); `max_events`, `max_bytes` and `too_large_status` override them.

    Answers: 405 wrong method, 404 wrong path, 401 bad or missing credentials (Amplitude really answers 400 "invalid
    api key"; 401 here so the sender's credential path is exercised), 413 too many events / too large (Segment:
    400), 400 bad shape. A `script` is consulted before the normal answer; its Reply replaces that answer, but
    violations are still recorded. `.accepted` holds the records of every request answered 2xx.
    """

    def __init__(
        self,
        kind: str,
        *,
        token: Optional[str] = None,
        api_key: Optional[str] = None,
        write_key: Optional[str] = None,
        key: Optional[str] = None,
        secret: Optional[str] = None,
        project_token: Optional[str] = None,
        script: Optional[Script] = None,
        max_events: Optional[int] = None,
        max_bytes: Optional[int] = None,
        too_large_status: Optional[int] = None,
    ) -> None:
        if kind not in _SPECS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        spec = _SPECS[kind]
        self.kind = kind
        self.token, self.api_key, self.write_key = token, api_key, write_key
        self.key, self.secret, self.project_token = key, secret, project_token
        self.script = script
        self.max_events = spec.max_events if max_events is None else max_events
        self.max_bytes = spec.max_bytes if max_bytes is None else max_bytes
        self.too_large_status = spec.too_large_status if too_large_status is None else too_large_status
        self.ok_status = spec.ok_status
        self.path = spec.path or "/currents"

        self._lock = threading.Lock()
        self._credentials_valid = True
        self._request_number = 0
        self.violations: list[str] = []
        self.accepted: list[dict[str, Any]] = []
        self.requests: list[RequestRecord] = []
        self.probes = 0
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # ---- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> "StandIn":
        if self._server is not None:
            return self
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01},  # stop() waits up to one poll
            name=f"standin-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "StandIn":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The URL to configure as the connector's `endpoint` (partners: their documented path)."""
        if self._server is None:
            raise RuntimeError("stand-in not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    @property
    def connections(self) -> int:
        """TCP connections accepted so far: 1 after N keep-alive requests on one session."""
        return self._server.connections if self._server is not None else 0

    @property
    def credentials_valid(self) -> bool:
        with self._lock:
            return self._credentials_valid

    @credentials_valid.setter
    def credentials_valid(self, value: bool) -> None:
        """False: every request gets 401 as if the key were revoked; not the sender's fault, so no violation."""
        with self._lock:
            self._credentials_valid = bool(value)

    # ---- results ---------------------------------------------------------------------------------------------------

    def accepted_ids(self) -> list[str]:
        """Dedupe keys of accepted records, in arrival order, repeats kept (id / insert_id / $insert_id /
        messageId / source_message_id)."""
        with self._lock:
            records = list(self.accepted)
        return [i for r in records for i in _dedupe_ids(self.kind, r)]

    def duplicates(self) -> Counter[str]:
        """Ids accepted more than once, with their counts: at-least-once delivery made visible."""
        return Counter({i: n for i, n in Counter(self.accepted_ids()).items() if n > 1})

    # ---- request handling ------------------------------------------------------------------------------------------

    def _handle(self, h: _Handler) -> None:
        with self._lock:
            self._request_number += 1
            number = self._request_number
        headers = {k: v for k, v in h.headers.items()}
        try:
            body = _read_body(h)
        except _BadFraming as exc:
            h.close_connection = True
            self._finish(number, [_Problem(400, f"unreadable body: {exc}")], Records(), 0, headers, 400)
            self._send(h, 400, {"Connection": "close"}, orjson.dumps({"code": 400, "error": str(exc)}))
            return

        problems, records = self._validate(h.command, h.path, h.headers, body)
        records.n_bytes = len(body)
        if not self.credentials_valid:
            problems.append(_Problem(401, "credentials switched off", violation=False))

        reply = self.script(number, records) if self.script is not None else None
        if reply is not None and reply.reset:
            self._finish(number, problems, records, len(body), headers, 0)
            h.server.mark_reset(h.connection)
            h.close_connection = True
            return

        if reply is not None:
            status, extra, payload = reply.status, dict(reply.headers), reply.body
        else:
            status = self._status(problems)
            extra, payload = {}, self._body(status, problems, records, len(body))
        self._finish(number, problems, records, len(body), headers, status)
        self._send(h, status, extra, payload)

    def _status(self, problems: list[_Problem]) -> int:
        statuses = {p.status for p in problems}
        for s in _PRIORITY:
            if s in statuses:
                return s
        return min(statuses) if statuses else self.ok_status

    def _body(self, status: int, problems: list[_Problem], records: Records, n_bytes: int) -> bytes:
        if 200 <= status < 300:
            if self.kind == "amplitude":
                return orjson.dumps({"code": 200, "events_ingested": len(records), "payload_size_bytes": n_bytes,
                                     "server_upload_time": int(time.time() * 1000)})
            if self.kind == "mixpanel":
                return orjson.dumps({"code": 200, "num_records_imported": len(records), "status": "OK"})
            if self.kind == "segment":
                return b'{"success":true}'
            return b""
        messages = [p.message for p in problems if p.status == status] or [p.message for p in problems]
        return orjson.dumps({"code": status, "error": "; ".join(messages[:5])})

    def _finish(self, number: int, problems: list[_Problem], records: Records, n_bytes: int,
                headers: dict[str, str], status: int) -> None:
        messages = [p.message for p in problems if p.violation]
        if len(messages) > _MAX_MESSAGES_PER_REQUEST:
            extra = len(messages) - _MAX_MESSAGES_PER_REQUEST
            messages = messages[:_MAX_MESSAGES_PER_REQUEST] + [f"... and {extra} more"]
        with self._lock:
            self.requests.append(RequestRecord(status, len(records), n_bytes, headers))
            self.violations.extend(f"#{number} {self.kind}: {m}" for m in messages)
            if 200 <= status < 300:
                self.accepted.extend(records)
                if not records and self.kind in ("http", "heap"):
                    self.probes += 1

    @staticmethod
    def _send(h: _Handler, status: int, headers: Mapping[str, str], body: bytes) -> None:
        try:
            h.send_response(status)
            names = {k.lower() for k in headers}
            for k, v in headers.items():
                if k.lower() != "content-length":
                    h.send_header(k, v)
            if body and "content-type" not in names:
                h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if body and h.command != "HEAD":
                h.wfile.write(body)
        except OSError:
            h.close_connection = True

    # ---- validation ------------------------------------------------------------------------------------------------

    def _validate(self, method: str, target: str, headers: Message,
                  body: bytes) -> tuple[list[_Problem], Records]:
        problems: list[_Problem] = []

        def add(status: int, message: str) -> None:
            problems.append(_Problem(status, message))

        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        http_like = self.kind in ("http", "heap")

        if method != "POST":
            add(405, f"method {method}, expected POST")
        if _SPECS[self.kind].path is not None and parts.path != self.path:
            add(404, f"path {parts.path!r}, expected {self.path!r}")
        if http_like and headers.get("Braze-Currents-Version") != "1":
            add(400, f"Braze-Currents-Version header must be '1', got {headers.get('Braze-Currents-Version')!r}")
        if self.kind == "mixpanel":
            if query.get("strict") != ["1"]:
                add(400, "strict=1 query parameter missing (without it Mixpanel silently drops invalid events)")

        payload: Optional[bytes] = body
        encoding = headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            if self.kind == "mixpanel" and encoding == "gzip":
                try:
                    payload = gzip.decompress(body)
                except (OSError, EOFError) as exc:
                    add(400, f"bad gzip body: {exc}")
                    payload = None
            else:
                add(400, f"Content-Encoding {encoding!r} is not documented for {self.kind}")
                payload = None
        if payload is None:  # undecodable: nothing more can be checked, but auth headers still can
            self._check_auth(headers, query, None, add, body_unreadable=True)
            return problems, Records()

        empty = payload.strip() == b""
        media = headers.get("Content-Type", "").split(";")[0].strip().lower()
        allowed = ("application/json", "application/x-ndjson") if self.kind == "mixpanel" else ("application/json",)
        if not (http_like and not body) and media not in allowed:
            add(400, f"Content-Type {media or None!r}, expected {' or '.join(allowed)}")
        if self.max_bytes is not None and len(payload) > self.max_bytes:
            add(self.too_large_status, f"body is {len(payload)} bytes; limit {self.max_bytes}")

        parsed: Any = None
        if not empty:
            try:
                if self.kind == "mixpanel" and media == "application/x-ndjson":
                    parsed = [orjson.loads(line) for line in payload.splitlines() if line.strip()]
                else:
                    parsed = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                add(400, f"body is not valid JSON: {exc}")
                parsed = None

        self._check_auth(headers, query, parsed, add, body_unreadable=parsed is None and not empty)
        records = Records()
        if empty:
            if not http_like:
                add(400, "empty body; only the Custom HTTP protocol documents empty credential probes")
            return problems, records
        if parsed is None:
            return problems, records

        raw = self._records(parsed, add)
        if raw is None:
            return problems, records
        records.extend(r for r in raw if isinstance(r, dict))
        if len(records) != len(raw):
            add(400, f"{len(raw) - len(records)} records are not JSON objects")
        if not records and not http_like:
            add(400, "empty batch")
        if self.max_events is not None and len(raw) > self.max_events:
            add(self.too_large_status, f"{len(raw)} records; limit {self.max_events}")
        self._check_records(records, parsed, add)
        return problems, records

    def _records(self, parsed: Any, add: Callable[[int, str], None]) -> Optional[list[Any]]:
        """Pull the record list out of the documented envelope."""
        if self.kind in ("http", "heap", "amplitude", "segment"):
            name = "batch" if self.kind == "segment" else "events"
            if not isinstance(parsed, dict) or not isinstance(parsed.get(name), list):
                add(400, f"body must be an object with a {name!r} array")
                return None
            allowed = {"http": {"events"}, "heap": {"events"}, "amplitude": {"api_key", "events", "options"}}
            if self.kind in allowed and set(parsed) - allowed[self.kind]:
                add(400, f"unexpected top-level keys {sorted(set(parsed) - allowed[self.kind])}")
            records: list[Any] = parsed[name]
            return records
        if not isinstance(parsed, list):
            add(400, "body must be a JSON array")
            return None
        return parsed

    def _check_records(self, records: Records, parsed: Any, add: Callable[[int, str], None]) -> None:
        if self.kind in ("http", "heap"):
            check: Callable[[dict[str, Any]], list[str]] = _check_http_event
        elif self.kind == "amplitude":
            options = parsed.get("options") if isinstance(parsed, dict) else None
            if options is not None and not isinstance(options, dict):
                add(400, "options must be an object")
                options = None
            min_len = (options or {}).get("min_id_length", _AMPLITUDE_MIN_ID_LENGTH)
            min_len = min_len if _int(min_len) else _AMPLITUDE_MIN_ID_LENGTH
            check = lambda e: _check_amplitude_event(e, min_len)  # noqa: E731
        elif self.kind == "mixpanel":
            check = lambda e: _check_mixpanel_event(e, self.project_token)  # noqa: E731
        elif self.kind == "segment":
            check = _check_segment_event
        else:
            check = _check_mparticle_batch
        label = "batches" if self.kind == "mparticle" else "events"
        for i, record in enumerate(records):
            for message in check(record):
                add(400, f"{label}[{i}]: {message}")
            if self.kind == "segment" and _size(record) > _SEGMENT_EVENT_MAX:
                add(self.too_large_status, f"events[{i}] is {_size(record)} bytes; Segment allows 32 KB per event")
            if self.kind == "mparticle" and _size(record) > _MPARTICLE_BATCH_MAX:
                add(self.too_large_status, f"batches[{i}] is {_size(record)} bytes; mParticle allows 128 KB per batch")

    def _check_auth(self, headers: Message, query: dict[str, list[str]], parsed: Any,
                    add: Callable[[int, str], None], *, body_unreadable: bool = False) -> None:
        """Record credential problems. A key that may travel in the body is not judged when the body is unreadable:
        the 400 for the body is the real fault, not a missing key."""
        kind = self.kind
        if kind in ("http", "heap"):
            if self.token is None:
                return
            scheme, _, value = headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not value:
                add(401, "missing Authorization: Bearer token")
            elif value.strip() != self.token:
                add(401, "wrong bearer token")
            return
        if kind == "amplitude":
            if body_unreadable:
                return
            api_key = parsed.get("api_key") if isinstance(parsed, dict) else None
            if not _nonempty_str(api_key):
                add(401, "missing api_key in body (Amplitude: 400 invalid api key)")
            elif self.api_key is not None and api_key != self.api_key:
                add(401, "wrong api_key (Amplitude: 400 invalid api key)")
            return
        basic = _basic(headers)
        if kind == "segment":
            body_key = parsed.get("writeKey") if isinstance(parsed, dict) else None
            offered = [k for k in ((basic[0] if basic else None), body_key) if _nonempty_str(k)]
            if not offered and not body_unreadable:
                add(401, "missing write key (Basic base64('<writeKey>:') or writeKey in body)")
            elif self.write_key is not None and self.write_key not in offered:
                add(401, "wrong write key")
            return
        if basic is None:
            add(401, "missing or malformed Authorization: Basic")
            return
        user, password = basic
        if kind == "mparticle":
            if not user or not password:
                add(401, "Basic auth must be key:secret")
            elif (self.key is not None and user != self.key) or (self.secret is not None and password != self.secret):
                add(401, "wrong key:secret")
            return
        # mixpanel
        if password and self.key is not None:  # service account user:secret needs the project id
            if user != self.key or password != self.secret:
                add(401, "wrong service-account credentials")
            elif not query.get("project_id", [""])[0]:
                add(401, "service-account auth requires a project_id query parameter")
            return
        candidates = [c for c in (self.project_token, self.secret) if c is not None]
        if not user:
            add(401, "Basic auth username (project token or API secret) is empty")
        elif password and not candidates:
            return  # nothing configured: any service account is fine
        elif password:
            add(401, "project token / API secret go in the username with an empty password")
        elif candidates and user not in candidates:
            add(401, "wrong project token / API secret")
