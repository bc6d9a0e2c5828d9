"""Dead letters (`core.deadletters`) written as JSON lines under `--dead_letter`, one line per dropped record.

Files: `<dead_letter>/reason=<reason>/date=<YYYY-MM-DD-HH>/deadletters-<run token>-<random>.jsonl`.
"""
from __future__ import annotations

import os
import uuid
from typing import Any, Iterator, Optional

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from core.metrics import counter

MAX_LINES_PER_FILE = 10_000


class _WriteBundles(beam.DoFn):
    """Dead letters of a bundle → one file per (reason, hour), written when the bundle ends.

    No grouping step, no state: a dead letter can be born in a final flush after the watermark has passed the end
    of the global window, where a GroupByKey or stateful step would drop it as late. Dead letters are rare, so a
    file per bundle costs little; a retried bundle may write its letters twice (consumers dedupe on event_id).
    """

    def __init__(self, folder: str, run_token: int) -> None:
        self._folder = folder.rstrip("/")
        self._run_token = run_token

    def start_bundle(self) -> None:
        self._open: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def process(self, letter: dict[str, Any]) -> Iterator[str]:
        key = (letter["reason"], letter["at"][:13].replace("T", "-"))  # the hour of `at`: YYYY-MM-DD-HH
        group = self._open.setdefault(key, [])
        group.append(letter)
        if len(group) >= MAX_LINES_PER_FILE:
            yield self._write(*key, self._open.pop(key))

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for (reason, hour), letters in self._open.items():
            yield WindowedValue(self._write(reason, hour, letters), 0, [GlobalWindow()])
        self._open = {}

    def _write(self, reason: str, hour: str, letters: list[dict[str, Any]]) -> str:
        path = f"{self._folder}/reason={reason}/date={hour}/deadletters-{self._run_token}-{uuid.uuid4().hex[:16]}.jsonl"
        _write(path, b"".join(orjson.dumps(letter) + b"\n" for letter in letters))
        per_connector: dict[Optional[str], int] = {}
        for letter in letters:
            per_connector[letter["connector"]] = per_connector.get(letter["connector"], 0) + 1
        counter(None, f"dead_letters.{reason}").inc(len(letters))
        for connector_id, n in per_connector.items():
            if connector_id:
                counter(connector_id, f"dead_letters.{reason}").inc(n)
        return path


def _write(path: str, body: bytes) -> None:
    """Whole files only: a local file appears under its name when complete; object stores are atomic already."""
    if "://" not in path:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as handle:
            handle.write(body)
        os.replace(tmp, path)
        return
    with FileSystems.create(path, mime_type="application/x-ndjson") as handle:
        handle.write(body)


class WriteDeadLetters(beam.PTransform):
    """Dead-letter records → JSON-lines files per reason and hour; outputs the paths written."""

    def __init__(self, folder: str, run_token: int) -> None:
        super().__init__()
        self._folder = folder
        self._run_token = run_token

    def expand(self, letters: beam.PCollection) -> beam.PCollection:
        return letters | "Write" >> beam.ParDo(_WriteBundles(self._folder, self._run_token))
