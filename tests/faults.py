"""A fault-injecting HTTP proxy on 127.0.0.1, in front of a store emulator or a partner stand-in, and a watchdog.

`FaultProxy(target)` listens on a free port and forwards every HTTP/1.1 request to `target` (moto, the GCS
emulator, Azurite, a `tests.partner_standins.StandIn`), one upstream keep-alive connection per client connection.
Its `script` decides, request by request, what happens instead of a plain forward:

    with FaultProxy(s3_endpoint, script=burst({3, 4, 5}, Answer(503))) as proxy:
        connector["endpoint_url"] = proxy.url
        ...
        assert proxy.faults()["answer 503"] == 3

Faults (each a small frozen dataclass, `Fault.name` says what happened in the records):
- `Answer(status, body, headers)`: the proxy answers itself; nothing reaches the target.
- `Reset()`: the connection is reset (RST) before the request is forwarded: nothing happened.
- `LoseAnswer()`: the request is forwarded and answered by the target, then the connection is reset: the write
  happened, its answer is lost.
- `Hang()`: the connection is held without an answer until the client gives up (closes it) or the proxy's `release`
  event is set (tests set it at the end, and the watchdog when it fires), so nothing hangs forever.
- `Slow(seconds)`: forwarded, and the answer held back `seconds` (or until released / the client gives up).
- `Drip(status)`: answered with a status, a large Content-Length and then one body byte a second, until the client
  gives up or the proxy is released; nothing reaches the target.
- `HugeBody(size)`: forwarded (the target takes the request), and its status is sent with a body of `size` bytes,
  streamed until the client stops reading.
- `Redirect(location)`: answered 307 to `location` (another origin) without forwarding.

Scripts are `Callable[[Request], Optional[Fault]]`; `Request` has the request's number (1-based, over the proxy's
life), method, path, headers, body and `write` (a PUT/POST with a body). Helpers: `burst(numbers, fault)`,
`every(k, fault)`, `writes(fault)`, `down_for(seconds, fault)` (every request, from the first one the script sees,
for `seconds`, then back), `after(n, fault)` (the first n requests pass, then every one gets the fault), `combine`.
Time-based scripts read the monotonic clock in seconds; nothing here depends on sub-second timing.

Every request is recorded (`proxy.records`: `Exchange` with the fault's name, the upstream status, the bytes sent
back, and when the request arrived and when the proxy was done with it — the answer sent, the connection reset, or
the client seen closing it), so a test can assert that no client waited past its deadline.
"""
from __future__ import annotations

import collections
import contextlib
import faulthandler
import http.client
import os
import select
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, Iterator, Mapping, Optional
from urllib.parse import urlsplit

HOST = "127.0.0.1"
_MAX_HEADER_LINE = 65536
_MAX_BODY = 256 * 1024 * 1024
_WAIT_STEP = 0.25  # how often a held connection looks at its client and the release event (not a timing bound)
_HOLD_LIMIT = 300.0  # a hold, slow answer or drip never lasts longer than this, released or not


# ---------------------------------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    @property
    def name(self) -> str:
        return type(self).__name__.lower()


@dataclass(frozen=True)
class Answer(Fault):
    status: int = 503
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"answer {self.status}"


@dataclass(frozen=True)
class Reset(Fault):
    pass


@dataclass(frozen=True)
class LoseAnswer(Fault):
    @property
    def name(self) -> str:
        return "lose answer"


@dataclass(frozen=True)
class Hang(Fault):
    pass


@dataclass(frozen=True)
class Slow(Fault):
    seconds: float = 2.0


@dataclass(frozen=True)
class Drip(Fault):
    status: int = 200
    content_length: int = 1_000_000


@dataclass(frozen=True)
class HugeBody(Fault):
    size: int = 2 * 1024 * 1024 * 1024  # 2 GiB announced; streamed only as fast as the client reads

    @property
    def name(self) -> str:
        return "huge body"


@dataclass(frozen=True)
class Redirect(Fault):
    location: str = ""
    status: int = 307


# ---------------------------------------------------------------------------------------------------------------------
# Requests, records, scripts
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class Request:
    number: int
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> Optional[str]:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def write(self) -> bool:
        """A request that writes (a PUT, or a POST with a body: a GCS upload, a partner batch)."""
        return self.method in ("PUT", "POST") and bool(self.body)


@dataclass
class Exchange:
    number: int
    method: str
    path: str
    fault: str  # "forward" when no fault applied
    started: float  # monotonic: the request was read whole
    ended: float = 0.0  # monotonic: the proxy was done with it (answered, reset, or the client closed)
    status: Optional[int] = None  # what the target answered (None: not forwarded, or the target failed)
    sent: int = 0  # body bytes sent back to the client
    client_closed: bool = False  # the client closed the connection while the proxy held it

    @property
    def lifetime(self) -> float:
        return self.ended - self.started


