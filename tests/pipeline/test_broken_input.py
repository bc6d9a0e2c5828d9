"""Broken input files through the real job (local runner): read whole, or said not to be.

One job reads a folder holding a truncated `.gz`, a corrupt `.bz2`, a plain file named `.gz`, a folder the glob
matches, a file with a UTF-8 byte-order mark, a file of blank, whitespace-only and CRLF lines, and a good file.
What could be read is delivered (a prefix of each broken archive, exactly the lines before the offset its dead
letter names); each file that could not be read whole is one `unreadable` dead letter with the file and the byte
offset; blank lines are counted, not dead letters. A line of 50 MB under the default --max_event_bytes is a bounded
oversize dead letter with its full size, and the job reading it does not hold it whole. A folder given as the
source is an unreadable dead letter. A run in which something could not be read exits 4 (EXIT_UNREADABLE); a run
with merely invalid records exits 0.
"""
from __future__ import annotations

import bz2
import collections
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from pipeline.main import EXIT_UNREADABLE, main, run
from tests.corpus import dead_letters, decode_file, local_objects

ROOT = Path(__file__).resolve().parents[2]
EVENT_TYPE = "test.BrokenInput"  # not in the catalogue: the generic schema keeps every field
BOM = b"\xef\xbb\xbf"
LINES = 2000


def _line(name: str, i: int) -> bytes:
    return json.dumps({"id": f"{name}-{i}", "event_type": EVENT_TYPE, "time": 1_790_000_000, "user_id": f"u{i}",
                       "n": i, "pad": "x" * (i % 50)}, separators=(",", ":")).encode()


def _lines(name: str, count: int = LINES) -> list[bytes]:
    return [_line(name, i) for i in range(count)]


