"""Secrets never leave the job: not in a log line, a dead letter, a metric or an object key.

One real job (pipeline.main.main, local runner) with secrets read from ${ENV} that carry surrounding whitespace and a
trailing newline, as a key file pasted into a variable does:
- an `http` connector to a stand-in that accepts only the exact header `Authorization: Bearer <token>`: every event
  arrives (the value was stripped, not sent with its newline or refused as an invalid header);
- an `http` connector and a `segment` connector (Basic auth) to stand-ins that answer 401 echoing the Authorization
  header they got, in the body and in a header: their events become dead letters whose errors say 401, with the
  secret masked;
- a filesystem connector.
Every log record (root logger at DEBUG, a log file), stdout and stderr, every file the run wrote (dead letters,
metrics, objects) and every path are searched for the secret values, with and without their whitespace, and for
the Basic header's base64 form.

And what is printed about a connector never shows a URL's `user:password@` or token-like query values: the launch
log of a run, and `currents validate`.
"""
from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import logging
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

from pipeline import cli
from pipeline.main import main
from tests.corpus import corpus, dead_letters, write_lines

COUNT = 60


class Partner:
    """A local endpoint: `check(headers)` says whether a request is authorised; refused requests are answered 401
    with the Authorization header echoed back in the body and in a header, as careless servers do."""

    def __init__(self, check: Callable[[str], bool]) -> None:
        self.events: list[dict[str, Any]] = []
        self.refused = 0
        partner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                auth = self.headers.get("Authorization", "")
                if check(auth):
                    parsed = json.loads(body or b"{}")
                    partner.events += parsed.get("events", parsed.get("batch", []))
                    answer, status, extra = b'{"success":true}', 200, {}
                else:
                    partner.refused += 1
                    answer = json.dumps({"error": "invalid credentials", "received": auth,
                                         "credentials": auth.partition(" ")[2],
                                         "hint": f"Authorization: {auth}"}).encode()
                    status, extra = 401, {"WWW-Authenticate": f'Bearer error="invalid_token" got="{auth}"'}
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Partner":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def _secret(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


