"""HTTP to partners on libcurl (pycurl's multi interface): keep-alive connections per worker, and waves of requests
in flight together without a thread per request.

`exchange(requests)` adds every request of a wave to one `CurlMulti` and drives them together on one thread (an
event loop over `poll`, driven by libcurl's socket and timer callbacks), so the partner works on all of them at once
and the wave takes about one round trip. libcurl does the protocol work in C: TLS, proxies, interim 1xx answers,
timeouts, noticing a keep-alive connection the server has closed (and retrying a request that met a connection
closed under it, before any answer byte). Nothing here raises: a failure to talk is an answer without a status,
with a one-line error naming libcurl's error code.

- **Deadline.** Each request has a total deadline (`deadline`, default `connect_timeout + read_timeout`) that bounds
  everything: connecting, writing the body, waiting, reading the answer (an answer that drips a byte a second is cut
  at the deadline), and any redirects it follows. `connect_timeout` bounds connecting alone.
- **Answer size.** At most `max_answer_bytes` (64 KiB) of an answer's body are kept; past that the transfer is
  aborted (the connection closed) rather than read. Such an answer counts as answered: its status is kept, its body
  is the first `max_answer_bytes`, and `error` says it was cut. The status is what the deliverer decides on.
- **Redirects.** 307/308 to the same origin (scheme, host, port) are followed, three at most, with the method, body
  and headers (credentials included). A redirect anywhere else, and any other 3xx, is returned as the answer: the
  request carries the partner's credentials, which never go to another origin. libcurl's FOLLOWLOCATION is off.
- **Proxies** come from the environment, read by libcurl for each request: `http_proxy`, `https_proxy` /
  `HTTPS_PROXY`, `all_proxy`, `no_proxy` / `NO_PROXY` (libcurl's rules). An `https://` proxy is spoken to over TLS;
  credentials in a proxy URL are sent as `Proxy-Authorization: Basic`; https goes through a CONNECT tunnel. Beyond
  libcurl, an upper-case `HTTP_PROXY` is honoured as Python's urllib and requests do (libcurl ignores it), unless
  `http_proxy` is set or this is a CGI process (`REQUEST_METHOD` set).
- **Certificates.** The CA bundle is `SSL_CERT_FILE`, else `REQUESTS_CA_BUNDLE`, else `CURL_CA_BUNDLE`, else the
  platform's (`ssl.get_default_verify_paths()`), else certifi's; `SSL_CERT_DIR` adds a directory. The same bundle
  verifies an `https://` proxy.
- **Keep-alive.** One `CurlMulti` per transport keeps the connections (up to `connections` idle ones); easy handles
  are pooled and reused across exchanges. `close()` closes them. Requests speak HTTP/1.1 (as the previous client).
- **Threads.** A transport may be shared between threads: one exchange at a time uses the kept connections; an
  exchange that starts while another runs gets a multi of its own for its duration (new connections, closed after),
  instead of waiting behind it.
"""
from __future__ import annotations

import os
import re
import select
import ssl
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence
from urllib.parse import unquote, urljoin, urlsplit

import pycurl  # type: ignore[import-untyped]  # no stubs shipped

from core.secrets import REDACTOR
from sinks.http.partners.base import Request

MAX_REDIRECTS = 3
MAX_ANSWER_BYTES = 64 * 1024  # of an answer's body kept; a dead letter needs its first KiB
_REDIRECTS = (307, 308)  # the ones that keep method and body; other 3xx are answers like any other
_GUARD_SECONDS = 5.0  # a transfer libcurl has not ended this long after its deadline is ended here
_MAX_WAIT_SECONDS = 1.0  # the longest one poll waits, so the guard above is looked at
_PACED_SECONDS = 0.002  # a `before_each` that took longer paces: from then on the wave is driven while it waits
_PUBLIC_HEADERS = frozenset({"content-type", "content-encoding", "content-length", "accept", "accept-encoding",
                             "user-agent", "host", "connection", "expect"})  # values not redacted in errors

