"""Every launch mistake is one `error:` line on stderr and exit code 2: no traceback, no 140-line usage.

Each case runs through pipeline.main.main, and a representative few as `python -m pipeline ...` in a process of
their own (with a timeout), as a user would: bad options
(runner, --max_event_bytes, a single dash, a positional argument, an unknown or misspelt option), config mistakes
given through --connectors (duplicate YAML keys, a billion-laughs file, deep nesting, booleans as numbers,
transforms of the required fields, keys too long for the store, bad prefix characters, a filesystem path that is a
file or `file://`, a typo inside credentials), an unwritable --dead_letter or --metrics_out, and a ${ENV} secret
that is not set on a local run.
Log lines (timestamped INFO/WARNING) may come before the error; nothing else may. A bad config is the one message
`error: invalid connector config:` with one indented line per problem, each naming the connector and the field.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from pipeline.main import main

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60  # a generous bound for a process that imports Beam
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING) ")

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
connectors:
  - id: lake
    type: filesystem
    path: /tmp/currents-launch-errors
    events: *i
"""


def _fs(tmp: Path, **fields: Any) -> dict[str, Any]:
    return {"id": "lake", "type": "filesystem", "path": str(tmp / "out"), **fields}


def _file(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _json_file(tmp: Path, name: str, *connectors: dict[str, Any]) -> str:
    return _file(tmp, name, json.dumps({"connectors": list(connectors)}))


def _conf(t: Path, *connectors: dict[str, Any]) -> list[str]:
    return ["--connectors=" + _json_file(t, "c.json", *connectors)]


def _conf_text(t: Path, name: str, text: str) -> list[str]:
    return ["--connectors=" + _file(t, name, text)]


DUPLICATE_KEYS = "connectors:\n  - id: lake\n    type: filesystem\n    path: /tmp/a\n    path: /tmp/b\n"
S3_LONG_PREFIX = {"id": "lake", "type": "s3", "bucket": "my-bucket", "prefix": "/".join(["p" * 100] * 10)}
CREDENTIALS_TYPO = {"id": "lake", "type": "s3", "bucket": "my-bucket",
                    "credentials": {"access_key_id": "AKIAEXAMPLE0001", "sesion_token": "x"}}
UNSET_SECRET = {"id": "hook", "type": "http", "endpoint": "http://127.0.0.1:9/x",
                "token": "${CURRENTS_LAUNCH_TEST_UNSET_TOKEN}"}

# name: (extra arguments, given the case's folder; what the error line must mention)
Case = Callable[[Path], list[str]]
CASES: dict[str, tuple[Case, str]] = {
    "bad runner": (lambda t: ["--runner=NoSuchRunner"], "--runner"),
    "max_event_bytes not a number": (lambda t: ["--max_event_bytes=abc"], "--max_event_bytes"),
    "max_event_bytes zero": (lambda t: ["--max_event_bytes=0"], "--max_event_bytes"),
    "single dash option": (lambda t: ["-source=x"], "-source"),
    "positional argument": (lambda t: ["events.jsonl"], "events.jsonl"),
    "unknown option": (lambda t: ["--conectors=x.yaml"], "--conectors"),
    "bad event_time": (lambda t: ["--event_time=sometimes"], "--event_time"),
    "no files match": (lambda t: [f"--source=file:{t}/nothing-*.jsonl"], "no files match"),
    "bad source kind": (lambda t: ["--source=ftp://somewhere"], "--source"),
    "duplicate yaml keys": (lambda t: _conf_text(t, "dup.yaml", DUPLICATE_KEYS), "path"),
    "billion laughs": (lambda t: _conf_text(t, "laughs.yaml", BILLION_LAUGHS), "alias"),
    "deep nesting in a file": (lambda t: _conf_text(t, "deep.json", "[" * 1000 + "]" * 1000), "nest"),
    "deep nesting inline": (lambda t: ["--connectors=" + "[" * 50_000 + "]" * 50_000], "nest"),
    "boolean as a number": (lambda t: _conf(t, _fs(t, max_events_per_file=True)), "max_events_per_file"),
    "transform of id": (lambda t: _conf(t, _fs(t, field_transforms={"id": "hash"})), "id"),
    "transform of time": (lambda t: _conf(t, _fs(t, field_transforms={"time": "remove"})), "time"),
    "transform of event_type": (lambda t: _conf(t, _fs(t, field_transforms={"event_type": "hash"})), "event_type"),
    "cluster id too long": (lambda t: _conf(t, _fs(t, cluster="c" * 300)), "cluster"),
    "s3 key over 1024 bytes": (lambda t: _conf(t, S3_LONG_PREFIX), "prefix"),
    "prefix with a backslash": (lambda t: _conf(t, _fs(t, prefix="a\\b")), "prefix"),
    "filesystem path is a file": (lambda t: _conf(t, _fs(t, path=_file(t, "f", ""))), "path"),
    "filesystem path file://": (lambda t: _conf(t, _fs(t, path="file://")), "path"),
    "typo inside credentials": (lambda t: _conf(t, CREDENTIALS_TYPO), "sesion_token"),
    "unwritable dead_letter": (lambda t: [f"--dead_letter={_file(t, 'plain', '')}/dead"], "--dead_letter"),
    "unwritable metrics_out": (lambda t: [f"--metrics_out={_file(t, 'plain2', '')}/sub/metrics.json"],
                               "--metrics_out"),
    "metrics_out is a folder": (lambda t: [f"--metrics_out={t}"], "--metrics_out"),
    "unset env secret": (lambda t: _conf(t, UNSET_SECRET), "CURRENTS_LAUNCH_TEST_UNSET_TOKEN"),
}


def _arguments(folder: Path, extra: list[str]) -> list[str]:
    """A launch that would run but for `extra`: a real source file, a valid connector, a dead-letter folder."""
    source = folder / "events.jsonl"
    source.write_text('{"id":"a","event_type":"x","time":1}\n')
    args = [f"--source=file:{source}", f"--connectors={_json_file(folder, 'default.json', _fs(folder))}",
            f"--dead_letter={folder / 'dead'}", "--runner=DirectRunner"]
    names = {a.split("=", 1)[0] for a in extra}
    return [a for a in args if a.split("=", 1)[0] not in names] + extra


def _written(folder: Path) -> list[str]:
    return sorted(str(p) for name in ("out", "dead") for p in (folder / name).rglob("*") if p.is_file())


def _check_one_error(name: str, stderr: str, code: object) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if not LOG_LINE.match(line)]
    assert errors and errors[0].startswith("error: "), stderr[-3000:]
    if errors[0] == "error: invalid connector config:":  # the config's problems, one indented line each
        assert len(errors) >= 2 and all(line.startswith("  ") and "connector" in line for line in errors[1:]), \
            stderr[-3000:]
    else:
        assert len(errors) == 1, stderr[-3000:]
    assert code == 2, stderr[-3000:]
    assert CASES[name][1].lower() in "\n".join(errors).lower(), errors


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_launch_mistake_is_one_error_message_and_exit_code_2(name: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Through pipeline.main.main, in this process: every case, cheaply."""
    args = _arguments(tmp_path, CASES[name][0](tmp_path))
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert time.monotonic() - started < 20  # the billion laughs included: refused before it is expanded
    _check_one_error(name, capsys.readouterr().err, exit_info.value.code)
    assert _written(tmp_path) == []  # refused before any work


# The same through `python -m pipeline` as a process of its own, as a user runs it: the process's whole stderr and
# its exit status. Each process imports Beam (a couple of CPU seconds), so a representative few.
IN_A_PROCESS = ("bad runner", "max_event_bytes not a number", "single dash option", "positional argument",
                "unknown option", "duplicate yaml keys", "billion laughs", "deep nesting in a file",
                "unset env secret")


@pytest.mark.parametrize("name", IN_A_PROCESS)
def test_python_m_pipeline_prints_one_error_message_and_exits_2(name: str, tmp_path: Path) -> None:
    args = _arguments(tmp_path, CASES[name][0](tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURRENTS_")}
    try:
        done = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"python -m pipeline did not refuse {name!r} within {TIMEOUT} s")
    _check_one_error(name, done.stderr, done.returncode)
    assert _written(tmp_path) == []


def test_help_shows_the_jobs_own_options_first_then_says_beams_follow() -> None:
    done = subprocess.run([sys.executable, "-m", "pipeline", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    out = done.stdout
    ours, beams = out.index("beam-currents options:"), out.index("Beam's own pipeline options follow")
    assert out.index("--source") < beams and out.index("--max_event_bytes") < beams
    assert ours < beams < out.index("--runner")
    assert "921600" in out[:beams]  # defaults shown


def test_a_job_endpoint_that_does_not_answer_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Submitting to a portable job server that is not there (port 9, discard, is closed here) within Beam's
    --job_server_timeout: one line naming the runner, not gRPC's traceback."""
    config = json.dumps({"connectors": [{"id": "a", "type": "filesystem", "path": str(tmp_path / "out")}]})
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--runner=PortableRunner", "--job_endpoint=127.0.0.1:9",
         "--environment_type=PROCESS", '--environment_config={"command":"/bin/true"}', "--job_server_timeout=5",
         "--source=generate:count=10", f"--connectors={config}", f"--dead_letter={tmp_path / 'dead'}"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        "error: --runner=PortableRunner: cannot submit the job: FutureTimeoutError"]