def _forms(secret: str) -> list[str]:
    """What would give a secret away: its value, and the base64 of a Basic header made from it."""
    basic = base64.b64encode(f"{secret}:".encode()).decode()
    return [secret, secret[: len(secret) // 2 + 4], basic[:-4], base64.b64encode(secret.encode()).decode()[:-4]]


@contextlib.contextmanager
def _captured(log_file: Path) -> Iterator[dict[str, Any]]:
    """Every log record of the process (root logger at DEBUG, a log file) and everything written to stdout and
    stderr while the block runs."""
    root = logging.getLogger()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep, to_file = Keep(logging.DEBUG), logging.FileHandler(log_file)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(keep)
    root.addHandler(to_file)
    out, err = io.StringIO(), io.StringIO()
    seen: dict[str, Any] = {}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield seen
    finally:
        root.removeHandler(keep)
        root.removeHandler(to_file)
        to_file.close()
        root.setLevel(level)
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        seen["logs"] = [formatter.format(r) for r in records]
        seen["stdout"], seen["stderr"] = out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("secrets")
    secrets = {"good": _secret("good-token"), "refused": _secret("refused-token"), "basic": _secret("write-key")}
    lines, kinds = corpus(COUNT, seed=5)
    source = write_lines(str(tmp / "events.jsonl"), lines)
    good_header = f"Bearer {secrets['good']}"
    with contextlib.ExitStack() as stack:
        good = stack.enter_context(Partner(lambda auth: auth == good_header))
        refused = stack.enter_context(Partner(lambda auth: False))
        basic = stack.enter_context(Partner(lambda auth: False))
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setenv("CURRENTS_TEST_GOOD_TOKEN", f"  {secrets['good']}\n")
        patch.setenv("CURRENTS_TEST_REFUSED_TOKEN", f"\t{secrets['refused']} \r\n")
        patch.setenv("CURRENTS_TEST_WRITE_KEY", f"{secrets['basic']}\n\n")
        fast = {"retry_attempts": 2, "backoff_base_seconds": 0.01, "backoff_cap_seconds": 0.05,
                "probe_interval_seconds": 0.2, "credential_grace_hours": 0.0005}
        config = {"connectors": [
            {"id": "good", "type": "http", "endpoint": f"{good.base}/currents", "token": "${CURRENTS_TEST_GOOD_TOKEN}"},
            {"id": "refused", "type": "http", "endpoint": f"{refused.base}/currents",
             "token": "${CURRENTS_TEST_REFUSED_TOKEN}", **fast},
            {"id": "refused-basic", "type": "segment", "endpoint": f"{basic.base}/v1/batch",
             "write_key": "${CURRENTS_TEST_WRITE_KEY}", "events": ["users.behaviors.*"], **fast},
            {"id": "lake", "type": "filesystem", "path": str(tmp / "out")},
        ]}
        config_file = tmp / "connectors.json"
        config_file.write_text(json.dumps(config))
        code: Optional[object] = 0
        with _captured(tmp / "job.log") as seen:
            try:
                main(["--runner=DirectRunner", f"--source=file:{source}", f"--connectors={config_file}",
                      f"--dead_letter={tmp / 'dead'}", f"--metrics_out={tmp / 'metrics.json'}"])
            except SystemExit as exc:
                code = exc.code
        yield {"tmp": tmp, "secrets": secrets, "seen": seen, "code": code, "good": good.events,
               "refused": refused.refused, "basic": basic.refused, "count": COUNT - len(kinds),
               "letters": dead_letters(str(tmp / "dead")), "metrics": json.loads((tmp / "metrics.json").read_bytes())}


def _leaks(job: dict[str, Any], text: str) -> list[str]:
    return [form for secret in job["secrets"].values() for form in _forms(secret) if form in text]


def test_a_token_with_surrounding_whitespace_reaches_a_partner_that_checks_the_header_exactly(job: dict) -> None:
    assert len({e["id"] for e in job["good"]}) == job["count"]


def test_refused_credentials_make_dead_letters_that_say_401_without_the_secret(job: dict) -> None:
    assert job["refused"] and job["basic"]
    letters = [d for d in job["letters"] if d["connector"] in ("refused", "refused-basic")]
    assert {d["connector"] for d in letters} == {"refused", "refused-basic"}
    assert len([d for d in letters if d["connector"] == "refused"]) == job["count"]
    assert {d["reason"] for d in letters} <= {"credentials_expired", "drained"}
    for connector in ("refused", "refused-basic"):  # the partner's answer is kept, masked
        assert any("HTTP 401" in d["error"] and "***" in d["error"] for d in letters if d["connector"] == connector)
    leaked = {form for d in letters for form in _leaks(job, json.dumps(d))}
    assert not leaked, [d["error"] for d in letters if _leaks(job, json.dumps(d))][:3]


def test_the_run_ends_with_a_destination_failure_not_a_crash(job: dict) -> None:
    assert job["code"] not in (0, None, 1)
    assert "Traceback" not in job["seen"]["stderr"] + "\n".join(job["seen"]["logs"])


@pytest.mark.parametrize("where", ["logs", "stdout", "stderr"])
def test_no_secret_in_any_log_line_or_printed_text(job: dict, where: str) -> None:
    text = "\n".join(job["seen"][where]) if where == "logs" else job["seen"][where]
    assert not _leaks(job, text), [line for line in text.splitlines() if _leaks(job, line)][:3]


def test_no_secret_in_the_log_file(job: dict) -> None:
    text = (job["tmp"] / "job.log").read_text()
    assert "connector good" in text or "good:" in text  # the file did get the run's log
    assert not _leaks(job, text), [line for line in text.splitlines() if _leaks(job, line)][:3]


def test_no_secret_in_any_file_the_run_wrote_nor_in_any_path(job: dict) -> None:
    tmp: Path = job["tmp"]
    written = [p for p in tmp.rglob("*") if p.is_file() and p.name not in ("connectors.json", "job.log")]
    assert any(p.name == "metrics.json" for p in written) and any("dead" in p.parts for p in written)
    for path in written:
        assert not _leaks(job, str(path.relative_to(tmp))), path
        data = path.read_bytes()
        if path.name.endswith(".gz"):
            data = gzip.decompress(data)
        assert not _leaks(job, data.decode("utf-8", "replace")), path


def test_no_secret_in_any_metric_name_or_value(job: dict) -> None:
    assert not _leaks(job, json.dumps(job["metrics"]))


# ---- URLs with credentials in what is printed --------------------------------------------------------------------

URL_SECRETS = ("pa55w0rd-in-url", "k3y-in-query-123", "t0ken-in-query-456")


def _url_config(tmp_path: Path, base: str) -> Path:
    endpoint = f"{base.replace('http://', 'http://alice:pa55w0rd-in-url@')}/hook?api_key=k3y-in-query-123&region=eu" \
               f"&access_token=t0ken-in-query-456"
    path = tmp_path / "connectors.json"
    path.write_text(json.dumps({"connectors": [{"id": "hook", "type": "http", "endpoint": endpoint}]}))
    return path


def test_currents_validate_masks_url_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", "--connectors", str(_url_config(tmp_path, "http://127.0.0.1:9"))]) == 0
    out = capsys.readouterr()
    assert "hook" in out.out and "127.0.0.1" in out.out
    printed = out.out + out.err
    assert not [s for s in URL_SECRETS if s in printed], printed


def test_the_launch_log_masks_url_credentials(tmp_path: Path) -> None:
    lines, _ = corpus(5, seed=2)
    source = write_lines(str(tmp_path / "events.jsonl"), lines)
    with Partner(lambda auth: True) as partner:
        config = _url_config(tmp_path, partner.base)
        with _captured(tmp_path / "job.log") as seen:
            try:
                main(["--runner=DirectRunner", f"--source=file:{source}", f"--connectors={config}",
                      f"--dead_letter={tmp_path / 'dead'}"])
            except SystemExit as exc:
                assert exc.code == 0, seen
    assert len(partner.events) == 5  # the run did deliver, so the endpoint was used, and printed
    text = "\n".join(seen["logs"]) + seen["stdout"] + seen["stderr"] + (tmp_path / "job.log").read_text()
    assert "connector hook" in text
    assert not [s for s in URL_SECRETS if s in text], [line for line in text.splitlines()
                                                       if any(s in line for s in URL_SECRETS)]
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.name not in ("connectors.json", "job.log"):
            assert not [s for s in URL_SECRETS if s.encode() in path.read_bytes()], path

