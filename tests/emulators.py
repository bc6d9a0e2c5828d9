"""Start and stop the local stand-ins for S3, GCS and Azure Blob (docs/testing.md), each on a free port of 127.0.0.1.

Each helper is a context manager that returns only once the service answers HTTP, and on exit terminates the
process group it started (emulators may fork helpers), so a failed test never leaves a server behind. Tests get
them through the session fixtures in tests/conftest.py; the demo and benchmarks may use them directly.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Optional

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent  # moto_server and gcp-storage-emulator are installed next to python
AZURITE_VERSION = "3.37.0"
AZURITE_BIN = REPO / ".tools" / "node" / "node_modules" / ".bin" / "azurite-blob"

# The well-known Azurite development account (public, documented by Microsoft; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

STARTUP_TIMEOUT = 60.0
_START_ATTEMPTS = 3  # another process may grab the free port between our probe and the emulator's bind


class EmulatorError(RuntimeError):
    """An emulator did not start; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it, so parallel test workers do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status means the server is up (Azurite answers 400 at the root)
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # also reaps children that outlived their parent
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def _serve(name: str, argv_for_port: Callable[[int], list[str]], url_for_port: Callable[[int], str],
           env: Optional[dict[str, str]] = None, timeout: float = STARTUP_TIMEOUT) -> Iterator[int]:
    """Run argv on a free port until it answers; yield the port; always stop it."""
    last_error = ""
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        with tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False) as log:
            log_path = Path(log.name)
            proc = subprocess.Popen(argv_for_port(port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, **(env or {})}, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            url = url_for_port(port)
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if _answers(url):
                    break
                time.sleep(0.05)
            if proc.poll() is not None:
                last_error = f"{name} exited with code {proc.returncode}:\n{_tail(log_path)}"
                continue  # most likely the port was taken meanwhile: try another one
            if not _answers(url):
                raise EmulatorError(f"{name} did not answer at {url} within {timeout:.0f}s:\n{_tail(log_path)}")
            yield port
            return
        finally:
            _stop(proc)
            with contextlib.suppress(OSError):
                log_path.unlink()
    raise EmulatorError(last_error or f"{name} did not start")


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """A moto S3 server; yields its endpoint URL. Any access key works unless a test turns on moto's IAM auth."""
    binary = VENV_BIN / "moto_server"
    if not binary.exists():
        raise EmulatorError(f"{binary} not found: install the test extras (pip install -e '.[test]')")
    with _serve("moto_server", lambda port: [str(binary), "-H", HOST, "-p", str(port)],
                lambda port: f"http://{HOST}:{port}/") as port:
        yield f"http://{HOST}:{port}"


@contextlib.contextmanager
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator, in memory; yields its endpoint URL (what STORAGE_EMULATOR_HOST would hold)."""
    binary = VENV_BIN / "gcp-storage-emulator"
    if not binary.exists():
        raise EmulatorError(f"{binary} not found: install the test extras (pip install -e '.[test]')")
    with _serve("gcp-storage-emulator",
                lambda port: [str(binary), "start", f"--host={HOST}", f"--port={port}", "--in-memory"],
                lambda port: f"http://{HOST}:{port}/") as port:
        yield f"http://{HOST}:{port}"


def azurite_connection_string(endpoint: str) -> str:
    """The devstoreaccount1 connection string for an Azurite blob endpoint like http://127.0.0.1:PORT."""
    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};")


@contextlib.contextmanager
def azurite(tmp_dir: "str | os.PathLike[str]") -> Iterator[str]:
    """Azurite's blob service storing under tmp_dir; yields a devstoreaccount1 connection string."""
    if not AZURITE_BIN.exists():
        raise EmulatorError(
            f"Azurite not found at {AZURITE_BIN}: run `make test` (which installs it), or "
            f"`npm install --prefix .tools/node azurite@{AZURITE_VERSION}` in {REPO}")
    location = Path(tmp_dir)
    location.mkdir(parents=True, exist_ok=True)
    with _serve("azurite-blob",
                lambda port: [str(AZURITE_BIN), "--blobHost", HOST, "--blobPort", str(port), "--location",
                              str(location), "--silent", "--skipApiVersionCheck", "--disableTelemetry"],
                lambda port: f"http://{HOST}:{port}/") as port:
        yield azurite_connection_string(f"http://{HOST}:{port}")