def _body(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def _config(out: Path) -> str:
    return json.dumps({"connectors": [{"id": "lake", "type": "filesystem", "path": str(out)}]})


def _delivered(out: Path) -> collections.Counter:
    return collections.Counter(r["id"] for k, v in local_objects(str(out)).items() for r in decode_file(k, v)) \
        if out.exists() else collections.Counter()


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("broken")
    inputs = tmp / "in"
    inputs.mkdir()
    whole = gzip.compress(_body(_lines("truncated")))
    (inputs / "truncated.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    corrupt = bytearray(bz2.compress(_body(_lines("corrupt"))))
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 64] = b"\x00" * 64
    (inputs / "corrupt.jsonl.bz2").write_bytes(bytes(corrupt))
    (inputs / "plain.jsonl.gz").write_bytes(_body(_lines("plain", 10)))
    (inputs / "folder.jsonl").mkdir()  # a folder the glob matches
    (inputs / "folder.jsonl" / "inner.jsonl").write_bytes(_body(_lines("inner", 3)))
    (inputs / "bom.jsonl").write_bytes(BOM + _body(_lines("bom", 5)))
    blank_lines = [b"", b"   ", b"\t", b" \t \r", b"\r", b"\x0b\x0c"]
    mixed = []
    for i, line in enumerate(_lines("blank", 6)):
        mixed += [line + b"\r", blank_lines[i]]
    (inputs / "blank.jsonl").write_bytes(b"\n".join(mixed) + b"\r\n\n\n")
    (inputs / "good.jsonl").write_bytes(_body(_lines("good", 100)))
    out, dead, metrics = tmp / "out", tmp / "dead", tmp / "metrics.json"
    args = ["--runner=DirectRunner", f"--source=file:{inputs}/*", f"--connectors={_config(out)}",
            f"--dead_letter={dead}", f"--metrics_out={metrics}"]
    run(args)
    return {"inputs": inputs, "args": args, "letters": dead_letters(str(dead)), "delivered": _delivered(out),
            "metrics": json.loads(metrics.read_bytes()), "blank": blank_lines, "truncated_gz": whole}


def _unreadable(broken: dict[str, Any], name: str) -> dict[str, Any]:
    (letter,) = [d for d in broken["letters"] if d["reason"] == "unreadable" and d["file"].endswith(f"/{name}")]
    assert letter["file"] == str(broken["inputs"] / name)
    assert name in letter["error"] and letter["connector"] is None
    return letter


def _read_of(broken: dict[str, Any], name: str) -> int:
    """How many of a file's lines were delivered: always its first ones, each exactly once."""
    ids = {k: n for k, n in broken["delivered"].items() if k.startswith(f"{name}-")}
    assert set(ids.values()) <= {1}
    assert sorted(int(k.rsplit("-", 1)[1]) for k in ids) == list(range(len(ids)))
    return len(ids)


@pytest.mark.parametrize("name, stem", [("truncated.jsonl.gz", "truncated"), ("corrupt.jsonl.bz2", "corrupt")])
def test_a_broken_archive_delivers_the_lines_before_the_offset_its_unreadable_dead_letter_names(
        broken: dict[str, Any], name: str, stem: str) -> None:
    letter = _unreadable(broken, name)
    read = _read_of(broken, stem)
    assert read < LINES
    assert letter["offset"] == len(_body(_lines(stem, read))) if read else letter["offset"] == 0


def test_a_truncated_gzip_delivers_most_of_what_it_holds_not_nothing(broken: dict[str, Any]) -> None:
    assert _read_of(broken, "truncated") > LINES // 4  # half the compressed bytes hold about half the lines


def test_a_plain_file_named_gz_is_unreadable_at_byte_zero(broken: dict[str, Any]) -> None:
    assert _unreadable(broken, "plain.jsonl.gz")["offset"] == 0
    assert _read_of(broken, "plain") == 0


def test_a_folder_among_the_files_a_glob_matches_is_not_read_and_fails_nothing(broken: dict[str, Any]) -> None:
    """Beam's glob lists files only: the folder is neither read (a glob does not descend) nor an error."""
    assert not [d for d in broken["letters"] if d["file"].endswith("/folder.jsonl")]
    assert _read_of(broken, "inner") == 0


def test_a_folder_given_as_the_source_is_an_unreadable_dead_letter_and_the_run_exits_4(tmp_path: Path) -> None:
    folder = tmp_path / "events.jsonl"
    folder.mkdir()
    (folder / "inside.jsonl").write_bytes(_body(_lines("inside", 3)))
    with pytest.raises(SystemExit) as exit_info:
        main(["--runner=DirectRunner", f"--source=file:{folder}", f"--connectors={_config(tmp_path / 'out')}",
              f"--dead_letter={tmp_path / 'dead'}"])
    assert exit_info.value.code == EXIT_UNREADABLE
    (letter,) = dead_letters(str(tmp_path / "dead"))
    assert letter["reason"] == "unreadable" and letter["file"] == str(folder) and letter["offset"] == 0


def test_a_byte_order_mark_is_dropped_and_the_first_line_delivered(broken: dict[str, Any]) -> None:
    assert _read_of(broken, "bom") == 5


def test_blank_whitespace_and_crlf_lines_are_counted_not_dead_letters(broken: dict[str, Any]) -> None:
    assert _read_of(broken, "blank") == 6
    blank = len(broken["blank"]) + 2  # and the two empty lines at the end of the file
    assert broken["metrics"]["currents"]["blank_lines"] == blank


def test_a_good_file_beside_broken_ones_is_delivered_whole(broken: dict[str, Any]) -> None:
    assert _read_of(broken, "good") == 100


def test_every_line_read_is_an_event_and_every_unreadable_file_one_dead_letter(broken: dict[str, Any]) -> None:
    top = broken["metrics"]["currents"]
    assert {d["reason"] for d in broken["letters"]} == {"unreadable"}
    assert len(broken["letters"]) == 3 == top["unreadable"] == top["dead_letters.unreadable"]
    assert top["events_in"] == top["events_valid"] == sum(broken["delivered"].values())
    assert top.get("invalid", 0) == top.get("oversize", 0) == 0
    assert all(d["payload"] == "" and d["size"] == 0 for d in broken["letters"])


def test_a_run_that_could_not_read_everything_exits_non_zero(broken: dict[str, Any], tmp_path: Path) -> None:
    args = [a for a in broken["args"] if not a.startswith(("--dead_letter", "--metrics_out"))]
    args += [f"--dead_letter={tmp_path / 'dead'}", f"--metrics_out={tmp_path / 'metrics.json'}"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == EXIT_UNREADABLE


def test_a_run_that_read_everything_exits_zero_even_with_invalid_records(tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_bytes(_body(_lines("ok", 20) + [b"not json", b'{"id": 1}']))
    code: Optional[object] = 0
    try:
        main(["--runner=DirectRunner", f"--source=file:{source}", f"--connectors={_config(tmp_path / 'out')}",
              f"--dead_letter={tmp_path / 'dead'}"])
    except SystemExit as exc:
        code = exc.code
    assert code in (0, None)
    assert {d["reason"] for d in dead_letters(str(tmp_path / "dead"))} == {"invalid"}


# ---- a line of 50 MB -----------------------------------------------------------------------------------------------

HUGE = 50 * 1024 * 1024


def _write_huge(path: Path, size: int) -> int:
    """A file: a good line, one line of `size` bytes (a valid event with one huge string), a good line; written in
    pieces. Returns the huge line's length."""
    head = b'{"id":"huge-1","event_type":"' + EVENT_TYPE.encode() + b'","time":1790000000,"s":"'
    tail = b'"}'
    body = size - len(head) - len(tail)
    with open(path, "wb") as handle:
        handle.write(_line("around", 0) + b"\n" + head)
        piece = b"y" * (1 << 20)
        for _ in range(body // len(piece)):
            handle.write(piece)
        handle.write(b"y" * (body % len(piece)) + tail + b"\n" + _line("around", 1) + b"\n")
    return size


def _measured_job(args: list[str], log: Path, timeout: float = 120) -> tuple[int, int]:
    """`python -m pipeline ARGS` in a process of its own: (exit status, its peak resident memory in KiB)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
            return proc.returncode, usage.ru_maxrss
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"job did not finish in {timeout} s: {log.read_text()[-2000:]}")
        time.sleep(0.05)


def test_a_line_of_50_mb_is_a_bounded_oversize_dead_letter_with_its_full_size_never_held_whole(
        tmp_path: Path) -> None:
    runs = {}
    for name, size in (("small", 0), ("huge", HUGE)):
        folder = tmp_path / name
        folder.mkdir()
        source = folder / "events.jsonl"
        if size:
            _write_huge(source, size)
        else:
            source.write_bytes(_body([_line("around", 0), _line("around", 1)]))
        status, peak_kib = _measured_job(
            ["--runner=DirectRunner", f"--source=file:{source}", f"--connectors={_config(folder / 'out')}",
             f"--dead_letter={folder / 'dead'}", f"--metrics_out={folder / 'metrics.json'}"], folder / "log")
        assert status == 0, (folder / "log").read_text()[-3000:]
        runs[name] = {"peak": peak_kib, "letters": dead_letters(str(folder / "dead")),
                      "delivered": _delivered(folder / "out"),
                      "metrics": json.loads((folder / "metrics.json").read_bytes())}
    huge = runs["huge"]
    (letter,) = huge["letters"]
    assert letter["reason"] == "oversize" and letter["size"] == HUGE and letter["truncated"] is True
    assert letter["event_id"] == "huge-1" and letter["event_type"] == EVENT_TYPE
    assert 0 < len(letter["payload"].encode()) <= 4096
    assert letter["payload"].startswith('{"id":"huge-1"')
    assert huge["delivered"] == collections.Counter({"around-0": 1, "around-1": 1})
    top = huge["metrics"]["currents"]
    assert top["events_in"] == 3 and top["events_valid"] == 2 and top["oversize"] == 1
    # Holding the line whole (let alone a copy or two while splitting it) would add 50 MB or more.
    grown_mib = (huge["peak"] - runs["small"]["peak"]) / 1024
    assert grown_mib < 30, f"peak memory grew by {grown_mib:.0f} MiB reading a 50 MiB line"
