"""The HTTP transport (sinks/http/deliver.py `Transport`) over real sockets on 127.0.0.1: keep-alive, timeouts,
redirects, proxies from the environment, and failures that become answers instead of exceptions."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sinks.http.deliver import Transport
from sinks.http.partners.base import Request


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes, int]] = []  # (method, request line path, body, client port)
        self.delay = 0.0
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append((self.command, self.path, body, self.client_address[1]))
        time.sleep(self.server.delay)
        if self.path.endswith("/moved"):
            self.send_response(307)
            self.send_header("Location", "/landed")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Retry-After", "7")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_POST = do_GET = _answer

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _serving() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _post(url: str, body: bytes = b"{}") -> Request:
    return Request(url, {"Content-Type": "application/json"}, body)


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_requests_reuse_one_keep_alive_connection() -> None:
    with _serving() as server:
        transport = Transport(2, 5)
        answers = [transport.send(_post(server.url + "/events")) for _ in range(3)]
        transport.close()
    assert [a.status for a in answers] == [200, 200, 200]
    assert len({port for *_, port in server.seen}) == 1


def test_answer_carries_status_body_and_case_insensitive_headers() -> None:
    with _serving() as server:
        transport = Transport(2, 5)
        answer = transport.send(_post(server.url + "/events", b'{"events":[]}'))
        transport.close()
    assert (answer.status, answer.body) == (200, b"ok")
    assert answer.headers.get("retry-after") == "7" and answer.headers.get("Retry-After") == "7"
    assert server.seen[0][:3] == ("POST", "/events", b'{"events":[]}')


def test_refused_connection_is_an_answer_without_status() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        answer = Transport(2, 5).send(_post(f"http://127.0.0.1:{port}/events"))
    assert answer.status is None
    assert "refused" in answer.error.lower() or "connect" in answer.error.lower()


def test_read_timeout_is_an_answer_without_status() -> None:
    with _serving() as server:
        server.delay = 1.0
        started = time.monotonic()
        answer = Transport(2, 0.2).send(_post(server.url + "/slow"))
    assert answer.status is None and "timed out" in answer.error.lower()
    assert time.monotonic() - started < 1.0


def test_a_307_redirect_is_followed_with_method_and_body() -> None:
    with _serving() as server:
        answer = Transport(2, 5).send(_post(server.url + "/moved", b"payload"))
    assert answer.status == 200
    assert [(m, p, b) for m, p, b, _ in server.seen] == [("POST", "/moved", b"payload"), ("POST", "/landed", b"payload")]


def test_requests_go_through_the_environments_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with _serving() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        answer = Transport(2, 5).send(_post("http://partner.example/events"))
    assert answer.status == 200
    assert proxy.seen[0][1] == "http://partner.example/events"  # the absolute form a proxy receives


def test_no_proxy_hosts_are_reached_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    with _serving() as server, _serving() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        answer = Transport(2, 5).send(_post(server.url + "/events"))
    assert answer.status == 200
    assert not proxy.seen and server.seen[0][1] == "/events"
