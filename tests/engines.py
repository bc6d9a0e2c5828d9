"""Start and stop the streaming engines of tools/engines (a Kafka broker, Beam's Kafka expansion service with its
Java worker pool, the Prism runner, the Pub/Sub fake), each on free ports of 127.0.0.1.

Like tests/emulators.py, each helper is a context manager that returns only once the engine is ready (its port
answers and, where the engine prints one, its ready line is in its log), raises `EngineError` with the last lines
of the engine's log when it exits or does not get ready in time, and on exit stops the process group it started
(JVMs and Prism fork helpers), so a failed test never leaves an engine behind. The engines are installed by
`make engines` into .tools/engines; a helper whose engine is missing says so. This module is a fixture library,
not a test file.

    with kafka_broker(tmp) as bootstrap, kafka_expansion_service() as expansion, prism() as job_endpoint:
        kafka_create_topic(bootstrap, "events")
        kafka_produce(bootstrap, "events", lines)
        ... python -m pipeline --runner=PortableRunner --job_endpoint=<job_endpoint> --environment_type=LOOPBACK
            --source=kafka:<bootstrap>/events --kafka_expansion_service=<expansion> ...
    with pubsub_fake() as host:  # PUBSUB_EMULATOR_HOST=<host>
        ...
"""
from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]
ENGINES = Path(os.environ.get("CURRENTS_ENGINES_DIR", REPO / ".tools" / "engines"))
KAFKA_LIB = ENGINES / "kafka" / "lib"
EXPANSION_LIB = ENGINES / "expansion" / "lib"
PRISM_BIN = ENGINES / "bin" / "prism"
PSTEST_BIN = ENGINES / "bin" / "pstest"
JAVA = os.environ.get("JAVA", "java")

# Generous: a JVM on a busy 2-core machine (tests run with -n 2) takes seconds; the broker ~6 s when idle.
START_TIMEOUT = 120.0
_START_ATTEMPTS = 3  # another process may take a free port between our probe and the engine's bind
_LOG_LINES = 40


class EngineError(RuntimeError):
    """An engine is not installed, did not start, or a helper command failed; the message carries its log's tail."""


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it, so parallel test workers do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = _LOG_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise EngineError(f"{what} not found at {path}: run `make engines` in {REPO}")


def _classpath(lib: Path, what: str) -> str:
    _require(lib, what)
    return f"{lib}{os.sep}*"


