"""Where the job's time goes:
`python -m benchmarks.profile [--events N] [--job job|storage1|storage5|storage5_lanes] [--native]`.

Runs the benchmark's job (same corpus, connectors and receiver as `benchmarks.throughput`, and the same output
checks) under py-spy, which samples every thread of the job's process from outside it: FnApiRunner runs the DoFns
in-process, so the samples see them. The stacks are kept as collapsed text (`--raw FILE`; flamegraph.pl, inferno
or https://www.speedscope.app read it) and summarised:

* self time: the function at the top of the stack, per (function, file), % of all samples;
* inclusive time: samples in which the function is anywhere on the stack;
* where it goes: each sample put in one bucket (import/start-up, garbage collection, Beam coders, Beam runner,
  fastavro, the project's own modules...).

Without `--native` the Cython parts of Beam (coders, operations, DoFn runner) and fastavro's writer have no Python
frames: their time counts as self time of the Python function that called them. `--native` adds the C frames
(slower to sample, so the job runs slower under it: use its percentages, not its seconds).

py-spy is not a dependency of the project: `.venv/bin/pip install py-spy`.
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from benchmarks.bare import valid_ids
from benchmarks.throughput import JOBS, BenchmarkError, make_corpus, run_job

log = logging.getLogger("benchmarks.profile")

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
_PROCESS = re.compile(r'^process \d+:')
_PROJECT = ("pipeline/", "transforms/", "sinks/", "examples/", "benchmarks/")
_RUNTIME_FILE = re.compile(r"^(lib(python|c|m|pthread|dl|rt|z|ffi)[.\d-]*\.so|ld-linux.*|.*\.h|ceval\.c|"
                           r"Objects/.*|Python/.*)", re.IGNORECASE)



@dataclass(frozen=True)
class Frame:
    func: str
    file: str

    @property
    def key(self) -> str:
        return f"{self.func} ({self.file})"


_NO_STACK = Frame("(no Python stack: interpreter starting or exiting)", "-")


def parse_frame(text: str) -> Frame:
    match = _FRAME.match(text)
    if not match:
        return Frame(text, "?")
    file = match.group("file")
    for marker in ("site-packages/", "dist-packages/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return Frame(match.group("func"), file)


def load_collapsed(path: str) -> list[tuple[list[Frame], int]]:
    """py-spy's raw format: `frame;frame;...;leaf COUNT` per line, root first."""
    samples = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            # --subprocesses puts a `process PID:"command"` frame at the root: not a function, drop it
            frames = [parse_frame(f) for f in stack.split(";") if f and not _PROCESS.match(f)] or [_NO_STACK]
            samples.append((frames, int(count)))
    return samples


def _is_runtime(frame: Frame) -> bool:
    """CPython's and libc's own C frames (native mode): folded into the frame that called them."""
    return bool(_RUNTIME_FILE.match(frame.file)) or frame.func.startswith("0x")


def _is_gc(frame: Frame) -> bool:
    return frame.func.startswith(("gc_collect", "collect_with_callback", "collect_generations")) or (
        frame.func == "collect" and "gc" in frame.file)


def self_frame(stack: list[Frame]) -> Frame:
    """The frame the sample's time belongs to: the leaf, or (native mode) the nearest non-runtime frame above it;
    garbage collection stays itself, whoever triggered it."""
    for frame in reversed(stack):
        if _is_gc(frame):
            return Frame("garbage collection (gc_collect_main)", "libpython")
        if not _is_runtime(frame):
            return frame
    return stack[-1]


_HTTP = "HTTP client (requests/urllib3/http.client)"
_BUCKETS = (  # (substring of the top frame's file, bucket), first match wins; C files are native-mode frames
    ("fastavro", "fastavro (Avro encoding)"), ("_write.c", "fastavro (Avro encoding)"),
    ("_validation.c", "fastavro (Avro encoding)"), ("_schema.c", "fastavro (Avro encoding)"),
    ("orjson", "orjson"),
    ("apache_beam/coders", "Beam coders"), ("coder_impl", "Beam coders"), ("stream.c", "Beam coders"),
    ("pickle", "pickle (Beam coders' fallback)"),
    ("_message", "protobuf (Beam's in-memory data plane)"),
    ("google/protobuf", "protobuf (Beam's in-memory data plane)"),
    ("apache_beam/io", "Beam IO (ReadFromText, filesystems)"),
    ("apache_beam/metrics", "Beam metrics"), ("execution.c", "Beam metrics"), ("cells.c", "Beam metrics"),
    ("apache_beam", "Beam runner/worker"), ("operations.c", "Beam runner/worker"), ("common.c", "Beam runner/worker"),
    ("windowed_value", "Beam runner/worker"), ("opcounters", "Beam runner/worker"),
    ("statesampler", "Beam runner/worker"), ("counters.c", "Beam runner/worker"),
    ("requests", _HTTP), ("urllib3", _HTTP), ("http/", _HTTP), ("socket", _HTTP),
    ("threading.py", "threads waiting (threading)"), ("queue.py", "threads waiting (threading)"),
    ("json/", "stdlib json"), ("hashlib", "hashing"),
)


