"""Chunked line reading: however a file is cut into byte ranges, every line is read exactly once, in order."""
from __future__ import annotations

import gzip

from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.lines import BOM, chunked, ranges, read_range

LINES = st.lists(st.binary(min_size=0, max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
                 max_size=60)


@settings(max_examples=300, deadline=None)
@given(lines=LINES, range_bytes=st.integers(1, 200), crlf=st.booleans(), final_newline=st.booleans())
def test_ranges_of_any_size_read_every_line_exactly_once_in_order(tmp_path_factory, lines, range_bytes, crlf,  # noqa: ANN001
                                                                   final_newline) -> None:  # noqa: ANN001
    path = tmp_path_factory.mktemp("lines") / "events.jsonl"
    end = b"\r\n" if crlf else b"\n"
    body = end.join(lines) + (end if final_newline and lines else b"")
    path.write_bytes(body)
    read = [line for r in ranges(str(path), len(body), range_bytes) for line in read_range(*r)]
    if lines and lines[0].startswith(BOM):
        lines = [lines[0][len(BOM):], *lines[1:]]
    expected = [line for line in lines if line and not line.isspace()]  # blank lines are skipped (and counted)
    assert read == expected


def test_a_gzip_file_is_read_whole_as_one_range(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(b"a\nbb\n\nccc\n"))
    (whole,) = ranges(str(path), path.stat().st_size, range_bytes=2)
    assert whole[2] == -1 and list(read_range(*whole)) == [b"a", b"bb", b"ccc"]


def test_lines_are_grouped_in_chunks() -> None:
    assert [len(c) for c in chunked((b"x" for _ in range(2500)), 1000)] == [1000, 1000, 500]
