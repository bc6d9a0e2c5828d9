"""`python -m benchmarks.throughput [--events N] [--repeats R] [--out FILE]`: export speed and cost of the job.

One run measures, on one corpus from the built-in generator (seed 42, N lines of every catalogue type, 20 of them
invalid and 3 oversize):

* the bare loop (benchmarks.bare: orjson + fastavro + the HTTP bodies, no Beam, in this process);
* interpreter start-up: `python -c "import pipeline.main"`, subtracted from the job's wall time for its own time;
* the job, `python -m pipeline` on the local runner as a subprocess, with one `filesystem` Avro connector and one
  `http` connector posting to `examples.receiver.Receiver` on 127.0.0.1 (peak RSS of its process tree polled with
  psutil, and the kernel's maxrss of the process);
* the job with one and with five storage connectors (no http), for the cost of each extra connector.

Every measurement is repeated R times, in rounds (one of each per round, so drift hits them all alike); the
report gives the median and min/max. Every job run is checked: its `--metrics_out` counts (events in / valid /
invalid / oversize, `delivered` per connector, no connector dead letters), the Avro files on disk (records and
bytes), and the ids the receiver got; a mismatch stops the benchmark with an error.

A time budget (`--budget`, default 270 s) keeps the default run under five minutes on a small machine: when the
next round would not fit, the remaining rounds are dropped and the report says so. N is never changed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional

import fastavro
import psutil

from benchmarks.bare import MAX_EVENT_BYTES, bare_loop, valid_ids
from examples.receiver import Receiver
from transforms.generate import bad_line_kinds, generate_lines

ROOT = Path(__file__).resolve().parent.parent
SEED = 42
INVALID = 20
OVERSIZE = 3
TOKEN = "bench"
LINE_BYTES_TARGET = (400, 500)
OPTIONAL_RATE = 0.4  # the generator's share of optional fields that gives lines of 400-500 B (~490 B at seed 42)
TARGET_JOB_VS_BARE = 0.5  # job events/s ÷ bare events/s, at least
TARGET_FIVE_VS_ONE = 2.5  # 5-connector time ÷ 1-connector time, at most
TARGET_PEAK_RSS = int(1.5 * 2**30)  # bytes, at most
JOB_TIMEOUT_SECONDS = 900
MEASUREMENTS = ("bare", "startup", "job", "storage1", "storage5", "storage5_lanes")
LABELS = {
    "bare": "bare loop (orjson+fastavro, no Beam)",
    "startup": "start-up: python -c 'import pipeline.main'",
    "job": "job: 1 storage + 1 http",
    "storage1": "job: 1 storage connector",
    "storage5": "job: 5 storage connectors",
    "storage5_lanes": "job: 5 storage connectors, 5 lanes",
}
JOBS = ("job", "storage1", "storage5", "storage5_lanes")

log = logging.getLogger("benchmarks.throughput")


class BenchmarkError(RuntimeError):
    """A job run that failed or did not deliver what it should: the numbers would mean nothing."""


# --- corpus ------------------------------------------------------------------------------------------------------

@dataclass
class Corpus:
    path: str
    lines: int
    bytes: int  # without newlines
    valid: int
    invalid: int
    oversize: int
    avg_line_bytes: float  # lines at or under the size limit: the typical event (what the target is about)
    avg_line_bytes_all: float  # every line, with the few ~1 MB oversize ones
    generate_seconds: float

    @property
    def line_size_in_target(self) -> bool:
        return LINE_BYTES_TARGET[0] <= self.avg_line_bytes <= LINE_BYTES_TARGET[1]


def make_corpus(folder: str, events: int, seed: int = SEED, invalid: int = INVALID,
                oversize: int = OVERSIZE) -> Corpus:
    """Write the corpus with the built-in generator, as `python -m transforms.generate` would."""
    path = os.path.join(folder, f"corpus-{events}-seed{seed}-optional{OPTIONAL_RATE}.jsonl")
    started = time.perf_counter()
    total = small = small_lines = 0
    with open(path, "wb") as out:
        for line in generate_lines(events, seed=seed, invalid=invalid, oversize=oversize,
                                   optional_rate=OPTIONAL_RATE):
            out.write(line)
            out.write(b"\n")
            total += len(line)
            if len(line) <= MAX_EVENT_BYTES:
                small += len(line)
                small_lines += 1
    seconds = time.perf_counter() - started
    kinds = bad_line_kinds(events, seed, invalid, oversize)
    n_invalid = sum(1 for k in kinds.values() if k == "invalid")
    n_oversize = sum(1 for k in kinds.values() if k == "oversize")
    return Corpus(path, events, total, events - n_invalid - n_oversize, n_invalid, n_oversize,
                  small / small_lines if small_lines else 0.0, total / events if events else 0.0, seconds)


# --- running the job ---------------------------------------------------------------------------------------------

@dataclass
class JobRun:
    name: str
    wall_seconds: float
    cpu_seconds: float  # user + system of the job's process (and any child it waited for)
    peak_tree_rss: int  # bytes, the largest sum of RSS over the process tree psutil saw
    maxrss: int  # bytes, the kernel's peak RSS of the job's process (ru_maxrss)
    returncode: int
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # storage connector → files, records, bytes

    @property
    def peak_rss(self) -> int:
        return max(self.peak_tree_rss, self.maxrss)


def connectors(kind: str, folder: str, receiver_url: Optional[str] = None) -> list[dict[str, Any]]:
    """The connector config of a measurement: storage connectors select every type (no `events`), Avro, no codec."""
    def storage(cid: str) -> dict[str, Any]:
        return {"id": cid, "type": "filesystem", "path": os.path.join(folder, cid), "format": "avro"}

    if kind == "job":
        if not receiver_url:
            raise ValueError("the 'job' measurement needs a receiver URL")
        return [storage("store"), {"id": "partner", "type": "http", "endpoint": receiver_url, "token": TOKEN}]
    if kind == "storage1":
        return [storage("store")]
    if kind == "storage5":  # identical but for the folder: one shared lane (pipeline/lanes.py)
        return [storage(f"store{i}") for i in range(1, 6)]
    if kind == "storage5_lanes":  # a different file size limit each: five lanes, five encodings
        return [{**storage(f"store{i}"), "max_events_per_file": 15_001 - i} for i in range(1, 6)]
    raise ValueError(f"unknown job kind {kind!r}")


def job_command(corpus_path: str, connectors_path: str, dead_letter: str, metrics_out: str,
                python: str = sys.executable) -> list[str]:
    return [python, "-m", "pipeline", "--runner=DirectRunner", f"--source=file:{corpus_path}",
            f"--connectors={connectors_path}", f"--dead_letter={dead_letter}", f"--metrics_out={metrics_out}"]


def _tree_rss(process: psutil.Process, children: list[psutil.Process]) -> int:
    total = 0
    for p in [process, *children]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_measured(cmd: list[str], log_path: str, timeout: float = JOB_TIMEOUT_SECONDS,
                 interval: float = 0.05) -> tuple[float, float, int, int, int]:
    """Run `cmd` (cwd: the repo) → (wall s, cpu s, peak tree RSS, maxrss, returncode).

    The main thread blocks in wait4 (exact wall time, and the kernel's rusage of this child alone); a sampler
    thread polls the RSS of the process tree meanwhile.
    """
    with open(log_path, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    done = threading.Event()
    peak = [0]

    def sample() -> None:
        try:
            process = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        children: list[psutil.Process] = []
        tick = 0
        while not done.is_set():
            if tick % 10 == 0:
                try:
                    children = process.children(recursive=True)
                except psutil.NoSuchProcess:
                    return
            peak[0] = max(peak[0], _tree_rss(process, children))
            tick += 1
            done.wait(interval)

    def kill() -> None:
        log.error("job did not end within %.0f s: killing it (pid %d)", timeout, proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the job and nothing else
        except ProcessLookupError:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    watchdog = threading.Timer(timeout, kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        wall = time.perf_counter() - started
        watchdog.cancel()
        done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    return wall, usage.ru_utime + usage.ru_stime, peak[0], usage.ru_maxrss * 1024, proc.returncode


def _files_on_disk(folder: str) -> dict[str, int]:
    files = records = size = 0
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            files += 1
            size += os.path.getsize(path)
            if name.endswith(".avro"):
                with open(path, "rb") as handle:
                    records += sum(block.num_records for block in fastavro.block_reader(handle))
    return {"files": files, "records": records, "bytes": size}


def _tail(path: str, lines: int = 30) -> str:
    try:
        with open(path, "rb") as handle:
            return b"".join(handle.readlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return "(no log)"


def check_run(run: JobRun, config: list[dict[str, Any]], corpus: Corpus, expected_ids: set[str],
              receiver: Optional[Receiver], log_path: str) -> None:
    """Raise BenchmarkError unless the run delivered every valid event to every connector, and nothing else."""
    problems: list[str] = []
    if run.returncode != 0:
        raise BenchmarkError(f"{run.name}: the job exited with {run.returncode}; its log ends:\n{_tail(log_path)}")
    top = run.metrics.get("currents", {})
    for name, want in (("events_in", corpus.lines), ("events_valid", corpus.valid), ("invalid", corpus.invalid),
                       ("oversize", corpus.oversize)):
        if top.get(name, 0) != want:
            problems.append(f"currents.{name} = {top.get(name, 0)}, expected {want}")
    for connector in config:
        cid = connector["id"]
        values = run.metrics.get(f"connector.{cid}", {})
        if values.get("delivered", 0) != corpus.valid:
            problems.append(f"connector.{cid}.delivered = {values.get('delivered', 0)}, expected {corpus.valid}")
        dead = {k: v for k, v in values.items() if k.startswith("dead_letters.") and v}
        if dead:
            problems.append(f"connector.{cid} has dead letters: {dead}")
        if connector["type"] == "filesystem":
            disk = run.files[cid] = _files_on_disk(connector["path"])
            if disk["records"] != corpus.valid:
                problems.append(f"{cid}: {disk['records']} records in Avro files on disk, expected {corpus.valid}")
            if disk["files"] != values.get("files_written") or disk["bytes"] != values.get("bytes_written"):
                problems.append(f"{cid}: {disk['files']} files / {disk['bytes']} bytes on disk, metrics say "
                                f"{values.get('files_written')} / {values.get('bytes_written')}")
        elif receiver is not None:
            got = sum(receiver.events.values())
            missing = len(expected_ids - receiver.ids)
            unexpected = len(receiver.ids - expected_ids)
            if missing or unexpected:
                problems.append(f"{cid}: the receiver is missing {missing} valid event ids and got {unexpected} "
                                f"unexpected ones")
            if got != len(expected_ids):
                problems.append(f"{cid}: the receiver got {got} events for {len(expected_ids)} valid ids")
    if problems:
        raise BenchmarkError(f"{run.name}: wrong output:\n  " + "\n  ".join(problems))


def run_job(kind: str, corpus: Corpus, expected_ids: set[str], folder: str,
            prefix: tuple[str, ...] = ()) -> JobRun:
    """One checked run of the job for measurement `kind`, in a fresh folder that is removed afterwards.

    `prefix` goes before the job's command (a profiler: `py-spy record -o FILE --`); the job is checked the same.
    """
    work = tempfile.mkdtemp(prefix=f"{kind}-", dir=folder)
    receiving = Receiver(token=TOKEN) if kind == "job" else contextlib.nullcontext()
    try:
        with receiving as receiver:
            config = connectors(kind, os.path.join(work, "out"), receiver.url if receiver else None)
            config_path = os.path.join(work, "connectors.json")
            with open(config_path, "w", encoding="utf-8") as handle:
                json.dump({"connectors": config}, handle)
            metrics_path = os.path.join(work, "metrics.json")
            log_path = os.path.join(folder, f"{kind}.log")
            cmd = [*prefix, *job_command(corpus.path, config_path, os.path.join(work, "dead-letter"), metrics_path)]
            wall, cpu, tree_rss, maxrss, rc = run_measured(cmd, log_path)
            run = JobRun(kind, wall, cpu, tree_rss, maxrss, rc)
            if rc == 0:
                with open(metrics_path, "rb") as handle:
                    run.metrics = json.load(handle)
            check_run(run, config, corpus, expected_ids, receiver, log_path)
            return run
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure_startup(python: str = sys.executable) -> float:
    started = time.perf_counter()
    subprocess.run([python, "-c", "import pipeline.main"], cwd=ROOT, check=True)
    return time.perf_counter() - started


# --- the benchmark -----------------------------------------------------------------------------------------------

def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (every process), summed over CPUs."""
    t = psutil.cpu_times()
    return sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


def _own_cpu_seconds() -> float:
    """CPU seconds of this process and of every child it has reaped (the jobs, the start-up probes)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


@dataclass
class Results:
    events: int
    repeats_asked: int
    repeats_done: int
    budget_seconds: float
    corpus: dict[str, Any]
    seconds: dict[str, list[float]]
    cpu_seconds: dict[str, list[float]]
    peak_rss: dict[str, list[int]]
    bare: dict[str, Any]
    notes: list[str]
    runs: list[dict[str, Any]] = field(default_factory=list)  # every job run: round, wall, cpu, both RSS figures
    total_seconds: float = 0.0
    other_cpus_busy: float = 0.0  # average CPUs used by other processes on the machine while the benchmark ran


def run_benchmark(events: int, repeats: int, budget: float, folder: str,
                  progress: Callable[[str], None] = log.info) -> Results:
    started = time.perf_counter()
    busy0, own0 = _machine_busy_seconds(), _own_cpu_seconds()
    corpus = make_corpus(folder, events)
    progress(f"corpus: {corpus.lines} lines, {corpus.bytes / 1e6:.1f} MB, average line "
             f"{corpus.avg_line_bytes:.0f} B ({corpus.avg_line_bytes_all:.0f} B with the oversize lines), "
             f"generated in {corpus.generate_seconds:.1f} s")
    expected_ids = valid_ids(corpus.path)
    if len(expected_ids) != corpus.valid:
        raise BenchmarkError(f"the corpus has {len(expected_ids)} distinct valid ids, expected {corpus.valid}")
    seconds: dict[str, list[float]] = {m: [] for m in MEASUREMENTS}
    cpu: dict[str, list[float]] = {m: [] for m in JOBS}
    rss: dict[str, list[int]] = {m: [] for m in JOBS}
    notes: list[str] = []
    bare_stats: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []
    done = 0
    for round_no in range(1, repeats + 1):
        round_started = time.perf_counter()
        t = time.perf_counter()
        stats = bare_loop(corpus.path)
        seconds["bare"].append(time.perf_counter() - t)
        if (stats.valid, stats.invalid, stats.oversize) != (corpus.valid, corpus.invalid, corpus.oversize):
            raise BenchmarkError(f"bare loop: {stats.valid} valid / {stats.invalid} invalid / {stats.oversize} "
                                 f"oversize, expected {corpus.valid} / {corpus.invalid} / {corpus.oversize}")
        bare_stats = asdict(stats)
        seconds["startup"].append(measure_startup())
        for kind in JOBS:
            run = run_job(kind, corpus, expected_ids, folder)
            seconds[kind].append(run.wall_seconds)
            cpu[kind].append(run.cpu_seconds)
            rss[kind].append(run.peak_rss)
            runs.append({"kind": kind, "round": round_no, "wall_seconds": run.wall_seconds,
                         "cpu_seconds": run.cpu_seconds, "peak_tree_rss": run.peak_tree_rss, "maxrss": run.maxrss,
                         "files": run.files})
        done = round_no
        round_seconds = time.perf_counter() - round_started
        elapsed = time.perf_counter() - started
        progress(f"round {round_no}/{repeats} in {round_seconds:.1f} s: "
                 + ", ".join(f"{m} {seconds[m][-1]:.2f} s" for m in MEASUREMENTS))
        if round_no == 1 and budget > 0 and elapsed > budget:
            notes.append(f"one round took {round_seconds:.0f} s ({elapsed:.0f} s with the corpus): over the "
                         f"{budget:.0f} s budget even with a single repeat; N was not changed")
        if round_no < repeats and budget > 0 and elapsed + round_seconds > budget:
            notes.append(f"repeats reduced from {repeats} to {done}: another round (~{round_seconds:.0f} s) would "
                         f"end past the {budget:.0f} s budget ({elapsed:.0f} s used); N was not changed. "
                         f"Use --budget 0 to run every repeat.")
            progress(notes[-1])
            break
    if not corpus.line_size_in_target:
        notes.append(f"the generator's average line (oversize lines aside) is {corpus.avg_line_bytes:.0f} B, "
                     f"outside the {LINE_BYTES_TARGET[0]}-{LINE_BYTES_TARGET[1]} B target (not padded: reported as "
                     f"is)")
    corpus_info = asdict(corpus)
    corpus_info["seed"] = SEED
    total = time.perf_counter() - started
    others = max(0.0, (_machine_busy_seconds() - busy0) - (_own_cpu_seconds() - own0)) / total
    if others > 0.25:
        notes.append(f"other processes kept {others:.2f} CPUs busy on average during the benchmark: the machine was "
                     f"not quiet, so the times are pessimistic and noisy; rerun on an idle machine")
    return Results(events, repeats, done, budget, corpus_info, seconds, cpu, rss, bare_stats, notes, runs,
                   total, others)


# --- the report --------------------------------------------------------------------------------------------------

def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        "apache-beam": version("apache-beam"),
        "fastavro": version("fastavro"),
        "orjson": version("orjson"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": psutil.virtual_memory().total,
    }


def summarise(results: Results) -> dict[str, Any]:
    """The numbers of the report: per measurement seconds (median/min/max) and events/s, ratios, peak RSS."""
    n = results.events
    valid = results.corpus["valid"]
    sec = {m: _spread(v) for m, v in results.seconds.items() if v}
    startup = sec["startup"]["median"]
    rows: dict[str, Any] = {}
    for m, s in sec.items():
        row: dict[str, Any] = {"seconds": s}
        if m == "bare":
            row["events_per_second"] = valid / s["median"]
            row["events_per_second_best"] = valid / s["min"]
        elif m in JOBS:
            own = s["median"] - startup
            row["events_per_second"] = n / s["median"]
            row["events_per_second_best"] = n / s["min"]
            row["own_seconds"] = own
            row["own_events_per_second"] = n / own if own > 0 else None
            row["cpu_seconds"] = _spread(results.cpu_seconds[m])
            row["peak_rss_bytes"] = max(results.peak_rss[m])
        rows[m] = row
    bare_eps = rows["bare"]["events_per_second"]
    one, five, lanes = sec["storage1"]["median"], sec["storage5"]["median"], sec["storage5_lanes"]["median"]
    peak = max(results.peak_rss["job"])  # the target is the job's: 1 storage + 1 http connector
    peak_any = max(max(v) for v in results.peak_rss.values())
    ratios = {
        "job_vs_bare": rows["job"]["events_per_second"] / bare_eps,
        "job_vs_bare_own": (rows["job"]["own_events_per_second"] or 0) / bare_eps,
        "storage1_vs_bare": rows["storage1"]["events_per_second"] / bare_eps,
        "five_vs_one": five / one,
        "five_vs_one_own": (five - startup) / (one - startup) if one > startup else None,
        "five_lanes_vs_one": lanes / one,
        "five_lanes_vs_one_own": (lanes - startup) / (one - startup) if one > startup else None,
        "peak_rss_bytes": peak,
        "peak_rss_bytes_any_run": peak_any,
    }
    targets = {
        "job_vs_bare": {"target": f">= {TARGET_JOB_VS_BARE}", "met": ratios["job_vs_bare"] >= TARGET_JOB_VS_BARE},
        "five_vs_one": {"target": f"<= {TARGET_FIVE_VS_ONE}", "met": ratios["five_vs_one"] <= TARGET_FIVE_VS_ONE},
        "peak_rss_bytes": {"target": f"<= {TARGET_PEAK_RSS}", "met": peak <= TARGET_PEAK_RSS},
    }
    return {"measurements": rows, "ratios": ratios, "targets": targets}


def _fmt_s(s: dict[str, float]) -> str:
    return f"{s['median']:7.2f} [{s['min']:.2f}-{s['max']:.2f}]"


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def render(results: Results, summary: dict[str, Any], env: dict[str, Any], command: str) -> str:
    c = results.corpus
    rows = summary["measurements"]
    r = summary["ratios"]
    t = summary["targets"]
    lines = [
        f"beam-currents throughput: {results.events:,} events (seed {c['seed']}, {c['invalid']} invalid, "
        f"{c['oversize']} oversize: {c['valid']:,} valid), {c['bytes'] / 1e6:,.1f} MB",
        f"average line {c['avg_line_bytes']:.0f} B without the {c['oversize']} oversize lines "
        f"({c['avg_line_bytes_all']:.0f} B with them); target {LINE_BYTES_TARGET[0]}-{LINE_BYTES_TARGET[1]} B: "
        + ("within" if LINE_BYTES_TARGET[0] <= c["avg_line_bytes"] <= LINE_BYTES_TARGET[1]
           else "OUTSIDE (generator output as is, not padded)"),
        f"repeats: {results.repeats_done} of {results.repeats_asked}; seconds are median [min-max]; "
        f"events/s from the median (bare: valid events; job: all N lines)",
        "",
        f"{'measurement':<44} {'seconds':>24} {'events/s':>10} {'own s':>7} {'own ev/s':>10} {'cpu s':>7} "
        f"{'peak RSS':>10}",
    ]
    for m in MEASUREMENTS:
        row = rows.get(m)
        if row is None:
            continue
        eps = f"{row['events_per_second']:,.0f}" if "events_per_second" in row else "-"
        own = f"{row['own_seconds']:.2f}" if "own_seconds" in row else "-"
        own_eps = f"{row['own_events_per_second']:,.0f}" if row.get("own_events_per_second") else "-"
        cpu = f"{row['cpu_seconds']['median']:.2f}" if "cpu_seconds" in row else "-"
        peak = _mb(row["peak_rss_bytes"]) if "peak_rss_bytes" in row else "-"
        lines.append(f"{LABELS[m]:<44} {_fmt_s(row['seconds']):>24} {eps:>10} {own:>7} {own_eps:>10} {cpu:>7} "
                     f"{peak:>10}")

    def verdict(name: str) -> str:
        return "met" if t[name]["met"] else "MISSED"

    lines += [
        "",
        f"{'ratio':<58} {'value':>9}  target",
        f"{'job / bare (events/s, job wall time)':<58} {r['job_vs_bare']:>9.2f}  >= {TARGET_JOB_VS_BARE}  "
        f"{verdict('job_vs_bare')}",
        f"{'job / bare (job time without start-up)':<58} {r['job_vs_bare_own']:>9.2f}",
        f"{'1-storage job / bare (events/s, wall)':<58} {r['storage1_vs_bare']:>9.2f}",
        f"{'5-connector time / 1-connector time (storage only, wall)':<58} {r['five_vs_one']:>9.2f}  "
        f"<= {TARGET_FIVE_VS_ONE}  {verdict('five_vs_one')}",
        f"{'5-connector / 1-connector (without start-up)':<58} "
        + (f"{r['five_vs_one_own']:>9.2f}" if r["five_vs_one_own"] is not None else f"{'-':>9}"),
        f"{'5 connectors in 5 lanes / 1-connector (wall)':<58} {r['five_lanes_vs_one']:>9.2f}",
        f"{'5 connectors in 5 lanes / 1-connector (without start-up)':<58} "
        + (f"{r['five_lanes_vs_one_own']:>9.2f}" if r["five_lanes_vs_one_own"] is not None else f"{'-':>9}"),
        f"{'peak RSS of the job (1 storage + 1 http)':<58} {r['peak_rss_bytes'] / 2**30:>6.2f} GB  "
        f"<= {TARGET_PEAK_RSS / 2**30:.1f} GB  {verdict('peak_rss_bytes')}",
        f"{'peak RSS, largest of any job run':<58} {r['peak_rss_bytes_any_run'] / 2**30:>6.2f} GB",
        "",
        f"versions: python {env['python']}, apache-beam {env['apache-beam']}, fastavro {env['fastavro']}, "
        f"orjson {env['orjson']}",
        f"machine: {env['cpu_count']} CPUs ({env['cpus_usable']} usable), {env['cpu_model']}, "
        f"{env['memory_bytes'] / 2**30:.1f} GiB memory; {env['platform']}",
        f"benchmark wall time {results.total_seconds:.0f} s (corpus generated in {c['generate_seconds']:.1f} s); "
        f"other processes used {results.other_cpus_busy:.2f} CPUs on average meanwhile",
        f"command: {command}",
    ]
    written = {f["bytes"] for run in results.runs for f in run.get("files", {}).values()}
    bare_bytes = results.bare.get("avro_bytes")
    if written:
        lines.append(f"output: every storage connector wrote every valid event (checked) in "
                     f"{', '.join(f'{b:,}' for b in sorted(written))} bytes of Avro; the bare loop's fastavro "
                     f"containers hold {bare_bytes:,} (block sizes differ: 64 KiB in the job, 16 KB in fastavro)")
    lines += [f"note: {note}" for note in results.notes]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="corpus lines N (default 200000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats R of every measurement (default 3)")
    parser.add_argument("--budget", type=float, default=270.0,
                        help="seconds: drop the remaining rounds when the next would end later (default 270; 0: "
                             "never). N is never changed")
    parser.add_argument("--out", help="also write the report as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (corpus, job logs)")
    args = parser.parse_args(argv)
    if args.events < INVALID + OVERSIZE or args.repeats < 1:
        parser.error(f"--events must be at least {INVALID + OVERSIZE} and --repeats at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    command = "python -m benchmarks.throughput " + " ".join(argv if argv is not None else sys.argv[1:])
    folder = tempfile.mkdtemp(prefix="beam-currents-bench-")
    try:
        results = run_benchmark(args.events, args.repeats, args.budget, folder, progress=log.info)
    except BenchmarkError as exc:
        sys.stderr.write(f"benchmark FAILED: {exc}\n(temp folder kept: {folder})\n")
        return 1
    finally:
        if args.keep:
            log.info("temp folder kept: %s", folder)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    env = environment()
    summary = summarise(results)
    print(render(results, summary, env, command.strip()))
    if args.out:
        report = {"command": command.strip(), "environment": env, **asdict(results), **summary}
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, sort_keys=True)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