# libcurl error codes by name, for one-line errors ("CURLE_OPERATION_TIMEDOUT (28): ..."); where pycurl has two
# names for a code, the one libcurl uses today
_PREFERRED = {"E_OPERATION_TIMEDOUT", "E_PEER_FAILED_VERIFICATION", "E_HTTP_RETURNED_ERROR", "E_PARTIAL_FILE",
              "E_UNSUPPORTED_PROTOCOL", "E_URL_MALFORMAT", "E_NOT_BUILT_IN", "E_COULDNT_CONNECT",
              "E_COULDNT_RESOLVE_HOST", "E_COULDNT_RESOLVE_PROXY", "E_UPLOAD_FAILED", "E_HTTP2", "E_FAILED_INIT",
              "E_REMOTE_ACCESS_DENIED", "E_RANGE_ERROR", "E_INTERFACE_FAILED", "E_USE_SSL_FAILED", "E_OK"}
_CODE_NAMES: dict[int, str] = {}
for _name in sorted(n for n in dir(pycurl) if n.startswith("E_") and not n.startswith("E_MULTI_")):
    _code = getattr(pycurl, _name)
    if isinstance(_code, int) and (_code not in _CODE_NAMES or _name in _PREFERRED):
        _CODE_NAMES[_code] = "CURL" + _name


@dataclass(frozen=True)
class Answer:
    status: Optional[int]  # None: no answer (connection refused or reset, timeout, TLS failure)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""  # at most the transport's max_answer_bytes
    error: str = ""  # with a status: the body was cut at max_answer_bytes
    latency_ms: float = 0.0  # from adding the request to the wave to its whole answer (redirects included)

    def describe(self) -> str:
        if self.status is None:
            return self.error
        return f"HTTP {self.status}: {self.body[:500].decode('utf-8', 'replace')}"


class _Headers(dict):
    """Answer headers, looked up without regard to case (Retry-After, retry-after)."""

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:  # type: ignore[override]
        return super().get(key.lower(), default)


class _Transfer:
    """One request of a wave: where it is, what has come back so far."""

    __slots__ = ("index", "request", "url", "started", "deadline", "hops", "cap", "body", "lines", "cut")

    def __init__(self, index: int, request: Request, started: float, deadline: float, cap: int) -> None:
        self.index = index
        self.request = request
        self.url = request.url
        self.started = started
        self.deadline = deadline
        self.hops = 0
        self.cap = cap
        self.body = bytearray()
        self.lines: list[bytes] = []  # header lines as libcurl hands them over (HEADERFUNCTION is lines.append)
        self.cut = False  # the answer was longer than cap: the transfer was aborted

    def write(self, data: bytes) -> Optional[int]:
        """libcurl's WRITEFUNCTION: keep up to `cap` bytes; a short count past it aborts the transfer."""
        room = self.cap - len(self.body)
        if len(data) <= room:
            self.body += data
            return None  # all taken
        self.body += data[:room]
        self.cut = True
        return 0

    def headers(self) -> _Headers:
        """The final answer's headers: those after the last status line (an interim 1xx has its own)."""
        lines = self.lines
        start = 0
        for number in range(len(lines) - 1, -1, -1):
            if lines[number][:5] == b"HTTP/":
                start = number + 1
                break
        headers = _Headers()
        for line in lines[start:]:
            name, colon, value = line.decode("latin-1").partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        return headers


