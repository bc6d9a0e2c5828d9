"""CPU per request of the partner transport, the libcurl one against the previous http.client one, in one run.

    .venv/bin/python -m benchmarks.transport_cpu                       # 2000 requests of ~20 KB, waves of 4
    .venv/bin/python -m benchmarks.transport_cpu --requests 500 --rounds 1 --body-bytes 20000 --wave 4

Each transport sends N POSTs (bodies of `--body-bytes`, a partner batch) in waves of `--wave` to a keep-alive
HTTP/1.1 server on 127.0.0.1 that reads each body and answers `200` with an empty body. The server runs in a child
process, so this process's CPU (user + system, `resource.getrusage`) is the client's alone: encoding nothing,
sending, reading answers. Reported: CPU µs per request and wall ms per wave, median over `--rounds` rounds (the
transports take turns within each round, after a warm-up wave each).

The previous transport is read from git at run time (`git show <ref>:sinks/http/transport.py` into a temp file,
imported from there; `--old-ref`, default: the newest commit whose transport does not use pycurl) or from `--old
FILE`. Nothing of it is kept in the tree.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any, Optional

from sinks.http.partners.base import Request

TRANSPORT_PATH = "sinks/http/transport.py"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _serve() -> None:
    """The child process: serve until stdin closes."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()
    server.shutdown()


def _old_transport(path: Optional[str], ref: Optional[str]) -> tuple[ModuleType, str]:
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                          check=True).stdout.strip()
    if path is None:
        if ref is None:
            commits = subprocess.run(["git", "log", "--format=%H", "--", TRANSPORT_PATH], cwd=root,
                                     capture_output=True, text=True, check=True).stdout.split()
            for commit in commits:
                text = subprocess.run(["git", "show", f"{commit}:{TRANSPORT_PATH}"], cwd=root,
                                      capture_output=True, text=True, check=True).stdout
                if "import pycurl" not in text:
                    ref = commit
                    break
            else:
                raise SystemExit("no commit with a transport without pycurl: give --old FILE")
        text = subprocess.run(["git", "show", f"{ref}:{TRANSPORT_PATH}"], cwd=root, capture_output=True,
                              text=True, check=True).stdout
        handle = tempfile.NamedTemporaryFile("w", suffix="_old_transport.py", delete=False)
        with handle:
            handle.write(text)
        path = handle.name
        label = f"git {ref[:10]}"
    else:
        label = path
    spec = importlib.util.spec_from_file_location("old_transport", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module, label


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(transport: Any, url: str, requests: int, wave: int, body: bytes) -> tuple[float, float]:
    """(CPU µs per request, wall ms per wave) for N requests in waves."""
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench"}
    batch = [Request(url, headers, body) for _ in range(wave)]
    transport.exchange(batch)  # warm-up: connections open
    waves = max(1, requests // wave)
    cpu, wall = _cpu(), time.perf_counter()
    for _ in range(waves):
        answers = transport.exchange(batch)
        if any(a.status != 200 for a in answers):
            raise SystemExit(f"unexpected answer: {[a.status or a.error for a in answers]}")
    cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    return cpu / (waves * wave) * 1e6, wall / waves * 1000


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--wave", type=int, default=4)
    parser.add_argument("--body-bytes", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old", help="the previous transport's file (default: from git)")
    parser.add_argument("--old-ref", help="the git commit to take the previous transport from")
    parser.add_argument("--out", help="also write the figures as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve()
        return

    from sinks.http.transport import Transport

    old, label = _old_transport(args.old, args.old_ref)
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.transport_cpu", "--serve"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert child.stdout is not None
        url = f"http://127.0.0.1:{int(child.stdout.readline())}/currents"
        body = b'{"events":[' + b"x" * max(0, args.body_bytes - 13) + b"]}"
        figures: dict[str, list[tuple[float, float]]] = {"libcurl (sinks/http/transport.py)": [],
                                                        f"http.client ({label})": []}
        makers = {"libcurl (sinks/http/transport.py)": Transport, f"http.client ({label})": old.Transport}
        for _ in range(args.rounds):
            for name, make in makers.items():
                transport = make(5, 30, args.wave)
                try:
                    figures[name].append(_run(transport, url, args.requests, args.wave, body))
                finally:
                    transport.close()
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(10)

    report: dict[str, dict[str, Any]] = {name: {"cpu_us_per_request": statistics.median(c for c, _ in runs),
                     "cpu_us_per_request_all": [round(c, 1) for c, _ in runs],
                     "wall_ms_per_wave": statistics.median(w for _, w in runs)} for name, runs in figures.items()}
    print(f"{args.requests} requests of {len(body)} B in waves of {args.wave}, {args.rounds} round(s), "
          f"median; server in a child process")
    print(f"{'transport':<44} {'CPU µs/request':>15} {'wall ms/wave':>13}   all rounds (µs)")
    for name, row in report.items():
        print(f"{name:<44} {row['cpu_us_per_request']:>15.0f} {row['wall_ms_per_wave']:>13.2f}   "
              f"{row['cpu_us_per_request_all']}")
    new, previous = (float(row["cpu_us_per_request"]) for row in report.values())
    print(f"libcurl / http.client CPU per request: {new / previous:.2f}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
