"""The HTTP transport (sinks/http/transport.py) over real sockets on 127.0.0.1: waves of requests in flight together,
keep-alive, timeouts, redirects, proxies from the environment, and failures that become answers, not exceptions.

No test here measures how long the transport took against a tight window: a loaded machine (a parallel `make
test`, CI) stretches every wall-clock step. Where the order of events matters the stand-in server is told what to
wait for (a barrier that only opens when every request of a wave is in flight, an event the test sets once the
transport has given up); where only a duration can tell two behaviours apart, the two differ by many seconds and
the bound sits between them with seconds of slack, and each bound says why.
"""
from __future__ import annotations

import contextlib
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
from sinks.http.transport import Transport


# The longest a hung answer waits for the test to release it: a transport that waits for such an answer would make
# the test fail after this long instead of hanging the suite.
HANG_SECONDS = 30.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes, int]] = []  # (method, request line path, body, client port)
        self.delay = 0.0
        self.in_flight = self.most_in_flight = 0
        self.drop_idle = False
        self.elsewhere = ""
        self.authorization: list[Any] = []
        self.counting = threading.Lock()
        self.together: Optional[threading.Barrier] = None  # set: each request waits until all parties are in flight
        self.release = threading.Event()  # `/hung` answers and the end of `/dribble` wait for it
        self.stall_read = 0.0  # `/stall-read`: seconds before the request's body is read
        self.closed_connections = threading.Semaphore(0)  # released each time the server closes a connection
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up and closed is expected here
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

    def _answer(self) -> None:
        if self.path.endswith("/refuse-early"):  # answers before reading the body, then closes
            self.send_response(413)
            self.send_header("Content-Length", "8")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"too long")
            self.wfile.flush()
            # A lingering close, as real servers do (nginx's lingering_close): the answer is out and the write side
            # shut, the rest of the body is read and dropped. Closing with it unread would reset the connection,
            # and whether the client had read the answer by then would be a race with the machine's load.
            self.connection.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                while self.rfile.read(65536):
                    pass
            self.close_connection = True
            return
        if self.path.endswith("/stall-read"):
            time.sleep(self.server.stall_read)  # the client's write blocks once the socket buffers are full
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.seen.append((self.command, self.path, body, self.client_address[1]))
        self.server.authorization.append(self.headers.get("Authorization"))
        with self.server.counting:
            self.server.in_flight += 1
            self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
        if self.server.together is not None:
            self.server.together.wait()  # raises BrokenBarrierError (no answer) if the others never come
        if "/hung" in self.path:
            self.server.release.wait(HANG_SECONDS)
        time.sleep(self.server.delay if "/fast" not in self.path else 0)
        with self.server.counting:
            self.server.in_flight -= 1
        if self.path.endswith("/moved"):
            self.send_response(307)
            self.send_header("Location", "/landed")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.endswith("/elsewhere"):
            self.send_response(307)
            self.send_header("Location", self.server.elsewhere)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.endswith("/dribble"):  # the headers and part of the body now, the rest much later
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"dr")
            self.wfile.flush()
            self.server.release.wait(HANG_SECONDS)
            self.wfile.write(b"ip")
            return
        if self.path.endswith("/early-hints"):
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
            self.wfile.flush()
        self.send_response(200)
        self.send_header("Retry-After", "7")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
        if self.server.drop_idle:
            self.close_connection = True

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
        server.release.set()
        if server.together is not None:
            server.together.abort()
        server.shutdown()
        server.server_close()


def _post(url: str, body: bytes = b"{}") -> Request:
    return Request(url, {"Content-Type": "application/json"}, body)


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_a_waves_requests_are_in_flight_together_and_answered_in_order() -> None:
    with _serving() as server:
        # No request is answered before all four are in flight: one round trip for the wave, not four. A transport
        # that waited for each answer before the next request would break the barrier (no answers at all).
        server.together = threading.Barrier(4, timeout=HANG_SECONDS)
        transport = Transport(2, HANG_SECONDS + 30)
        answers = transport.exchange([_post(server.url + f"/events/{i}", str(i).encode()) for i in range(4)])
        transport.close()
    assert [a.status for a in answers] == [200] * 4 and server.most_in_flight == 4
    assert [a.body for a in answers] == [b"ok"] * 4
    assert sorted(body for _, _, body, _ in server.seen) == [b"0", b"1", b"2", b"3"]


