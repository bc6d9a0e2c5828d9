"""Read JSON-lines files as chunks of lines: one element per thousand lines instead of one per line.

Beam's text source pays several microseconds of per-element work for every line, more than parsing the line costs.
This reader splits uncompressed files into byte ranges (so a large file is still read in parallel), reshuffles the
ranges across workers, and splits each range's lines out of fixed-size blocks, emitting lists of lines that the
parse and route steps handle in one call. Compressed files are read whole, as they cannot be split.

A line belongs to the range in which it starts, as in Beam's text source: a range that does not start at 0 skips
the partial line it begins in, and reads past its end to finish its last line.

Input is read whole or said not to be. A line longer than the event limit is never held whole: parse gets its size
and first bytes. gzip and bzip2 are decoded by Python's own modules, which raise on a truncated or corrupt archive
where Beam's reader stops quietly. A file that cannot be opened or decoded ends its range with a `ReadProblem` (an
`unreadable` dead letter naming the file and the offset reached). A UTF-8 byte-order mark is dropped; blank and
whitespace-only lines are skipped and counted (`blank_lines`).
"""
from __future__ import annotations

import bz2
import gzip
from typing import BinaryIO, Iterable, Iterator, NamedTuple, Optional, Union

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from core.metrics import counter

LINES_PER_CHUNK = 1000
BYTES_PER_RANGE = 64 * 1024 * 1024
BLOCK_BYTES = 1024 * 1024  # lines are split out of blocks of this size
PREFIX_BYTES = 4096  # kept of a line over the limit, for its dead letter
BOM = b"\xef\xbb\xbf"
OVERSIZE = "oversize"
UNREADABLE = "unreadable"

Range = tuple[str, int, int]  # (path, start, end) in bytes; end < 0: the whole (compressed) file


class ReadProblem(NamedTuple):
    """What a reader hands to parse instead of a line: a line too long to hold, or input that could not be read.
    Parse turns it into a dead letter (`oversize` or `unreadable`) naming the file and the byte offset."""

    reason: str  # OVERSIZE or UNREADABLE
    error: str
    path: str
    offset: int  # where the line, or the part that could not be read, starts (uncompressed bytes)
    size: int = 0  # an oversize line's full size in bytes
    prefix: bytes = b""  # an oversize line's first PREFIX_BYTES bytes


Line = Union[bytes, ReadProblem]
_NATIVE = {"gz": gzip.GzipFile, "gzip": gzip.GzipFile, "bz2": bz2.BZ2File}  # these raise on truncation


def ranges(path: str, size: int, range_bytes: int = BYTES_PER_RANGE) -> Iterator[Range]:
    if CompressionTypes.detect_compression_type(path) != CompressionTypes.UNCOMPRESSED:
        yield path, 0, -1
        return
    for start in range(0, max(size, 1), range_bytes):
        yield path, start, min(start + range_bytes, size)


def _without_cr(lines: list[bytes]) -> list[bytes]:
    """CRLF line ends: the `\r` goes too."""
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def split_lines(blocks: Iterable[bytes], path: str, start: int, end: Optional[int],
                max_bytes: Optional[int]) -> Iterator[tuple[int, Union[list[bytes], ReadProblem]]]:
    """The lines that start in [start, end) of the byte stream `blocks`, a list per block, each with the offset
    where what it holds ends; a line over `max_bytes` comes alone as a ReadProblem with its size and first bytes,
    and is never held whole, whatever its length.

    The stream begins at `start`, or at `start - 1` for a range that does not begin the file: the partial line
    there is another range's."""
    skipping = start > 0  # the rest of a line that began before this range
    pos = start - 1 if start > 0 else 0  # offset of the first byte not in a line yet (the tail's first byte)
    tail = b""
    over: Optional[tuple[int, int, bytes]] = None  # (offset, size so far, prefix) of a line over the limit
    first = start == 0
    for block in blocks:
        if first:
            first = False
            if block.startswith(BOM):
                block, pos = block[len(BOM):], pos + len(BOM)
        if over is not None or skipping:
            cut = block.find(b"\n")
            if over is not None:
                taken = len(block) if cut < 0 else cut
                prefix = over[2] if len(over[2]) >= PREFIX_BYTES else over[2] + block[:min(taken, PREFIX_BYTES -
                                                                                              len(over[2]))]
                over = (over[0], over[1] + taken, prefix)
            if cut < 0:
                pos += len(block)
                continue
            pos += cut + 1
            block = block[cut + 1:]
            skipping = False
            if over is not None:
                yield pos, ReadProblem(OVERSIZE, f"line of {over[1]} bytes is over the {max_bytes}-byte limit",
                                       path, over[0], over[1], over[2])
                over = None
            if end is not None and pos >= end:
                return
        lines = block.split(b"\n")  # the block is split as it is: no copy of it joined to the last one's tail
        before = len(tail)
        crlf = b"\r" in block or tail.endswith(b"\r")
        if tail:
            lines[0] = tail + lines[0]
        tail = lines.pop()
        consumed = before + len(block) - len(tail)
        if end is not None and pos + consumed >= end:  # the range ends in this block: the lines that start in it
            ours = []
            for line in lines:
                if pos >= end:
                    break
                ours.append(line)
                pos += len(line) + 1
            if ours:
                yield pos, _without_cr(ours) if crlf else ours
            return
        pos += consumed
        if lines:
            yield pos, _without_cr(lines) if crlf else lines
        if max_bytes is not None and len(tail) > max_bytes:
            over, tail = (pos, len(tail), tail[:PREFIX_BYTES]), b""
            pos += over[1]
    if over is not None:
        yield pos, ReadProblem(OVERSIZE, f"line of {over[1]} bytes is over the {max_bytes}-byte limit", path,
                               over[0], over[1], over[2])
    elif tail and (end is None or pos < end):
        yield pos + len(tail), _without_cr([tail])


