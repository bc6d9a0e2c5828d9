"""HTTP/1.1 to partners: keep-alive connections per worker, and waves of requests in flight together without a
thread per request.

`exchange(requests)` writes every request of a wave to its own connection first and reads the answers after, so
the partner works on all of them at once and the wave takes about one round trip. Compared with a thread pool over
a client library, this costs about a quarter of the CPU per request: a lane posts thousands of requests a minute,
and on a worker its sending competes with its encoding for the one interpreter lock.

Connections are `http.client` ones, reused while the server keeps them open (an idle connection the server has
closed is noticed before reuse and replaced). Timeouts: `connect_timeout` to open a connection; a wave's answers
are read as they arrive, all within `read_timeout` of the last request written. 307/308 redirects to the same
origin are followed (three at most), with the method and body; a redirect elsewhere is returned as the answer,
since requests carry the partner's credentials. An answer a server sends before it has read the whole body (a 413)
is still read. Proxies come from the environment, as with curl or requests: HTTP_PROXY / HTTPS_PROXY (an
`http://[user:password@]host:port` proxy; https goes through a CONNECT tunnel) and NO_PROXY. Nothing here raises:
a failure to talk is an answer without a status.
"""
from __future__ import annotations

import base64
import http.client
import select
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import getproxies, proxy_bypass

from sinks.http.partners.base import Request

MAX_REDIRECTS = 3
_GRACE_SECONDS = 1.0  # to read an answer that is already there when the wave's deadline has passed
_REDIRECTS = (307, 308)  # the ones that keep method and body; other 3xx are answers like any other


@dataclass(frozen=True)
class Answer:
    status: Optional[int]  # None: no answer (connection refused or reset, timeout)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""
    latency_ms: float = 0.0  # from writing the request to reading the whole answer

    def describe(self) -> str:
        if self.status is None:
            return self.error
        return f"HTTP {self.status}: {self.body[:500].decode('utf-8', 'replace')}"


@dataclass(frozen=True)
class _Sent:
    """A request written to its connection, waiting for its answer."""

    index: int
    request: Request
    route: "_Route"
    connection: http.client.HTTPConnection
    started: float
    write_error: Optional[BaseException]


@dataclass(frozen=True)
class _Route:
    """How to reach an origin: directly, or through a proxy."""

    scheme: str
    host: str
    port: int
    proxy: Optional[tuple[str, int, Optional[str]]]  # (host, port, Proxy-Authorization) or None


class _Headers(dict):  # type: ignore[type-arg]
    """Answer headers, looked up without regard to case (Retry-After, retry-after)."""

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:  # type: ignore[override]
        return super().get(key.lower(), default)


def _proxy(scheme: str, host: str) -> Optional[tuple[str, int, Optional[str]]]:
    url = getproxies().get(scheme)
    if not url or proxy_bypass(host):
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    auth = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = "Basic " + base64.b64encode(credentials).decode("ascii")
    return parts.hostname or "", parts.port or 80, auth