class _Engine:
    """A CurlMulti, its pooled easy handles and the event loop that drives them."""

    def __init__(self, owner: "Transport") -> None:
        self._owner = owner
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_MAXCONNECTS, owner.connections)
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._poller = select.poll()  # not select.select: it fails for descriptors past 1024
        self._timer: Optional[float] = None  # when libcurl wants SOCKET_TIMEOUT, monotonic seconds
        self._idle: list[pycurl.Curl] = []
        self._live: dict[pycurl.Curl, _Transfer] = {}
        self._wake: Optional[tuple[int, int]] = None  # a pipe: the pacing thread says it is done

    # --- libcurl's callbacks (never call into the multi from them) ---------------------------------------------

    def _on_socket(self, what: int, fd: int, multi: Any, socketp: Any) -> None:
        if what == pycurl.POLL_REMOVE:
            try:
                self._poller.unregister(fd)
            except KeyError:
                pass
            return
        mask = {pycurl.POLL_IN: select.POLLIN, pycurl.POLL_OUT: select.POLLOUT}.get(what,
                                                                                    select.POLLIN | select.POLLOUT)
        self._poller.register(fd, mask)  # again for a registered one: its mask changes

    def _on_timer(self, timeout_ms: int) -> None:
        self._timer = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000

    # --- a wave ------------------------------------------------------------------------------------------------

    def exchange(self, requests: Sequence[Request], before_each: Callable[[], None]) -> list[Answer]:
        answers: list[Optional[Answer]] = [None] * len(requests)
        owner = self._owner
        try:
            for index, request in enumerate(requests):
                self._pace(before_each, answers)
                now = time.monotonic()
                transfer = _Transfer(index, request, now, now + owner.deadline, owner.max_answer_bytes)
                try:
                    self._start(transfer)
                except Exception as exc:  # noqa: BLE001 - a failure to talk is an answer, never an exception
                    answers[index] = Answer(None, error=_scrub(f"{type(exc).__name__}: {exc}", request),
                                            latency_ms=(time.monotonic() - now) * 1000)
                    continue
                self._drive(answers, block=False)  # starts it now: `before_each` may wait before the next one
            while self._live:
                self._drive(answers, block=True)
        finally:
            for handle, transfer in list(self._live.items()):  # only after an exception (before_each's)
                self._end(handle)
                answers[transfer.index] = _timed_out(transfer)
        return answers  # type: ignore[return-value]

    def _pace(self, before_each: Callable[[], None], answers: list[Optional[Answer]]) -> None:
        """Run `before_each`. Once it has been seen to wait (a rate cap), it waits on a thread of its own while
        this one drives the requests already added: they are written and their answers read meanwhile, instead of
        ageing towards their deadlines unattended."""
        owner = self._owner
        if not (owner.paced and self._live):
            started = time.monotonic()
            before_each()
            if time.monotonic() - started > _PACED_SECONDS:
                owner.paced = True
            return
        if self._wake is None:
            self._wake = os.pipe()
            self._poller.register(self._wake[0], select.POLLIN)
        done = threading.Event()
        failure: list[BaseException] = []
        wake = self._wake[1]

        def run() -> None:
            try:
                before_each()
            except BaseException as exc:  # noqa: BLE001 - raised again on the exchange's thread
                failure.append(exc)
            finally:
                done.set()
                os.write(wake, b"x")

        thread = threading.Thread(target=run, name="transport-pace", daemon=True)
        thread.start()
        while not done.is_set():
            self._drive(answers, block=True)
        thread.join()
        os.read(self._wake[0], 4096)
        if failure:
            raise failure[0]

    def _start(self, transfer: _Transfer) -> None:
        handle = self._idle.pop() if self._idle else self._owner.new_handle()
        try:
            self._owner.configure(handle, transfer)
            self._multi.add_handle(handle)
        except BaseException:
            self._idle.append(handle)
            raise
        self._live[handle] = transfer

    def _end(self, handle: pycurl.Curl) -> None:
        self._live.pop(handle, None)
        try:
            self._multi.remove_handle(handle)
        except pycurl.error:
            pass
        self._idle.append(handle)

    def _drive(self, answers: list[Optional[Answer]], block: bool) -> None:
        """One turn of the loop: wait for a socket or libcurl's timer (not at all unless `block`), let libcurl act,
        collect finished transfers."""
        now = time.monotonic()
        if block:
            wake = min(now + _MAX_WAIT_SECONDS, self._timer if self._timer is not None else now + _MAX_WAIT_SECONDS)
            wait_ms = max(0, int((wake - now) * 1000 + 0.999))
        else:
            wait_ms = 0
        events = self._poller.poll(wait_ms)
        multi = self._multi
        wake = self._wake[0] if self._wake is not None else -1
        for fd, happened in events:
            if fd == wake:
                continue
            mask = 0
            if happened & (select.POLLIN | select.POLLHUP):
                mask |= pycurl.CSELECT_IN
            if happened & select.POLLOUT:
                mask |= pycurl.CSELECT_OUT
            if happened & (select.POLLERR | select.POLLNVAL):
                mask |= pycurl.CSELECT_ERR
            multi.socket_action(fd, mask)
        if self._timer is not None and time.monotonic() >= self._timer:
            self._timer = None
            multi.socket_action(pycurl.SOCKET_TIMEOUT, 0)
        self._collect(answers)
        if block and self._live:
            now = time.monotonic()
            for handle, transfer in list(self._live.items()):
                if now > transfer.deadline + _GUARD_SECONDS:  # libcurl should have ended it: never outlive
                    self._end(handle)
                    answers[transfer.index] = _timed_out(transfer)

    def _collect(self, answers: list[Optional[Answer]]) -> None:
        while True:
            queued, ok, failed = self._multi.info_read()
            for handle in ok:
                self._done(handle, 0, "", answers)
            for handle, code, message in failed:
                self._done(handle, code, message, answers)
            if not queued:
                return

    def _done(self, handle: pycurl.Curl, code: int, message: str, answers: list[Optional[Answer]]) -> None:
        transfer = self._live.get(handle)
        if transfer is None:
            return
        status = int(handle.getinfo(pycurl.RESPONSE_CODE) or 0)
        self._end(handle)
        if code == 0 and status in _REDIRECTS and transfer.hops < MAX_REDIRECTS:
            location = transfer.headers().get("location")
            target = urljoin(transfer.url, location) if location else ""
            if target and _origin(target) == _origin(transfer.request.url):  # elsewhere: the 307 is the answer
                if time.monotonic() >= transfer.deadline:
                    answers[transfer.index] = _timed_out(transfer)
                    return
                transfer.url, transfer.hops = target, transfer.hops + 1
                transfer.body, transfer.lines, transfer.cut = bytearray(), [], False
                try:
                    self._start(transfer)
                except Exception as exc:  # noqa: BLE001
                    answers[transfer.index] = Answer(None, error=_scrub(f"{type(exc).__name__}: {exc}",
                                                                        transfer.request), latency_ms=_ms(transfer))
                return
        if status and (code == 0 or (code == pycurl.E_WRITE_ERROR and transfer.cut)):
            error = f"answer cut at {transfer.cap} bytes" if transfer.cut else ""
            answers[transfer.index] = Answer(status, transfer.headers(), bytes(transfer.body), error,
                                             _ms(transfer))
            return
        if code == 0:  # no status line at all: nothing to decide on
            code, message = pycurl.E_WEIRD_SERVER_REPLY, "no HTTP status"
        answers[transfer.index] = Answer(None, error=_curl_error(code, message, transfer.request),
                                         latency_ms=_ms(transfer))

    def close(self) -> None:
        for handle in list(self._live):
            self._end(handle)
        for handle in self._idle:
            handle.close()
        self._idle = []
        self._multi.close()
        if self._wake is not None:
            for fd in self._wake:
                os.close(fd)
            self._wake = None


