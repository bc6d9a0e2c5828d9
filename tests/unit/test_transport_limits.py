"""The transport's limits and its libcurl parts, over real sockets on 127.0.0.1: the total deadline per request, the
cap on the answer kept, proxies (plain, CONNECT tunnels, a proxy spoken to over TLS), the CA bundle from the
environment, redirects, keep-alive, pacing, and errors that are one line without secrets.

As in test_transport.py, no test measures the transport against a tight window: where a duration tells two
behaviours apart, they differ by tens of seconds (a dripping answer that would take a minute against a deadline of
seconds) and the bound sits between them with ten seconds or more of slack.
"""
from __future__ import annotations

import base64
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

import pytest

from sinks.http.partners.base import Request
from sinks.http.transport import MAX_ANSWER_BYTES, Transport
from tests.unit.test_transport import _self_signed

DRIP_SECONDS = 60  # a dripping answer's length: one byte a second
SLACK_SECONDS = 10.0  # over a deadline, for a loaded machine


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: waves open many connections at once (5 would drop SYNs)

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []  # {method, path, body, port, headers} per request
        self.sent: dict[str, int] = {}  # body bytes written per path, for the huge answers
        self.stop = threading.Event()  # set at teardown: dripping and endless answers end
        self.closed_connections = threading.Semaphore(0)
        self.elsewhere = ""
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):  # a client that gave up
            super().handle_error(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        self.closed_connections.release()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _reply(self, status: int, body: bytes = b"ok", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append({"method": self.command, "path": self.path, "body": body,
                                 "port": self.client_address[1], "headers": dict(self.headers)})
        path = self.path.rsplit("?", 1)[0]
        if path.endswith("/drip"):  # the headers at once, then one body byte a second
            self.send_response(200)
            self.send_header("Content-Length", str(DRIP_SECONDS))
            self.end_headers()
            for _ in range(DRIP_SECONDS):
                self.wfile.write(b".")
                self.wfile.flush()
                if self.server.stop.wait(1.0):
                    return
            return
        if path.endswith("/drip-headers"):  # not even a status line at once
            for byte in b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * DRIP_SECONDS:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if self.server.stop.wait(1.0):
                    return
            return
        if path.endswith("/huge"):  # says 2 GB, and sends until the client goes away
            self._endless(path, chunked=False)
            return
        if path.endswith("/huge-chunked"):
            self._endless(path, chunked=True)
            return
        if path.endswith("/exact"):
            self._reply(200, b"e" * int(self.headers.get("X-Size", "0")))
            return
        if "/loop/" in path:  # a redirect to the next step, forever
            step = int(path.rsplit("/", 1)[1])
            self._reply(307, b"", Location=f"/loop/{step + 1}")
            return
        if path.endswith("/moved-308"):
            self._reply(308, b"", Location="/landed")
            return
        if path.endswith("/to-localhost"):  # the same server under another name: another origin
            self._reply(307, b"", Location=f"http://localhost:{self.server.server_address[1]}/landed")
            return
        if path.endswith("/elsewhere"):
            self._reply(307, b"", Location=self.server.elsewhere)
            return
        self._reply(200, b"ok", Retry_After="7")

    def _endless(self, path: str, chunked: bool) -> None:
        self.send_response(200)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(2_000_000_000))
        self.end_headers()
        block = b"z" * 65536
        piece = b"%x\r\n%s\r\n" % (len(block), block) if chunked else block
        sent = 0
        try:
            while sent < 2_000_000_000 and not self.server.stop.is_set():
                self.wfile.write(piece)
                sent += len(block)
        finally:
            self.server.sent[path] = sent

    do_POST = do_GET = do_PUT = _answer

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _serving(tls: Optional[tuple[str, str]] = None) -> Iterator[_Server]:
    server = _Server()
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()


def _post(url: str, body: bytes = b"{}", headers: Optional[dict[str, str]] = None) -> Request:
    return Request(url, {"Content-Type": "application/json", **(headers or {})}, body)


@pytest.fixture(autouse=True)
def _nothing_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


# --- the deadline --------------------------------------------------------------------------------------------


def test_an_answer_that_drips_is_cut_at_the_deadline() -> None:
    with _serving() as server:
        transport = Transport(1, 2)  # a deadline of 3 s; the answer would take 60 s
        started = time.monotonic()
        answer = transport.send(_post(server.url + "/drip"))
        took = time.monotonic() - started
        transport.close()
    assert answer.status is None and "timed out" in answer.error.lower()
    assert "OPERATION_TIMEDOUT" in answer.error
    assert took < 3 + SLACK_SECONDS  # not the 60 s the answer takes
    assert answer.latency_ms >= 2000  # and not long before the deadline either (it is 3 s)


def test_an_answer_whose_headers_drip_is_cut_at_the_deadline() -> None:
    with _serving() as server:
        started = time.monotonic()
        answer = Transport(1, 2).send(_post(server.url + "/drip-headers"))
        took = time.monotonic() - started
    assert answer.status is None and "timed out" in answer.error.lower()
    assert took < 3 + SLACK_SECONDS


def test_a_deadline_given_bounds_the_request_instead_of_the_timeouts_sum() -> None:
    with _serving() as server:
        started = time.monotonic()
        answer = Transport(5, 50, deadline=2).send(_post(server.url + "/drip"))
        took = time.monotonic() - started
    assert answer.status is None and "timed out" in answer.error.lower()
    assert took < 2 + SLACK_SECONDS  # not 55 s (connect + read) nor the answer's 60 s


def test_no_request_of_a_wave_outlives_its_deadline() -> None:
    with _serving() as server:
        transport = Transport(1, 2)
        started = time.monotonic()
        answers = transport.exchange([_post(server.url + "/drip"), _post(server.url + "/drip-headers"),
                                      _post(server.url + "/events"), _post(server.url + "/drip")])
        took = time.monotonic() - started
        transport.close()
    assert [a.status for a in answers] == [None, None, 200, None]
    assert took < 3 + SLACK_SECONDS  # one deadline for the wave's requests, in parallel


# --- the answer kept -----------------------------------------------------------------------------------------


def test_a_huge_answer_is_not_read_its_status_and_first_bytes_are_kept() -> None:
    with _serving() as server:
        transport = Transport(2, 30)
        answer = transport.send(_post(server.url + "/huge"))
        after = transport.send(_post(server.url + "/events"))  # the transport is fine afterwards
        transport.close()
        server.stop.set()
    # Counted as answered: the status is known, and it is what the deliverer decides on.
    assert answer.status == 200 and answer.body == b"z" * MAX_ANSWER_BYTES
    assert "cut at" in answer.error
    assert (after.status, after.body) == (200, b"ok")
    # The server stopped being read: what it managed to write is what the socket buffers took, not 2 GB.
    deadline = time.monotonic() + 30
    while "/huge" not in server.sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.sent["/huge"] < 256 * 1024 * 1024


def test_a_huge_chunked_answer_is_cut_at_a_cap_given() -> None:
    with _serving() as server:
        answer = Transport(2, 30, max_answer_bytes=1024).send(_post(server.url + "/huge-chunked"))
    assert answer.status == 200 and answer.body == b"z" * 1024 and "cut at 1024 bytes" in answer.error


def test_an_answer_as_long_as_the_cap_is_kept_whole() -> None:
    with _serving() as server:
        transport = Transport(2, 5, max_answer_bytes=1000)
        whole = transport.send(_post(server.url + "/exact", headers={"X-Size": "1000"}))
        over = transport.send(_post(server.url + "/exact", headers={"X-Size": "1001"}))
        transport.close()
    assert (whole.status, len(whole.body), whole.error) == (200, 1000, "")
    assert (over.status, len(over.body)) == (200, 1000) and "cut" in over.error


# --- proxies -------------------------------------------------------------------------------------------------


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def test_an_https_proxy_is_spoken_to_over_tls_with_its_credentials(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path) -> None:  # noqa: ANN001
    cert, key = _self_signed(str(tmp_path))
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # trusts the proxy's certificate
    with _serving(tls=(cert, key)) as proxy:
        monkeypatch.setenv("http_proxy", f"https://user:s%3Acret@localhost:{proxy.server_address[1]}")
        answer = Transport(2, 5).send(_post("http://partner.example/events", b"over tls"))
    assert (answer.status, answer.body) == (200, b"ok")  # the proxy answered, over TLS: it reads nothing else
    [seen] = proxy.seen
    assert seen["path"] == "http://partner.example/events" and seen["body"] == b"over tls"
    assert seen["headers"]["Proxy-Authorization"] == _basic("user:s:cret")


def test_an_https_proxy_whose_certificate_is_not_trusted_is_not_used(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path) -> None:  # noqa: ANN001
    cert, key = _self_signed(str(tmp_path))
    with _serving(tls=(cert, key)) as proxy:
        monkeypatch.setenv("http_proxy", f"https://user:hunter22@localhost:{proxy.server_address[1]}")
        answer = Transport(2, 5).send(_post("http://partner.example/events"))
    assert answer.status is None and "certificate" in answer.error.lower()
    assert proxy.seen == [] and "hunter22" not in answer.error


@contextmanager
def _tunnel_proxy(tls: Optional[tuple[str, str]] = None) -> Iterator[tuple[int, list[bytes]]]:
    """A CONNECT proxy (over TLS when given a certificate): records each CONNECT request, then pipes bytes."""
    seen: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    context = None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
    stop = threading.Event()

    def pipe(client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            seen.append(head)
            host, _, port = head.split(b" ")[1].decode().rpartition(":")
            with socket.create_connection((host, int(port)), timeout=10) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                ends = [client, upstream]
                while not stop.is_set():
                    ready = [s for s in ends if isinstance(s, ssl.SSLSocket) and s.pending()]
                    if not ready:
                        ready, _, _ = select.select(ends, [], [], 0.5)
                    for source in ready:
                        data = source.recv(65536)
                        if not data:
                            return
                        (upstream if source is client else client).sendall(data)

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
                if context is not None:
                    connection = context.wrap_socket(connection, server_side=True)
            except OSError:
                continue
            threading.Thread(target=pipe, args=(connection,), daemon=True).start()

    listener.settimeout(0.5)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_https_goes_through_a_connect_tunnel_end_to_end(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path) -> None:  # noqa: ANN001
    cert, key = _self_signed(str(tmp_path))
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    with _serving(tls=(cert, key)) as server, _tunnel_proxy() as (port, seen):
        monkeypatch.setenv("https_proxy", f"http://user:p%40ss@127.0.0.1:{port}")
        request = _post(f"https://localhost:{server.server_address[1]}/events", b"tunnelled",
                        {"Authorization": "Bearer SECRET"})
        answer = Transport(2, 10).send(request)
    assert (answer.status, answer.body) == (200, b"ok")
    connect = seen[0].decode()
    assert connect.startswith(f"CONNECT localhost:{server.server_address[1]} HTTP/1.1")
    assert f"Proxy-Authorization: {_basic('user:p@ss')}\r\n" in connect
    assert "SECRET" not in connect  # the partner's credentials travel inside the tunnel only
    [request_seen] = server.seen
    assert request_seen["path"] == "/events" and request_seen["body"] == b"tunnelled"
    assert "Proxy-Authorization" not in request_seen["headers"]


def test_https_through_an_https_proxy_is_tls_inside_tls(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path) -> None:  # noqa: ANN001
    cert, key = _self_signed(str(tmp_path))
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # the proxy's and the partner's certificate
    with _serving(tls=(cert, key)) as server, _tunnel_proxy(tls=(cert, key)) as (port, seen):
        monkeypatch.setenv("HTTPS_PROXY", f"https://localhost:{port}")
        answer = Transport(2, 10).send(_post(f"https://localhost:{server.server_address[1]}/events"))
    assert (answer.status, answer.body) == (200, b"ok")
    assert seen[0].startswith(f"CONNECT localhost:{server.server_address[1]} ".encode())


def test_a_refused_tunnel_is_an_error_without_the_proxys_password(monkeypatch: pytest.MonkeyPatch) -> None:
    with _serving() as proxy:  # answers CONNECT with 501 (BaseHTTPRequestHandler has no do_CONNECT)
        monkeypatch.setenv("https_proxy", f"http://user:hunter22@127.0.0.1:{proxy.server_address[1]}")
        answer = Transport(2, 5).send(_post("https://partner.example/events"))
    assert answer.status is None and "501" in answer.error and "hunter22" not in answer.error
    assert "\n" not in answer.error


# --- certificates --------------------------------------------------------------------------------------------


def test_requests_ca_bundle_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    cert, key = _self_signed(str(tmp_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)
    with _serving(tls=(cert, key)) as server:
        answer = Transport(2, 5).send(_post(f"https://localhost:{server.server_address[1]}/events"))
    assert (answer.status, answer.body) == (200, b"ok")


def test_a_certificate_not_in_ssl_cert_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, key = _self_signed(str(tmp_path / "a"))
    other, _ = _self_signed(str(tmp_path / "b"))
    monkeypatch.setenv("SSL_CERT_FILE", other)  # trusts another certificate only
    with _serving(tls=(cert, key)) as server:
        answer = Transport(2, 5).send(_post(f"https://localhost:{server.server_address[1]}/events"))
    assert answer.status is None and "PEER_FAILED_VERIFICATION" in answer.error and server.seen == []


# --- redirects -----------------------------------------------------------------------------------------------


def test_a_308_keeps_method_body_and_credentials_on_the_same_origin() -> None:
    with _serving() as server:
        answer = Transport(2, 5).send(Request(server.url + "/moved-308", {"Authorization": "Bearer SECRET"},
                                              b"payload", method="PUT"))
    assert (answer.status, answer.body) == (200, b"ok")
    assert [(s["method"], s["path"], s["body"], s["headers"].get("Authorization")) for s in server.seen] == [
        ("PUT", "/moved-308", b"payload", "Bearer SECRET"), ("PUT", "/landed", b"payload", "Bearer SECRET")]


def test_at_most_three_redirects_are_followed() -> None:
    with _serving() as server:
        answer = Transport(2, 5).send(_post(server.url + "/loop/0"))
    assert answer.status == 307 and answer.headers.get("Location") == "/loop/4"
    assert [s["path"] for s in server.seen] == ["/loop/0", "/loop/1", "/loop/2", "/loop/3"]


def test_another_host_name_is_another_origin_and_gets_nothing() -> None:
    with _serving() as server, _serving() as other:
        server.elsewhere = other.url.replace("http://", "https://") + "/landed"
        transport = Transport(2, 5)
        by_name = transport.send(_post(server.url + "/to-localhost", headers={"Authorization": "Bearer SECRET"}))
        by_scheme = transport.send(_post(server.url + "/elsewhere", headers={"Authorization": "Bearer SECRET"}))
        transport.close()
    assert (by_name.status, by_scheme.status) == (307, 307)  # answers as they are: the deliverer decides
    assert [s["path"] for s in server.seen] == ["/to-localhost", "/elsewhere"] and other.seen == []


# --- keep-alive, pacing, errors ------------------------------------------------------------------------------


def test_waves_reuse_the_connections_of_earlier_waves_and_close_closes_them() -> None:
    with _serving() as server:
        transport = Transport(2, 5, connections=4)
        waves = [transport.exchange([_post(server.url + f"/events/{w}/{i}") for i in range(4)]) for w in range(3)]
        transport.close()
        for _ in range(len({s["port"] for s in server.seen})):  # every connection the server had is closed
            assert server.closed_connections.acquire(timeout=30)
    assert all(a.status == 200 for wave in waves for a in wave)
    assert len(server.seen) == 12 and len({s["port"] for s in server.seen}) <= 4


def test_a_transport_is_usable_after_close() -> None:
    with _serving() as server:
        transport = Transport(2, 5)
        first = transport.send(_post(server.url + "/events"))
        transport.close()
        second = transport.send(_post(server.url + "/events"))
        transport.close()
    assert (first.status, second.status) == (200, 200)


def test_a_connection_that_dies_under_a_request_is_an_answer_not_an_exception() -> None:
    # A server that keeps the connection open after its first answer, then reads the next request and closes
    # without answering: libcurl retries such a request on a new connection (nothing of an answer came), or the
    # transport answers without a status. Never an exception.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    requests_seen: list[int] = []

    def serve() -> None:
        for number in range(3):
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                for _ in range(2):
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = connection.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    if not head:
                        break
                    requests_seen.append(number)
                    if number == 0 and len(requests_seen) == 2:
                        break  # the reused connection dies under the second request
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        transport = Transport(2, 5)
        first = transport.send(Request(f"http://127.0.0.1:{port}/a", {}, b""))
        second = transport.send(Request(f"http://127.0.0.1:{port}/b", {}, b""))
        transport.close()
    finally:
        listener.close()
    assert first.status == 200
    assert second.status == 200 or (second.status is None and second.error)


def test_before_each_runs_before_each_request_is_added_and_a_paced_wave_is_read_meanwhile() -> None:
    calls: list[float] = []

    def pace() -> None:  # a rate cap of one request every 0.5 s
        if calls:
            time.sleep(0.5)
        calls.append(time.monotonic())

    with _serving() as server:
        transport = Transport(2, 30)
        transport.exchange([_post(server.url + "/events")] * 2, pace)  # the transport learns that its hook waits
        calls.clear()
        answers = transport.exchange([_post(server.url + f"/events/{i}") for i in range(4)], pace)
        transport.close()
    assert [a.status for a in answers] == [200] * 4 and len(calls) == 4
    # Each request's answer came while the next ones were being paced (it would otherwise wait for the end of the
    # pacing, 0.5 s per later request: 1.5 s for the first). The fast answers take milliseconds on 127.0.0.1.
    assert answers[0].latency_ms < 1200
    assert sorted(s["path"] for s in server.seen[2:]) == [f"/events/{i}" for i in range(4)]


def test_a_paced_hook_that_raises_raises_and_leaves_the_transport_usable() -> None:
    with _serving() as server:
        transport = Transport(2, 5)
        transport.paced = True  # as if it had been seen to wait

        calls: list[int] = []

        def broken() -> None:  # the second call (on the pacing thread, the first request in flight) fails
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("pacing broke")

        with pytest.raises(RuntimeError):
            transport.exchange([_post(server.url + "/a"), _post(server.url + "/b")], broken)
        after = transport.send(_post(server.url + "/events"))
        transport.close()
    assert after.status == 200


def test_errors_are_one_line_with_the_code_name_and_no_credentials() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: refused
        answer = Transport(2, 5).send(_post(f"http://127.0.0.1:{port}/events",
                                            headers={"Authorization": "Bearer SECRET-TOKEN-1"}))
    assert answer.status is None and answer.error.startswith("CURLE_COULDNT_CONNECT (7): ")
    assert "SECRET" not in answer.error and "\n" not in answer.error


def test_a_url_that_is_not_http_is_an_error_answer() -> None:
    answers = Transport(2, 5).exchange([_post("ftp://127.0.0.1/x"), _post("not a url at all")])
    assert all(a.status is None and a.error for a in answers)


def test_concurrent_exchanges_from_two_threads_both_complete() -> None:
    with _serving() as server:
        transport = Transport(2, 10)
        results: list[list[Any]] = []

        def wave(tag: str) -> None:
            results.append([a.status for a in transport.exchange([_post(server.url + f"/{tag}/{i}")
                                                                  for i in range(8)])])

        threads = [threading.Thread(target=wave, args=(t,)) for t in ("a", "b", "c")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        transport.close()
    assert results == [[200] * 8] * 3
