"""A small Currents-format receiver for the demo and the benchmark: accepts `POST {"events": [...]}` with a bearer
token and keeps count of what it got. (The test suite has stricter stand-ins for every partner.)

While the job sends, it only keeps each accepted body; the bodies are read when `events`, `ids` or `requests` are
asked for. A partner's processing is not what the benchmark measures, and the job waits for every answer.
"""
from __future__ import annotations

import collections
import orjson
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, token: str) -> None:
        self.token = token
        self._bodies: list[bytes] = []
        self._read = 0  # bodies counted so far
        self._events: collections.Counter = collections.Counter()
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = self.headers.get("Authorization") == f"Bearer {receiver.token}"
                if ok:
                    receiver.keep(body)
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/currents"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def keep(self, body: bytes) -> None:
        self._bodies.append(body)  # atomic: handler threads need no lock here

    def _count(self) -> None:
        with self._lock:
            bodies = self._bodies[self._read:]
            self._read += len(bodies)
            for body in bodies:
                for event in orjson.loads(body or b"{}").get("events", []):
                    self._events[event["event_type"]] += 1
                    self._ids.add(event["id"])

    @property
    def requests(self) -> int:
        """Accepted requests (a refused one is not kept)."""
        return len(self._bodies)

    @property
    def events(self) -> collections.Counter:
        """Events received per event type."""
        self._count()
        return self._events

    @property
    def ids(self) -> set[str]:
        self._count()
        return self._ids

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