class Transport:
    """Keep-alive connections of one worker, a few per origin; safe to share between threads."""

    def __init__(self, connect_timeout: float, read_timeout: float, connections: int = 16) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keep = max(connections, 1)  # idle connections kept per origin
        self._idle: dict[_Route, list[http.client.HTTPConnection]] = {}
        self._routes: dict[tuple[str, str, int], _Route] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._tls: Optional[ssl.SSLContext] = None

    def send(self, request: Request) -> Answer:
        return self.exchange([request])[0]

    def exchange(self, requests: Sequence[Request], before_each: Callable[[], None] = lambda: None) -> list[Answer]:
        """Every request written, then the answers read as they arrive: one answer per request, in order, all
        within one `read_timeout` after the last request is written. `before_each` runs before each request is
        written (a rate cap)."""
        answers: list[Optional[Answer]] = [None] * len(requests)
        sent: list[_Sent] = []
        for index, request in enumerate(requests):
            before_each()
            started = time.monotonic()
            try:
                route, target, headers = self._prepare(request)
                connection, write_error = self._write(route, request.method, target, request.body, headers)
            except Exception as exc:  # noqa: BLE001 - a failure to talk is an answer, never an exception
                answers[index] = _failure(exc, started)
                continue
            sent.append(_Sent(index, request, route, connection, started, write_error))
        self._collect(sent, answers)
        return answers  # type: ignore[return-value]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    # --- one request -------------------------------------------------------------------------------------------

    def _prepare(self, request: Request) -> tuple[_Route, str, dict[str, str]]:
        parts = urlsplit(request.url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {request.url!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, parts.hostname, port)
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = _Route(scheme, parts.hostname, port, _proxy(scheme, parts.hostname))
        headers = dict(request.headers)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if route.proxy is not None and scheme == "http":  # a plain proxy gets the absolute form
            target = request.url.split("#", 1)[0]
            headers.setdefault("Host", parts.netloc.rsplit("@", 1)[-1])
            if route.proxy[2]:
                headers["Proxy-Authorization"] = route.proxy[2]
        return route, target, headers

    def _write(self, route: _Route, method: str, target: str, body: bytes,
               headers: dict[str, str]) -> tuple[http.client.HTTPConnection, Optional[BaseException]]:
        """The connection the request was written to, and the error if the server stopped reading part way: it
        may have answered early (a 413 for a body it will not read) before closing, so the answer is still read."""
        connection = self._checkout(route)
        try:
            if connection.sock is not None:  # a reused connection keeps the last read's deadline otherwise
                connection.sock.settimeout(self._read_timeout)
            connection.request(method, target, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
            return connection, exc
        except Exception:
            connection.close()
            raise
        return connection, None

    def _collect(self, sent: list[_Sent], answers: list[Optional[Answer]]) -> None:
        """Read each answer when its connection becomes readable, until the wave's deadline."""
        deadline = time.monotonic() + self._read_timeout
        with selectors.DefaultSelector() as selector:
            for item in sent:
                try:
                    selector.register(item.connection.sock, selectors.EVENT_READ, item)
                except (ValueError, OSError, KeyError) as exc:  # no socket left: the write broke it
                    item.connection.close()
                    answers[item.index] = _failure(item.write_error or exc, item.started)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                for key, _ in selector.select(remaining):
                    selector.unregister(key.fileobj)
                    item = key.data
                    answers[item.index] = self._settle(item, deadline)
            # A read can block until the deadline (headers before the body; a TLS session ticket makes a socket
            # readable before its answer): answers that arrived meanwhile are still read, not called timeouts.
            for key, _ in selector.select(0) if selector.get_map() else ():
                selector.unregister(key.fileobj)
                item = key.data
                answers[item.index] = self._settle(item, time.monotonic() + _GRACE_SECONDS)
            for key in list(selector.get_map().values()):
                item = key.data
                item.connection.close()
                answers[item.index] = Answer(None, error=f"timed out: no answer within {self._read_timeout:g} s",
                                             latency_ms=(time.monotonic() - item.started) * 1000)

    def _settle(self, item: _Sent, deadline: float) -> Answer:
        """The answer on a readable connection, redirects followed; never raises."""
        try:
            answer = self._answer(item.route, item.connection, item.started, deadline, item.write_error)
            return self._follow(answer, item.request, item.started, deadline)
        except Exception as exc:  # noqa: BLE001 - a failure to talk is an answer, never an exception
            item.connection.close()
            return _failure(exc, item.started)

    def _answer(self, route: _Route, connection: http.client.HTTPConnection, started: float, deadline: float,
                write_error: Optional[BaseException] = None) -> Answer:
        try:
            if connection.sock is not None:
                connection.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            response = connection.getresponse()
            body = response.read()
        except Exception as exc:  # noqa: BLE001
            connection.close()
            return _failure(write_error or exc, started)
        if response.status < 200:  # an interim answer http.client does not skip (102, 103): no final one read
            connection.close()
            return _failure(http.client.HTTPException(f"interim answer {response.status} without a final one"),
                            started)
        headers = _Headers((k.lower(), v) for k, v in response.getheaders())
        if response.will_close or write_error is not None:
            connection.close()
        else:
            self._checkin(route, connection)
        return Answer(response.status, headers, body, latency_ms=(time.monotonic() - started) * 1000)

    def _follow(self, answer: Answer, request: Request, started: float, deadline: float) -> Answer:
        """307/308 to the same origin: the request again at the new place (three times at most). A redirect to
        another origin is not followed: the request carries the partner's credentials."""
        for _ in range(MAX_REDIRECTS):
            location = answer.headers.get("location") if answer.status in _REDIRECTS else None
            if not location:
                return answer
            moved = Request(urljoin(request.url, location), request.headers, request.body, request.events,
                            request.method)
            if _origin(moved.url) != _origin(request.url):
                return answer
            route, target, headers = self._prepare(moved)
            connection, write_error = self._write(route, moved.method, target, moved.body, headers)
            answer = self._answer(route, connection, started, deadline, write_error)
        return answer

    # --- connections -------------------------------------------------------------------------------------------

    def _checkout(self, route: _Route) -> http.client.HTTPConnection:
        """An idle connection the server has not closed, or a new one."""
        while True:
            with self._lock:
                idle = self._idle.get(route)
                connection = idle.pop() if idle else None
            if connection is None:
                return self._connect(route)
            if _usable(connection):
                return connection
            connection.close()

    def _checkin(self, route: _Route, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(route, [])
            if len(idle) < self._keep and not self._closed:
                idle.append(connection)
                return
        connection.close()

    def _connect(self, route: _Route) -> http.client.HTTPConnection:
        host, port = (route.proxy[0], route.proxy[1]) if route.proxy else (route.host, route.port)
        connection: http.client.HTTPConnection
        if route.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            connection = http.client.HTTPSConnection(host, port, timeout=self._connect_timeout, context=self._tls)
            if route.proxy:
                auth = {"Proxy-Authorization": route.proxy[2]} if route.proxy[2] else None
                connection.set_tunnel(route.host, route.port, headers=auth)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self._connect_timeout)
        connection.connect()
        connection.sock.settimeout(self._read_timeout)  # connected: from now on, the wait for each answer
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection


def _usable(connection: http.client.HTTPConnection) -> bool:
    """False when the server has closed an idle connection (it is readable: EOF) or it has no socket."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        poller = select.poll()  # not select.select: it fails for descriptors past 1024
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _origin(url: str) -> tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def _failure(exc: BaseException, started: float) -> Answer:
    if isinstance(exc, socket.timeout):
        error = f"timed out: {exc}"
    else:
        error = f"{type(exc).__name__}: {exc}"
    return Answer(None, error=error, latency_ms=(time.monotonic() - started) * 1000)