def _open(path: str, compressed: bool) -> BinaryIO:
    if not compressed:
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    native = _NATIVE.get(path.rsplit(".", 1)[-1].lower())
    if native is None:  # zstd, deflate, lzma: Beam's own reader
        return FileSystems.open(path, compression_type=CompressionTypes.AUTO)
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    if native is gzip.GzipFile:
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]


def read_chunks(path: str, start: int, end: int, max_bytes: Optional[int] = None,
                lines_per_chunk: int = LINES_PER_CHUNK) -> Iterator[list[Line]]:
    """The lines that start in [start, end) of an uncompressed file, or every line of a compressed one (end < 0),
    without line endings, in lists of at most `lines_per_chunk`; blank lines are skipped and counted. What cannot
    be read (a file that cannot be opened, a truncated or corrupt archive) ends the range with a ReadProblem at the
    offset reached."""
    reached = start  # where the lines read so far end: what could not be read starts here
    blank = 0
    try:
        with _open(path, compressed=end < 0) as handle:
            if start > 0:
                handle.seek(start - 1)
            # A native archive is read as it decodes (read1), so a truncated one still gives every line before
            # the damage: read() would drop the whole last block with the error.
            read = handle.read1 if isinstance(handle, (gzip.GzipFile, bz2.BZ2File)) else handle.read
            blocks = iter(lambda: read(BLOCK_BYTES), b"")
            for reached, lines in split_lines(blocks, path, start, None if end < 0 else end,  # noqa: B007 - read
                                              max_bytes):  # by the except clause: where reading stopped
                if type(lines) is not list:
                    yield [lines]  # type: ignore[list-item]
                    continue
                kept = [line for line in lines if line and not line.isspace()]
                blank += len(lines) - len(kept)
                for at in range(0, len(kept), lines_per_chunk):
                    yield kept[at:at + lines_per_chunk]  # type: ignore[misc]
    except Exception as exc:  # noqa: BLE001 - a reader's error is this file's problem, never the bundle's
        detail = " ".join(str(exc).split())[:500]
        yield [ReadProblem(UNREADABLE, f"cannot read {path} at byte {reached}: {type(exc).__name__}: {detail}",
                           path, reached)]
    finally:
        if blank:
            counter(None, "blank_lines").inc(blank)


def read_range(path: str, start: int, end: int, max_bytes: Optional[int] = None) -> Iterator[Line]:
    """`read_chunks`, line by line."""
    for chunk in read_chunks(path, start, end, max_bytes):
        yield from chunk


def chunked(lines: Iterable[Line], size: int = LINES_PER_CHUNK) -> Iterator[list[Line]]:
    chunk: list[Line] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class ReadLineChunks(beam.PTransform):
    """A file glob → lists of lines (bytes, without line endings) and ReadProblems."""

    def __init__(self, glob: str, lines_per_chunk: int = LINES_PER_CHUNK, range_bytes: int = BYTES_PER_RANGE,
                 max_line_bytes: Optional[int] = None) -> None:
        super().__init__()
        self._glob = glob
        self._lines = lines_per_chunk
        self._range_bytes = range_bytes
        self._max = max_line_bytes

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        from apache_beam.io.fileio import MatchFiles

        range_bytes, lines, limit = self._range_bytes, self._lines, self._max
        return (pbegin
                | "Match" >> MatchFiles(self._glob)
                | "Split" >> beam.FlatMap(lambda m: ranges(m.path, m.size_in_bytes, range_bytes))
                | "Spread" >> beam.Reshuffle()
                | "Read" >> beam.FlatMap(lambda r: read_chunks(r[0], r[1], r[2], limit, lines)))