def test_each_answer_carries_its_own_latency() -> None:
    with _serving() as server:
        server.delay = 0.1
        transport = Transport(2, 5)
        started = time.monotonic()
        [answer] = transport.exchange([_post(server.url + "/events")])
        around = (time.monotonic() - started) * 1000
    # At least the server's 0.1 s, and never more than the exchange it was measured in (however slow the machine).
    assert 100 <= answer.latency_ms <= around


def test_an_idle_connection_the_server_closed_is_replaced_not_failed() -> None:
    with _serving() as server:
        server.drop_idle = True  # closes each connection after answering, without saying so
        transport = Transport(2, 5)
        first = transport.send(_post(server.url + "/events"))
        assert server.closed_connections.acquire(timeout=HANG_SECONDS)  # closed while idle: its FIN is on the way
        time.sleep(0.1)  # (on 127.0.0.1 the FIN is there as soon as the server closed; this only adds margin)
        second = transport.send(_post(server.url + "/events"))
        transport.close()
    assert (first.status, second.status) == (200, 200)
    assert len({port for *_, port in server.seen}) == 2


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
        # The server answers only once the test releases it, after send() returned: a 200 would mean the transport
        # waited for the answer instead of giving up after its read timeout.
        answer = Transport(2, 0.2).send(_post(server.url + "/hung"))
        server.release.set()
    assert answer.status is None and "timed out" in answer.error.lower()
    assert answer.latency_ms >= 200  # gave up after the read timeout, not before


def test_a_307_redirect_is_followed_with_method_and_body() -> None:
    with _serving() as server:
        answer = Transport(2, 5).send(_post(server.url + "/moved", b"payload"))
    assert answer.status == 200
    assert [(m, p, b) for m, p, b, _ in server.seen] == [("POST", "/moved", b"payload"),
                                                         ("POST", "/landed", b"payload")]


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


def test_https_goes_through_the_proxys_connect_tunnel_with_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def proxy() -> None:
            connection, _ = listener.accept()
            with connection:
                seen.append(connection.recv(4096))
                connection.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

        thread = threading.Thread(target=proxy, daemon=True)
        thread.start()
        monkeypatch.setenv("HTTPS_PROXY", f"http://user:p%40ss@127.0.0.1:{port}")
        answer = Transport(2, 5).send(_post("https://partner.example/events"))
        thread.join(5)
    assert answer.status is None and "403" in answer.error  # the tunnel was refused: no answer from the partner
    request = seen[0].decode()
    assert request.startswith("CONNECT partner.example:443 HTTP/1.")
    assert "Proxy-Authorization: Basic dXNlcjpwQHNz\r\n" in request  # user:p@ss