def _stop(proc: "subprocess.Popen[bytes]", grace: float = 10.0) -> None:
    """SIGTERM the whole process group (a JVM shuts down cleanly on it), SIGKILL whatever lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # also reaps children that outlived their parent
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


class _Started:
    """A process started in its own session, logging to a file, with a readiness wait."""

    def __init__(self, name: str, argv: Sequence[str], log_dir: Path, env: Optional[dict[str, str]] = None,
                 cwd: Optional[Path] = None) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)

    def wait_ready(self, port: int, ready_line: Optional[str], timeout: float) -> Optional[str]:
        """Wait for the port to answer and the ready line (a regex) to be logged. Returns None when ready, else why
        not ("exited" when the process ended, which a retry on other ports may cure)."""
        pattern = re.compile(ready_line) if ready_line else None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited"
            line_seen = pattern is None or bool(pattern.search(self.log.read_text(errors="replace")))
            if line_seen and _port_answers(port):
                return None
            time.sleep(0.2)
        return "timeout"

    def failure(self, why: str, timeout: float) -> str:
        if why == "exited":
            head = f"{self.name} exited with code {self.proc.returncode}"
        else:
            head = f"{self.name} did not get ready within {timeout:.0f}s"
        return f"{head} (log {self.log}); its last lines:\n{_tail(self.log)}"

    def stop(self) -> None:
        _stop(self.proc)


@contextlib.contextmanager
def _engine(name: str, argv_for_ports: Callable[[int], Sequence[str]], *, ready_line: Optional[str],
            log_dir: Optional[Path] = None, env_for_port: Optional[Callable[[int], dict[str, str]]] = None,
            prepare: Optional[Callable[[int, Path], None]] = None, cwd: Optional[Path] = None,
            timeout: float = START_TIMEOUT) -> Iterator[int]:
    """Start argv_for_ports(port) until it is ready; yield the port; always stop it. Logs stay in log_dir (a temp
    folder removed afterwards unless given)."""
    owned = log_dir is None
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-")) if log_dir is None else Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        last = ""
        for _attempt in range(_START_ATTEMPTS):
            port = free_port()
            if prepare is not None:
                prepare(port, folder)
            started = _Started(name, argv_for_ports(port), folder,
                               env=env_for_port(port) if env_for_port else None, cwd=cwd)
            try:
                why = started.wait_ready(port, ready_line, timeout)
                if why is None:
                    yield port
                    return
                last = started.failure(why, timeout)
                if why != "exited" or _port_answers(port):
                    raise EngineError(last)
                # exited: most likely the port was taken meanwhile; try other ports
            finally:
                started.stop()
        raise EngineError(last or f"{name} did not start")
    finally:
        if owned:
            shutil.rmtree(folder, ignore_errors=True)


def _run_tool(name: str, argv: Sequence[str], *, stdin: Optional[bytes] = None, timeout: float = 120.0) -> str:
    """Run a short command (a Kafka tool); its output, or EngineError with its last lines."""
    try:
        done = subprocess.run(list(argv), input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace")
        tail = "\n".join(out.splitlines()[-_LOG_LINES:])
        raise EngineError(f"{name} did not finish within {timeout:.0f}s:\n{tail}") from None
    out = done.stdout.decode(errors="replace")
    if done.returncode != 0:
        raise EngineError(f"{name} failed with code {done.returncode}:\n" + "\n".join(out.splitlines()[-_LOG_LINES:]))
    return out


# --- Kafka ------------------------------------------------------------------------------------------------------

def _kafka_cluster_id() -> str:
    """What `kafka-storage.sh random-uuid` prints (a URL-safe base64 UUID), without starting a JVM for it."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@contextlib.contextmanager
def kafka_broker(tmp: "str | os.PathLike[str]", *, partitions: int = 1,
                 timeout: float = START_TIMEOUT) -> Iterator[str]:
    """A single-node KRaft Kafka broker (broker and controller in one JVM) with its data and log under tmp; yields
    its bootstrap address "127.0.0.1:PORT". Topics are auto-created with `partitions` partitions."""
    classpath = _classpath(KAFKA_LIB, "the Kafka broker")
    root = Path(tmp)
    root.mkdir(parents=True, exist_ok=True)

    def prepare(port: int, folder: Path) -> None:
        controller = free_port()
        data = folder / f"data-{port}"
        props = folder / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{HOST}:{controller}",
            f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            f"num.partitions={partitions}",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "",
        ]))
        _run_tool("kafka StorageTool format",
                  [JAVA, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", _kafka_cluster_id(),
                   "-c", str(props)])

    with _engine("kafka", lambda port: [JAVA, "-Xmx512m", "-cp", classpath, "kafka.Kafka",
                                        str(root / "server.properties")],
                 ready_line=r"Kafka Server started",
                 log_dir=root, prepare=prepare, timeout=timeout) as port:
        yield f"{HOST}:{port}"


def kafka_create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Create a topic (idempotent) with Kafka's own TopicCommand."""
    _run_tool("kafka TopicCommand",
              [JAVA, "-cp", _classpath(KAFKA_LIB, "the Kafka tools"), "org.apache.kafka.tools.TopicCommand",
               "--bootstrap-server", bootstrap, "--create", "--if-not-exists", "--topic", topic,
               "--partitions", str(partitions), "--replication-factor", "1"])


def kafka_produce(bootstrap: str, topic: str, values: Iterable["bytes | str"]) -> int:
    """Produce one record per value (no key, no newline inside a value) with Kafka's own ConsoleProducer, acks=all;
    returns how many were sent. Values are JSON lines here, so the console producer's one-record-a-line fits."""
    lines = [v.encode() if isinstance(v, str) else v for v in values]
    if any(b"\n" in line for line in lines):
        raise ValueError("kafka_produce: a value holds a newline; the console producer sends one record a line")
    _run_tool("kafka ConsoleProducer",
              [JAVA, "-cp", _classpath(KAFKA_LIB, "the Kafka tools"), "org.apache.kafka.tools.ConsoleProducer",
               "--bootstrap-server", bootstrap, "--topic", topic, "--command-property", "acks=all",
               "--command-property", "linger.ms=5"],
              stdin=b"".join(line + b"\n" for line in lines))
    return len(lines)