class Transport:
    """Keep-alive connections of one worker; safe to share between threads."""

    def __init__(self, connect_timeout: float, read_timeout: float, connections: int = 16, *,
                 deadline: Optional[float] = None, max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = float(deadline) if deadline is not None else connect_timeout + read_timeout
        self.connections = max(connections, 1)  # idle connections kept
        self.max_answer_bytes = max(max_answer_bytes, 0)
        self._ca_file, self._ca_dir = _ca_locations()
        self._shapes: "weakref.WeakKeyDictionary[pycurl.Curl, tuple[Any, ...]]" = weakref.WeakKeyDictionary()
        self.paced = False  # `before_each` has been seen to wait (see _Engine._pace)
        self._lock = threading.Lock()
        self._engine: Optional[_Engine] = None

    def send(self, request: Request) -> Answer:
        return self.exchange([request])[0]

    def exchange(self, requests: Sequence[Request], before_each: Callable[[], None] = lambda: None) -> list[Answer]:
        """Every request added to the wave (`before_each` runs before each is added: a rate cap), then the answers
        as they arrive: one answer per request, in order, each within its deadline."""
        if not requests:
            return []
        if not self._lock.acquire(blocking=False):  # another thread's wave is in flight: one of our own
            engine = _Engine(self)
            try:
                return engine.exchange(requests, before_each)
            finally:
                engine.close()
        try:
            if self._engine is None:
                self._engine = _Engine(self)
            return self._engine.exchange(requests, before_each)
        finally:
            self._lock.release()

    def close(self) -> None:
        """Closes the kept connections; a later exchange opens new ones."""
        with self._lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    def new_handle(self) -> pycurl.Curl:
        handle = pycurl.Curl()
        self._constants(handle)
        return handle

    def _constants(self, handle: pycurl.Curl) -> None:
        """The options every request has: set when a handle is made or reset."""
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        if self._ca_file:
            handle.setopt(pycurl.CAINFO, self._ca_file)
            handle.setopt(pycurl.PROXY_CAINFO, self._ca_file)
        if self._ca_dir:
            handle.setopt(pycurl.CAPATH, self._ca_dir)
            handle.setopt(pycurl.PROXY_CAPATH, self._ca_dir)

    def configure(self, handle: pycurl.Curl, transfer: _Transfer) -> None:
        """The options of one request (of one hop of it). A handle whose last request had another shape (method,
        a proxy set here) is reset to libcurl's defaults first; otherwise each option below replaces the last."""
        request = transfer.request
        method = request.method.upper()
        proxy = _upper_case_http_proxy(transfer.url)
        shape = (method, bool(request.body), proxy)
        if self._shapes.get(handle) != shape:
            if handle in self._shapes:
                handle.reset()
                self._constants(handle)
            self._shapes[handle] = shape
            if method == "GET" and not request.body:
                handle.setopt(pycurl.HTTPGET, 1)
            elif method == "HEAD":
                handle.setopt(pycurl.NOBODY, 1)
            elif method != "POST":
                handle.setopt(pycurl.CUSTOMREQUEST, method)
            if proxy:
                handle.setopt(pycurl.PROXY, proxy)
        handle.setopt(pycurl.URL, transfer.url)
        left_ms = max(1, int((transfer.deadline - time.monotonic()) * 1000))
        handle.setopt(pycurl.TIMEOUT_MS, left_ms)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, min(left_ms, int(self.connect_timeout * 1000))))
        handle.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" if v else f"{k};" for k, v in request.headers.items()])
        if method not in ("GET", "HEAD") or request.body:
            handle.setopt(pycurl.POSTFIELDS, request.body)  # sets its size too; pycurl keeps the bytes, no copy
        handle.setopt(pycurl.WRITEFUNCTION, transfer.write)
        handle.setopt(pycurl.HEADERFUNCTION, transfer.lines.append)  # a C call per line, parsed once at the end


