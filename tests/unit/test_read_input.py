"""Input files are read whole or said not to be: a line over the limit is never held whole, a truncated or corrupt
archive, a file that is not what its name says, a folder or a vanished file each end in a ReadProblem naming the
file and the byte offset; a UTF-8 byte-order mark is dropped."""
from __future__ import annotations

import bz2
import gzip
from pathlib import Path
from typing import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.lines import BOM, OVERSIZE, PREFIX_BYTES, UNREADABLE, ReadProblem, ranges, read_range, split_lines


def _read(path: Path, max_bytes: int | None = None, range_bytes: int = 1 << 26) -> list:
    return [line for r in ranges(str(path), path.stat().st_size if path.is_file() else 0, range_bytes)
            for line in read_range(*r, max_bytes=max_bytes)]


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b),
                      max_size=30),
       block=st.integers(1, 70), limit=st.integers(1, 50))
def test_every_line_comes_out_whole_or_as_an_oversize_problem_with_its_exact_size(lines: list[bytes], block: int,
                                                                                  limit: int) -> None:
    body = b"\n".join(lines)
    if body.startswith(BOM):
        return
    blocks = [body[i:i + block] for i in range(0, len(body), block)]
    out = [line for _, item in split_lines(iter(blocks), "f", 0, None, limit)
           for line in (item if isinstance(item, list) else [item])]
    assert len(out) == len(lines)
    for original, got in zip(lines, out):
        if isinstance(got, ReadProblem):
            assert got.reason == OVERSIZE and got.size == len(original) > limit
            assert got.prefix == original[:PREFIX_BYTES]
        else:
            assert got == original


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.binary(min_size=0, max_size=20).filter(lambda b: b"\n" not in b and b"\r" not in b),
                      max_size=30), block=st.integers(1, 30), start=st.integers(0, 40), crlf=st.booleans())
def test_blocks_cut_anywhere_give_the_lines_that_start_in_the_range_without_their_line_ends(
        lines: list[bytes], block: int, start: int, crlf: bool) -> None:
    end = b"\r\n" if crlf else b"\n"
    body = b"".join(line + end for line in lines)
    if body.startswith(BOM):
        return
    starts, at = [], 0
    for line in lines:
        starts.append(at)
        at += len(line) + len(end)
    stop = start + 25
    stream = body[start - 1:] if start > 0 else body
    blocks = [stream[i:i + block] for i in range(0, len(stream), block)]
    out = [line for _, item in split_lines(iter(blocks), "f", start, stop, None) for line in item]
    assert out == [line for line, first in zip(lines, starts) if start <= first < stop]


def test_a_line_of_a_gigabyte_is_never_held_whole() -> None:
    """1 GiB of one line in 1 MiB blocks: the splitter keeps at most a prefix of it."""
    block = b"x" * (1 << 20)

    def blocks() -> Iterator[bytes]:
        yield b'{"id":"a"}\n'
        for _ in range(1024):
            yield block
        yield b'\n{"id":"b"}'

    out = [line for _, item in split_lines(blocks(), "big.jsonl", 0, None, 921_600)
           for line in (item if isinstance(item, list) else [item])]
    assert out[0] == b'{"id":"a"}' and out[2] == b'{"id":"b"}'
    assert isinstance(out[1], ReadProblem) and out[1].size == 1 << 30 and out[1].offset == 11
    assert len(out[1].prefix) == PREFIX_BYTES


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(BOM + b'{"id":"a"}\n{"id":"b"}\n')
    assert _read(path) == [b'{"id":"a"}', b'{"id":"b"}']


def test_blank_and_whitespace_only_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b'a\n\n  \n\t\r\nb\r\n\n')
    assert _read(path) == [b"a", b"b"]


def test_a_truncated_gzip_gives_its_lines_then_an_unreadable_problem_at_the_offset_reached(tmp_path: Path) -> None:
    lines = [b'{"id":"%d","event_type":"x","time":1}' % i for i in range(2000)]
    whole = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    out = _read(path)
    problem = out[-1]
    assert isinstance(problem, ReadProblem) and problem.reason == UNREADABLE and problem.path == str(path)
    assert out[:-1] == lines[: len(out) - 1]
    assert problem.offset == sum(len(line) + 1 for line in out[:-1])  # the first byte not read
    assert str(path) in problem.error


def test_a_corrupt_bz2_is_an_unreadable_problem(tmp_path: Path) -> None:
    data = bytearray(bz2.compress(b"a\nb\n" * 1000))
    data[40:60] = b"\x00" * 20
    path = tmp_path / "events.jsonl.bz2"
    path.write_bytes(bytes(data))
    assert [p.reason for p in _read(path) if isinstance(p, ReadProblem)] == [UNREADABLE]


def test_a_plain_file_named_gz_is_unreadable_at_byte_zero(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl.gz"
    path.write_bytes(b'{"id":"a"}\n')
    (problem,) = _read(path)
    assert isinstance(problem, ReadProblem) and problem.reason == UNREADABLE and problem.offset == 0


def test_a_folder_or_a_vanished_file_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    folder = tmp_path / "sub"
    folder.mkdir()
    for target in (folder, tmp_path / "gone.jsonl"):
        (problem,) = list(read_range(str(target), 0, 10))
        assert isinstance(problem, ReadProblem) and problem.reason == UNREADABLE and str(target) in problem.error