Script = Callable[[Request], Optional[Fault]]


def burst(numbers: Iterable[int], fault: Fault) -> Script:
    """`fault` for the requests with these numbers."""
    chosen = frozenset(numbers)
    return lambda request: fault if request.number in chosen else None


def every(k: int, fault: Fault) -> Script:
    """`fault` for requests k, 2k, 3k, ..."""
    return lambda request: fault if request.number % k == 0 else None


def writes(fault: Fault, script: Optional[Script] = None) -> Script:
    """`fault` for every write (or, given `script`, for the writes `script` picks)."""
    def pick(request: Request) -> Optional[Fault]:
        if not request.write:
            return None
        return fault if script is None else script(request)
    return pick


def after(n: int, fault: Fault) -> Script:
    """The first n requests pass; every later one gets `fault`."""
    return lambda request: fault if request.number > n else None


class down_for:  # noqa: N801 - used like the other script helpers
    """Every request gets `fault` for `seconds` from the first request this script sees (or from `start()`), then
    the target is back. `over` tells whether the outage has ended."""

    def __init__(self, seconds: float, fault: Fault = Reset()) -> None:
        self.seconds = seconds
        self.fault = fault
        self._since: Optional[float] = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._since = time.monotonic()

    @property
    def over(self) -> bool:
        with self._lock:
            return self._since is not None and time.monotonic() - self._since >= self.seconds

    def __call__(self, request: Request) -> Optional[Fault]:
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()
            down = time.monotonic() - self._since < self.seconds
        return self.fault if down else None


def combine(*scripts: Script) -> Script:
    """The first script that names a fault wins."""
    def script(request: Request) -> Optional[Fault]:
        for s in scripts:
            fault = s(request)
            if fault is not None:
                return fault
        return None
    return script


# ---------------------------------------------------------------------------------------------------------------------
# The proxy
# ---------------------------------------------------------------------------------------------------------------------