def _ca_locations() -> tuple[Optional[str], Optional[str]]:
    """(CA bundle file, CA directory) to verify servers and proxies with."""
    cafile = next((os.environ[n] for n in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
                   if os.environ.get(n)), None)
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        paths = ssl.get_default_verify_paths()
        cafile, capath = paths.cafile, paths.capath
        if cafile is None and capath is None:
            try:
                import certifi  # requests' bundle; installed with it

                cafile = certifi.where()
            except ImportError:  # libcurl's own default, then
                pass
    return cafile, capath


def _upper_case_http_proxy(url: str) -> Optional[str]:
    """HTTP_PROXY for a plain http URL when libcurl would not read it (it reads only the lower-case name)."""
    if not url[:5].lower() == "http:" or os.environ.get("http_proxy") or os.environ.get("REQUEST_METHOD"):
        return None
    return os.environ.get("HTTP_PROXY") or None


def _origin(url: str) -> tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return scheme, "", -1
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def _ms(transfer: _Transfer) -> float:
    return (time.monotonic() - transfer.started) * 1000


def _timed_out(transfer: _Transfer) -> Answer:
    return Answer(None, error=f"{_CODE_NAMES[pycurl.E_OPERATION_TIMEDOUT]} ({pycurl.E_OPERATION_TIMEDOUT}): "
                              f"timed out: no answer within the deadline", latency_ms=_ms(transfer))


def _curl_error(code: int, message: str, request: Request) -> str:
    name = _CODE_NAMES.get(code, "CURLE_UNKNOWN")
    text = message or "no message from libcurl"
    return _scrub(f"{name} ({code}): {text}", request)


def _scrub(text: str, request: Request) -> str:
    """One line, without the request's credentials, a proxy's password or any secret this process has read."""
    text = " ".join(text.split())
    secrets: list[str] = []
    for name, value in request.headers.items():
        if name.lower() not in _PUBLIC_HEADERS and value:
            secrets.append(value)
            secrets.extend(part for part in value.split() if len(part) >= 6)  # the token of "Bearer <token>"
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        password = urlsplit(os.environ.get(name, "")).password if "@" in os.environ.get(name, "") else None
        if password:
            secrets += [password, unquote(password)]
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return REDACTOR(re.sub(r"(://[^/\s:@]*:)[^@\s/]*@", r"\1***@", text))
