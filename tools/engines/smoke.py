"""A by-hand smoke run of the engines (not a test): Kafka → the job on Prism, streaming → a filesystem connector.

    make engines && .venv/bin/python tools/engines/smoke.py [--records 50] [--seconds 90] [--work out/engines-smoke]

It starts the Kafka broker, the Kafka expansion service (with its Java worker pool) and Prism (tests/engines.py),
produces generated events to a topic with Kafka's own console producer, then runs this project's job as a user would:

    python -m pipeline --runner=PortableRunner --job_endpoint=localhost:P --environment_type=LOOPBACK --streaming
        --source=kafka:127.0.0.1:B/currents-smoke --kafka_expansion_service=localhost:E
        --kafka_consumer_config='{"group.id":...,"auto.offset.reset":"earliest","enable.auto.commit":"false"}'
        --connectors=<a filesystem connector, flush_seconds 5> --dead_letter=<work>/dead-letter

for at most --seconds, stops it (SIGINT, then the job is cancelled with Prism), and says how many records reached
files and dead letters. With --in-process it also runs the same graph from this process, calling Beam's
run()/wait_until_finish() itself, which tells whether the graph runs on Prism at all when the launcher does not
wait. Everything (engine logs, the job's output, files) stays under --work.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.engines import (  # noqa: E402 - the repository root must be importable first
    kafka_broker, kafka_create_topic, kafka_expansion_service, kafka_produce, prism)

TOPIC = "currents-smoke"


def count_records(folder: Path) -> tuple[int, int]:
    """(files, records) under folder: Avro container files counted with fastavro, .jsonl.gz by lines."""
    files = records = 0
    if not folder.exists():
        return 0, 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        files += 1
        if path.name.endswith(".avro"):
            import fastavro
            with open(path, "rb") as handle:
                records += sum(1 for _ in fastavro.reader(handle))
        elif path.name.endswith(".gz"):
            with gzip.open(path, "rt") as handle:
                records += sum(1 for line in handle if line.strip())
        elif path.name.endswith((".jsonl", ".json")):
            records += sum(1 for line in path.read_text().splitlines() if line.strip())
    return files, records


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def job_argv(job_endpoint: str, bootstrap: str, expansion: str, connectors: Path, dead_letter: Path,
             group: str) -> list[str]:
    consumer = {"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": "false"}
    return ["--runner=PortableRunner", f"--job_endpoint={job_endpoint}", "--environment_type=LOOPBACK",
            "--streaming", f"--source=kafka:{bootstrap}/{TOPIC}", f"--kafka_expansion_service={expansion}",
            f"--kafka_consumer_config={json.dumps(consumer)}", f"--connectors={connectors}",
            f"--dead_letter={dead_letter}"]


def run_launcher(argv: list[str], work: Path, seconds: float, files: Path) -> tuple[Optional[int], float]:
    """`python -m pipeline ...` for at most `seconds`; (its exit code or None when we stopped it, elapsed)."""
    out = work / "job.log"
    print(f"$ {sys.executable} -m pipeline {' '.join(argv)}", flush=True)
    started = time.monotonic()
    with open(out, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", *argv], cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    last = -1
    while time.monotonic() - started < seconds and proc.poll() is None:
        time.sleep(2)
        _, records = count_records(files)
        if records != last:
            print(f"  {time.monotonic() - started:5.0f}s  records in files: {records}", flush=True)
            last = records
    code = proc.poll()
    if code is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        code = None
    elapsed = time.monotonic() - started
    print(f"launcher: {'stopped by the smoke run' if code is None else f'exited by itself with code {code}'} "
          f"after {elapsed:.0f}s; its output ({out}), last lines:\n{tail(out)}", flush=True)
    return code, elapsed


def run_in_process(argv: list[str], seconds: float) -> None:
    """The same graph, run and awaited from here (what a launcher that waits would do), then cancelled."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from pipeline.graph import build_pipeline
    from pipeline.main import _make_pipeline, job_from_options

    options = PipelineOptions(argv)
    job = job_from_options(options)
    options.view_as(StandardOptions).streaming = True
    pipeline = _make_pipeline(options, True)
    build_pipeline(pipeline, job)
    result = pipeline.run()
    try:
        state = result.wait_until_finish(duration=int(seconds * 1000))
        print(f"in-process: state after {seconds:.0f}s: {state}", flush=True)
    finally:
        try:
            result.cancel()
        except Exception as exc:  # noqa: BLE001 - a smoke run reports, it does not judge
            print(f"in-process: cancel: {exc}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=90.0, help="how long the job may run")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "engines-smoke")
    parser.add_argument("--in-process", action="store_true",
                        help="after the launcher, also run the graph from this process and wait for it")
    args = parser.parse_args()
    work = args.work.resolve()
    if work.exists():
        import shutil
        shutil.rmtree(work)
    (work / "engines").mkdir(parents=True)
    events = work / "events.jsonl"
    subprocess.run([sys.executable, "-m", "transforms.generate", "--count", str(args.records), "--seed", "1",
                    "--out", str(events)], cwd=REPO, check=True)
    lines = [line for line in events.read_text().splitlines() if line.strip()]
    t0 = time.monotonic()
    results: dict[str, tuple[int, int, int, int]] = {}
    launcher_code: Optional[int] = None
    with kafka_broker(work / "engines" / "kafka") as bootstrap, \
            kafka_expansion_service(log_dir=work / "engines") as expansion, \
            prism(log_dir=work / "engines") as job_endpoint:
        print(f"engines up in {time.monotonic() - t0:.0f}s: kafka {bootstrap}, expansion {expansion}, "
              f"prism {job_endpoint} (logs in {work / 'engines'})", flush=True)
        kafka_create_topic(bootstrap, TOPIC)
        sent = kafka_produce(bootstrap, TOPIC, lines)
        print(f"produced {sent} records to {TOPIC} (Kafka's ConsoleProducer, acks=all)", flush=True)
        phases = ["launcher", "in-process"] if args.in_process else ["launcher"]
        for phase in phases:
            # each phase its own consumer group (both read the topic from the start) and its own folders
            files, dead_letter = work / phase / "files", work / phase / "dead-letter"
            connectors = work / phase / "connectors.json"
            connectors.parent.mkdir(parents=True)
            connectors.write_text(json.dumps({"connectors": [
                {"id": "smoke", "type": "filesystem", "path": str(files), "flush_seconds": 5}]}))
            argv = job_argv(job_endpoint, bootstrap, expansion, connectors, dead_letter, f"smoke-{phase}")
            print(f"--- {phase}", flush=True)
            if phase == "launcher":
                launcher_code, _ = run_launcher(argv, work, args.seconds, files)
                time.sleep(3)
            else:
                try:
                    run_in_process(argv, args.seconds)
                except Exception as exc:  # noqa: BLE001 - report what Prism or Beam said
                    first = "\n".join(str(exc).splitlines()[:30])
                    print(f"in-process run failed: {type(exc).__name__}: {first}", flush=True)
            print(f"prism's log, last lines:\n{tail(work / 'engines' / 'prism.log', 12)}", flush=True)
            results[phase] = (*count_records(files), *count_records(dead_letter))
    for phase, (n_files, records, n_dead, dead) in results.items():
        print(f"RESULT {phase}: produced {len(lines)}; {records} records in {n_files} files; "
              f"{dead} dead letters in {n_dead} files (under {work / phase})", flush=True)
    print(f"launcher: {'stopped after --seconds' if launcher_code is None else f'exited {launcher_code}'}", flush=True)
    return 0 if results["launcher"][1] == len(lines) else 1


if __name__ == "__main__":
    raise SystemExit(main())