def _self_signed(folder: str) -> tuple[str, str]:
    """(certificate, key) files for 127.0.0.1 / localhost."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = f"{folder}/cert.pem", f"{folder}/key.pem"
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return cert_path, key_path


@contextmanager
def _serving_tls(cert: str, key: str) -> Iterator[_Server]:
    with _serving() as server:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        yield server


def test_https_is_verified_against_the_trusted_certificates(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    cert, key = _self_signed(str(tmp_path))
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # the machine's trust store, as OpenSSL reads it
    with _serving_tls(cert, key) as server:
        port = server.server_address[1]
        transport = Transport(2, 5)
        answers = transport.exchange([_post(f"https://localhost:{port}/events", b"{}") for _ in range(3)])
        transport.close()
    assert [a.status for a in answers] == [200] * 3


def test_an_untrusted_certificate_is_a_failure_not_an_answer(tmp_path) -> None:  # noqa: ANN001
    cert, key = _self_signed(str(tmp_path))
    with _serving_tls(cert, key) as server:
        answer = Transport(2, 5).send(_post(f"https://localhost:{server.server_address[1]}/events"))
    assert answer.status is None and "PEER_FAILED_VERIFICATION" in answer.error  # libcurl's error name
    assert "certificate" in answer.error


def test_a_waves_answers_all_time_out_within_one_read_timeout() -> None:
    with _serving() as server:
        # Ten answers that never come (until released) and a 1 s read timeout: one timeout for the wave ends the
        # exchange after about 1 s, one per request would take at least 10 s. The bound between them leaves 7 s for
        # a loaded machine.
        started = time.monotonic()
        answers = Transport(2, 1.0).exchange([_post(server.url + f"/hung/{i}") for i in range(10)])
        took = time.monotonic() - started
        server.release.set()
    assert all(a.status is None and "timed out" in a.error for a in answers)
    assert all(a.latency_ms >= 1000 for a in answers)  # none gave up before the read timeout
    assert took < 8.0  # one read timeout for the wave, not one per request


def test_answers_are_read_as_they_arrive_so_each_latency_is_its_own() -> None:
    with _serving() as server:
        server.delay = 3.0
        slow, fast = Transport(2, 30).exchange([_post(server.url + "/slow"), _post(server.url + "/fast")])
    assert (slow.status, fast.status) == (200, 200)
    # The fast answer is a round trip on 127.0.0.1 (milliseconds); read after the slow one, it would show 3 s or
    # more like the slow one. 1.5 s between them leaves room for a loaded machine.
    assert fast.latency_ms < 1500 and slow.latency_ms >= 3000


def test_a_redirect_to_another_origin_is_not_followed_and_gets_no_credentials() -> None:
    with _serving() as server, _serving() as other:
        server.elsewhere = other.url + "/stolen"
        request = Request(server.url + "/elsewhere", {"Authorization": "Bearer SECRET"}, b"{}")
        answer = Transport(2, 5).send(request)
    assert answer.status == 307 and other.seen == []


def test_an_interim_answer_is_passed_over_and_the_final_one_read() -> None:
    # The server sends 103 Early Hints, then its 200. (The previous client could not read past a 103 and failed
    # the request; libcurl reads interim answers and keeps only the final one's headers.)
    with _serving() as server:
        transport = Transport(2, 5)
        first = transport.send(_post(server.url + "/early-hints"))
        second = transport.send(_post(server.url + "/events", b"second"))
        transport.close()
    assert (first.status, first.body) == (200, b"ok") and first.headers.get("link") is None
    assert (second.status, second.body) == (200, b"ok")
    assert len({port for *_, port in server.seen}) == 1  # the connection was kept for the next request


def test_an_answer_sent_before_the_body_was_read_is_still_read() -> None:
    with _serving() as server:
        answer = Transport(2, 5).send(_post(server.url + "/refuse-early", b"x" * 8_000_000))
    assert (answer.status, answer.body) == (413, b"too long")


def test_an_answer_that_came_while_another_was_being_read_is_not_called_a_timeout() -> None:
    with _serving() as server:
        server.delay = 0.0
        # The dribbling answer's end waits for the test (after the exchange): its read always times out, after 2 s,
        # by which time the quick answer has long arrived.
        dribble, quick = Transport(2, 2.0).exchange([_post(server.url + "/dribble"), _post(server.url + "/fast")])
        server.release.set()
    assert quick.status == 200  # answered at once, read after the dribbling answer's read gave up
    assert dribble.status is None


def test_a_reused_connection_writes_a_large_body_with_the_full_timeout() -> None:
    with _serving() as server:
        # The first answer comes 2.5 s into a 4 s read timeout, so what is left of it is at most 1.5 s. The server
        # then reads the second, large body only after 2.5 s: written with the leftover timeout the write fails,
        # with the full 4 s it does not. Each side has a second or more of slack for a loaded machine.
        server.delay = 2.5
        server.stall_read = 2.5
        transport = Transport(2, 4.0)
        first = transport.send(_post(server.url + "/events"))
        server.delay = 0.0
        second = transport.send(_post(server.url + "/stall-read", b"x" * 48_000_000))
        transport.close()
    assert (first.status, second.status) == (200, 200)
    assert len({port for *_, port in server.seen}) == 1


def test_over_tls_an_answer_sent_before_the_body_was_read_is_still_read(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path) -> None:  # noqa: ANN001
    cert, key = _self_signed(str(tmp_path))
    monkeypatch.setenv("SSL_CERT_FILE", cert)
    with _serving_tls(cert, key) as server:
        answer = Transport(2, 5).send(_post(f"https://localhost:{server.server_address[1]}/refuse-early",
                                            b"x" * 8_000_000))
    assert (answer.status, answer.body) == (413, b"too long")