def bucket(stack: list[Frame]) -> str:
    """One coarse bucket per sample: where the time goes."""
    if stack == [_NO_STACK]:
        return "no Python stack (interpreter starting or exiting)"
    if any(_is_gc(f) for f in stack):
        return "garbage collection"
    if any(f.file.startswith("<frozen importlib") for f in stack):
        return "imports (start-up and lazy imports)"
    file = self_frame(stack).file
    if file.startswith(_PROJECT):
        parts = file.split("/")
        return f"project: {'/'.join(parts[:2]) if len(parts) > 2 else parts[0]}"
    for marker, name in _BUCKETS:
        if marker in file:
            return name
    return f"other: {file.split('/')[0]}"


def summarise(samples: Iterable[tuple[list[Frame], int]], top: int = 15) -> dict[str, Any]:
    samples = list(samples)
    total = sum(n for _, n in samples)
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    buckets: collections.Counter[str] = collections.Counter()
    for stack, n in samples:
        own[self_frame(stack).key] += n
        for key in {f.key for f in stack if not _is_runtime(f)}:
            inclusive[key] += n
        buckets[bucket(stack)] += n

    def rows(counter: collections.Counter[str], limit: Optional[int]) -> list[dict[str, Any]]:
        return [{"frame": key, "samples": n, "percent": 100.0 * n / total if total else 0.0}
                for key, n in counter.most_common(limit)]

    inclusive_project = collections.Counter({k: v for k, v in inclusive.items()
                                             if parse_frame(k).file.startswith(_PROJECT)})
    return {"samples": total, "self": rows(own, top), "inclusive": rows(inclusive, top),
            "inclusive_project": rows(inclusive_project, top), "buckets": rows(buckets, None)}


def render(summary: dict[str, Any]) -> str:
    lines = [f"{summary['samples']} samples"]
    for title, name in (("self time (top of stack)", "self"), ("inclusive time", "inclusive"),
                        ("inclusive time, project code only", "inclusive_project"),
                        ("where the time goes (one bucket per sample)", "buckets")):
        lines += ["", title, f"{'%':>6}  {'samples':>7}  frame"]
        lines += [f"{r['percent']:6.1f}  {r['samples']:7d}  {r['frame']}" for r in summary[name]]
    return "\n".join(lines)


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.access(found, os.X_OK):
        raise SystemExit("py-spy not found: `.venv/bin/pip install py-spy` (not a project dependency), or profile "
                         "with pyinstrument as benchmarks/README.md shows")
    return found


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="corpus lines (default 200000)")
    parser.add_argument("--job", choices=JOBS, default="job",
                        help="which of the benchmark's jobs (default: job = 1 storage + 1 http)")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second (default 100)")
    parser.add_argument("--native", action="store_true", help="sample C/Cython frames too (slower)")
    parser.add_argument("--raw", help="keep the collapsed stacks in this file")
    parser.add_argument("--top", type=int, default=15, help="rows per table (default 15)")
    parser.add_argument("--out", help="also write the summary as JSON to this file")
    parser.add_argument("--from-raw", dest="from_raw", help="only summarise an existing collapsed-stack file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.from_raw:
        summary = summarise(load_collapsed(args.from_raw), args.top)
    else:
        tool = py_spy()
        folder = tempfile.mkdtemp(prefix="beam-currents-profile-")
        try:
            corpus = make_corpus(folder, args.events)
            raw = args.raw or os.path.join(folder, "profile.raw")
            prefix = [tool, "record", "--rate", str(args.rate), "--format", "raw", "--output", raw, "--subprocesses"]
            if args.native:
                prefix.append("--native")
            log.info("profiling the %r job on %d events: %s -- python -m pipeline ...", args.job, args.events,
                     " ".join(prefix))
            run = run_job(args.job, corpus, valid_ids(corpus.path), folder, prefix=(*prefix, "--"))
            log.info("job under py-spy: %.1f s wall, output checked", run.wall_seconds)
            summary = summarise(load_collapsed(raw), args.top)
            summary.update({"job": args.job, "events": args.events, "native": args.native, "rate": args.rate,
                            "wall_seconds_under_profiler": run.wall_seconds})
        except BenchmarkError as exc:
            sys.stderr.write(f"profile FAILED: {exc}\n")
            return 1
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(render(summary))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