class _ClientGone(Exception):
    """The client closed its connection (or it broke): stop serving it."""


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _client_closed(sock: socket.socket) -> bool:
    """Whether the client has closed (or reset) its side; a held request never has more bytes to read."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


_REASONS = {200: "OK", 202: "Accepted", 307: "Temporary Redirect", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}


def _head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class FaultProxy:
    """An HTTP/1.1 proxy to `target` on a free port of 127.0.0.1 that injects the faults its `script` names."""

    def __init__(self, target: str, script: Optional[Script] = None) -> None:
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"target must be http://host:port, got {target!r}")
        self._target = (parts.hostname, parts.port or 80)
        self.script: Optional[Script] = script
        self.release = threading.Event()  # set: every hang, slow answer and drip ends now
        self.records: list[Exchange] = []
        self._lock = threading.Lock()
        self._number = 0
        self._clients: set[socket.socket] = set()
        self._listener: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()

    # ---- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> "FaultProxy":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(128)
        listener.settimeout(_WAIT_STEP)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.release.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            clients = list(self._clients)
        for sock in clients:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._listener is not None, "proxy not started"
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # ---- results ------------------------------------------------------------------------------------------------

    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self.records)

    def settled(self, pick: Callable[[Exchange], bool] = lambda exchange: True, seconds: float = 15.0) -> bool:
        """Wait (at most `seconds`) until every picked request is done with: a client that just gave up on a
        held request is seen within a fraction of a second, so a test asserts on records after this."""
        until = time.monotonic() + seconds
        while any(not e.ended for e in self.exchanges() if pick(e)):
            if time.monotonic() >= until:
                return False
            time.sleep(_WAIT_STEP)
        return True

    def faults(self) -> collections.Counter[str]:
        """How many requests met each fault (and "forward" for the plain ones)."""
        return collections.Counter(e.fault for e in self.exchanges())

    # ---- serving ------------------------------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.add(sock)
            threading.Thread(target=self._serve, args=(sock,), name="fault-proxy-conn", daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        upstream: Optional[http.client.HTTPConnection] = None
        reader = sock.makefile("rb")
        try:
            while not self._stopping.is_set():
                request, close_after = self._read_request(sock, reader)
                if request is None:
                    return
                fault = self.script(request) if self.script is not None else None
                exchange = Exchange(request.number, request.method, request.path,
                                    fault.name if fault is not None else "forward", time.monotonic())
                with self._lock:
                    self.records.append(exchange)
                try:
                    keep, upstream = self._act(sock, request, fault, exchange, upstream)
                finally:
                    exchange.ended = time.monotonic()
                if not keep or close_after:
                    return
        except _ClientGone:
            return
        finally:
            with self._lock:
                self._clients.discard(sock)
            with contextlib.suppress(OSError):
                reader.close()
            with contextlib.suppress(OSError):
                sock.close()
            if upstream is not None:
                upstream.close()

    def _read_request(self, sock: socket.socket, rfile: BinaryIO) -> tuple[Optional[Request], bool]:
        try:
            line = rfile.readline(_MAX_HEADER_LINE)
            while line in (b"\r\n", b"\n"):
                line = rfile.readline(_MAX_HEADER_LINE)
            if not line:
                return None, True
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            headers: list[tuple[str, str]] = []
            while True:
                raw = rfile.readline(_MAX_HEADER_LINE)
                if raw in (b"\r\n", b"\n", b""):
                    break
                name, _, value = raw.decode("latin-1").partition(":")
                headers.append((name.strip(), value.strip()))
            lookup = {k.lower(): v for k, v in headers}
            if lookup.get("expect", "").lower() == "100-continue":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            if "chunked" in lookup.get("transfer-encoding", "").lower():
                body = self._read_chunked(rfile)
            else:
                length = int(lookup.get("content-length", "0") or 0)
                if length > _MAX_BODY:
                    raise _ClientGone("body too large")
                body = rfile.read(length) if length else b""
                if len(body) != length:
                    return None, True
        except (OSError, ValueError):
            return None, True
        close_after = lookup.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        with self._lock:
            self._number += 1
            number = self._number
        return Request(number, method, target, headers, body), close_after

    @staticmethod
    def _read_chunked(rfile: BinaryIO) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(rfile.readline(_MAX_HEADER_LINE).split(b";")[0].strip(), 16)
            if size == 0:
                while rfile.readline(_MAX_HEADER_LINE) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.readline(_MAX_HEADER_LINE)

    def _hold(self, sock: socket.socket, seconds: float, exchange: Exchange) -> bool:
        """Wait up to `seconds` (bounded), until released, or until the client closes; True if the client is
        still there."""
        until = time.monotonic() + min(seconds, _HOLD_LIMIT)
        while time.monotonic() < until and not self.release.is_set():
            if _client_closed(sock):
                exchange.client_closed = True
                return False
            self.release.wait(_WAIT_STEP)
        if _client_closed(sock):
            exchange.client_closed = True
            return False
        return True

    def _forward(self, request: Request, upstream: Optional[http.client.HTTPConnection],
                 exchange: Exchange) -> tuple[Optional[tuple[int, list[tuple[str, str]], bytes]],
                                              Optional[http.client.HTTPConnection]]:
        """(status, headers, body) from the target, or None when it could not be reached; and the connection."""
        skip = {"expect", "transfer-encoding", "content-length", "connection", "proxy-connection", "keep-alive"}
        for attempt in range(2):  # a kept upstream connection the target closed meanwhile: once more on a new one
            if upstream is None:
                upstream = http.client.HTTPConnection(*self._target, timeout=_HOLD_LIMIT)
            try:
                upstream.putrequest(request.method, request.path, skip_host=True, skip_accept_encoding=True)
                for name, value in request.headers:
                    if name.lower() not in skip:
                        upstream.putheader(name, value)
                if request.body or request.method in ("PUT", "POST", "PATCH"):
                    upstream.putheader("Content-Length", str(len(request.body)))
                upstream.endheaders(request.body or None)
                response = upstream.getresponse()
                body = response.read()
                headers = [(k, v) for k, v in response.getheaders()
                           if k.lower() not in {"transfer-encoding", "connection", "keep-alive"}]
                if request.method != "HEAD":
                    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
                    headers.append(("Content-Length", str(len(body))))
                elif not any(k.lower() == "content-length" for k, _ in headers):
                    headers.append(("Content-Length", "0"))
                exchange.status = response.status
                if response.will_close:
                    upstream.close()
                    upstream = None
                return (response.status, headers, body), upstream
            except (OSError, http.client.HTTPException):
                if upstream is not None:
                    upstream.close()
                upstream = None
                if attempt:
                    return None, None
        return None, upstream

    def _send(self, sock: socket.socket, status: int, headers: list[tuple[str, str]], body: bytes,
              exchange: Exchange, head: bool = False) -> bool:
        try:
            sock.sendall(_head(status, headers) + (b"" if head else body))
        except OSError:
            exchange.client_closed = True
            return False
        exchange.sent = 0 if head else len(body)
        return True

    def _act(self, sock: socket.socket, request: Request, fault: Optional[Fault], exchange: Exchange,
             upstream: Optional[http.client.HTTPConnection]) -> tuple[bool, Optional[http.client.HTTPConnection]]:
        """Serve one request; (keep the client connection, the upstream connection)."""
        head = request.method == "HEAD"
        if isinstance(fault, Answer):
            body = fault.body
            headers = [(k, v) for k, v in fault.headers.items() if k.lower() != "content-length"]
            if body and not any(k.lower() == "content-type" for k, _ in headers):
                headers.append(("Content-Type", "application/xml" if body.startswith(b"<") else "application/json"))
            headers.append(("Content-Length", str(len(body))))
            return self._send(sock, fault.status, headers, body, exchange, head), upstream
        if isinstance(fault, Reset):
            _reset(sock)
            return False, upstream
        if isinstance(fault, Hang):
            self._hold(sock, _HOLD_LIMIT, exchange)
            return False, upstream
        if isinstance(fault, Redirect):
            headers = [("Location", fault.location), ("Content-Length", "0")]
            return self._send(sock, fault.status, headers, b"", exchange), upstream
        if isinstance(fault, Drip):
            return self._drip(sock, fault, exchange), upstream
        answer, upstream = self._forward(request, upstream, exchange)
        if answer is None:  # the target itself is unreachable: as a gateway would
            return self._send(sock, 502, [("Content-Length", "0")], b"", exchange), upstream
        status, headers, body = answer
        if isinstance(fault, LoseAnswer):
            _reset(sock)
            return False, upstream
        if isinstance(fault, Slow) and not self._hold(sock, fault.seconds, exchange):
            return False, upstream
        if isinstance(fault, HugeBody):
            return self._huge(sock, status, fault, exchange), upstream
        return self._send(sock, status, headers, body, exchange, head), upstream

    def _drip(self, sock: socket.socket, fault: Drip, exchange: Exchange) -> bool:
        headers = [("Content-Type", "application/json"), ("Content-Length", str(fault.content_length))]
        try:
            sock.sendall(_head(fault.status, headers))
            for _ in range(min(fault.content_length, int(_HOLD_LIMIT))):
                if not self._hold(sock, 1.0, exchange):
                    return False
                sock.sendall(b" ")
                exchange.sent += 1
                if self.release.is_set():
                    break
        except OSError:
            exchange.client_closed = True
        return False

    def _huge(self, sock: socket.socket, status: int, fault: HugeBody, exchange: Exchange) -> bool:
        headers = [("Content-Type", "application/json"), ("Content-Length", str(fault.size))]
        chunk = b"x" * 65536
        deadline = time.monotonic() + _HOLD_LIMIT
        try:
            sock.sendall(_head(status, headers))
            sock.settimeout(_WAIT_STEP * 4)
            while exchange.sent < fault.size and time.monotonic() < deadline and not self.release.is_set():
                try:
                    exchange.sent += sock.send(chunk[:fault.size - exchange.sent])
                except socket.timeout:
                    if _client_closed(sock):
                        break
        except OSError:
            pass
        exchange.client_closed = True
        return False


# ---------------------------------------------------------------------------------------------------------------------
# Watchdog
# ---------------------------------------------------------------------------------------------------------------------

class Watchdog:
    """Bounds a test without sub-second timing: after `seconds`, the `on_expire` callbacks run (release the
    proxies' hangs, so the job under test can end) and `fired` is set for the test to assert on; if the test is
    still running `grace` seconds later, every thread's stack is dumped to stderr and the process exits, so a
    hung test fails its worker instead of hanging the suite."""

    def __init__(self, seconds: float, *on_expire: Callable[[], object], grace: float = 120.0) -> None:
        self.seconds = seconds
        self.grace = grace
        self._on_expire = on_expire
        self._done = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def _watch(self) -> None:
        if self._done.wait(self.seconds):
            return
        self.fired = True
        sys.stderr.write(f"watchdog: the test ran past {self.seconds:g} s; releasing held connections\n")
        for callback in self._on_expire:
            with contextlib.suppress(Exception):
                callback()
        if self._done.wait(self.grace):
            return
        sys.stderr.write(f"watchdog: still running {self.grace:g} s later; dumping stacks and exiting\n")
        faulthandler.dump_traceback(all_threads=True)
        os._exit(70)

    def __enter__(self) -> "Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()


@contextlib.contextmanager
def watchdog(seconds: float, *on_expire: Callable[[], object]) -> Iterator[Watchdog]:
    with Watchdog(seconds, *on_expire) as dog:
        yield dog
