"""A small Currents-format receiver for the demo: accepts `POST {"events": [...]}` with a bearer token and keeps
count of what it got. (The test suite has stricter stand-ins for every partner.)"""
from __future__ import annotations

import collections
import orjson
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, token: str) -> None:
        self.token = token
        self.requests = 0
        self.events: collections.Counter = collections.Counter()
        self.ids: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = self.headers.get("Authorization") == f"Bearer {receiver.token}"
                if ok:
                    receiver.record(orjson.loads(body or b"{}").get("events", []))
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/currents"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def record(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            self.requests += 1
            for event in events:
                self.events[event["event_type"]] += 1
                self.ids.add(event["id"])

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