@contextlib.contextmanager
def kafka_expansion_service(*, log_dir: "Optional[str | os.PathLike[str]]" = None,
                            timeout: float = START_TIMEOUT) -> Iterator[str]:
    """Beam's Java expansion service with KafkaIO (Beam 2.73.0, tools/engines/expansion/pom.xml) and the Java
    worker pool its transforms run in (EXTERNAL environment: no Docker); yields "localhost:PORT" for
    `--kafka_expansion_service` / `ReadFromKafka(expansion_service=...)`. The worker pool starts first, the
    expansion service then points every Java transform's environment at it."""
    classpath = _classpath(EXPANSION_LIB, "the Kafka expansion service")
    jamm = EXPANSION_LIB / "jamm-0.4.0.jar"
    _require(jamm, "jamm (the Java worker's -javaagent)")
    logs = Path(log_dir) if log_dir is not None else None

    def pool_env(port: int) -> dict[str, str]:  # the worker pool reads its own address from its options
        options = '{"options":{"environmentOptions":["external_service_address=%s:%d"]}}' % (HOST, port)
        return {"PIPELINE_OPTIONS": options}

    with _engine("java-worker-pool",
                 lambda port: [JAVA, f"-javaagent:{jamm}", "-Xmx1g", "-cp", classpath,
                               "org.apache.beam.fn.harness.ExternalWorkerService"],
                 env_for_port=pool_env, ready_line=r"External worker service started at address",
                 log_dir=logs, timeout=timeout) as wport:
        with _engine("kafka-expansion-service",
                     lambda port: [JAVA, "-Xmx1g", "-cp", classpath,
                                   "org.apache.beam.sdk.expansion.service.ExpansionService", str(port),
                                   "--defaultEnvironmentType=EXTERNAL",
                                   f"--defaultEnvironmentConfig={HOST}:{wport}"],
                     ready_line=r"Starting expansion service at", log_dir=logs, timeout=timeout) as eport:
            yield f"localhost:{eport}"


# --- Prism and the Pub/Sub fake -------------------------------------------------------------------------------

@contextlib.contextmanager
def prism(*, log_dir: "Optional[str | os.PathLike[str]]" = None, timeout: float = START_TIMEOUT) -> Iterator[str]:
    """Beam's Prism runner (Go, tools/engines/engines.mk's PRISM_VERSION) as a job server; yields its job endpoint
    "localhost:PORT" for `--runner=PortableRunner --job_endpoint=... --environment_type=LOOPBACK`."""
    _require(PRISM_BIN, "Prism")
    with _engine("prism", lambda port: [str(PRISM_BIN), "--job_port", str(port), "--serve_http=false"],
                 ready_line=r"Serving JobManagement", log_dir=Path(log_dir) if log_dir else None,
                 timeout=timeout) as port:
        yield f"localhost:{port}"


@contextlib.contextmanager
def pubsub_fake(*, log_dir: "Optional[str | os.PathLike[str]]" = None,
                timeout: float = START_TIMEOUT) -> Iterator[str]:
    """Google's Pub/Sub fake (pstest, tools/engines/pstest), in memory; yields "127.0.0.1:PORT", the value of
    PUBSUB_EMULATOR_HOST. Any project id works (the tests use `test-project`); topics and subscriptions are
    created through the normal admin API."""
    _require(PSTEST_BIN, "pstest (the Pub/Sub fake)")
    with _engine("pstest", lambda port: [str(PSTEST_BIN), "--port", str(port)], ready_line=r"pstest listening on",
                 log_dir=Path(log_dir) if log_dir else None, timeout=timeout) as port:
        yield f"{HOST}:{port}"
