"""`--source`: the one place where input plugs in.

Every source yields raw records: `bytes`, or `(bytes, attributes)` where attributes is a dict of strings (Pub/Sub
attributes; the dead-letter replay uses it to aim a record at the connector that dropped it). Parsing and guards
happen downstream, identically for every source.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Iterator, Optional, Union

import apache_beam as beam
import orjson
from apache_beam.coders import BytesCoder
from apache_beam.io import ReadFromText

from transforms.generate import GenerateRecords
from transforms.parse import ATTR_CONNECTOR


@dataclass(frozen=True)
class FileSource:
    glob: str
    bounded = True


@dataclass(frozen=True)
class GenerateSource:
    count: int
    seed: int = 0
    rate: Optional[float] = None
    invalid: int = 0
    oversize: int = 0

    @property
    def bounded(self) -> bool:
        return self.rate is None


@dataclass(frozen=True)
class DeadLetterSource:
    glob: str
    bounded = True


SourceSpec = Union[FileSource, GenerateSource, DeadLetterSource]
_GENERATE_KEYS = {"count": int, "seed": int, "rate": float, "invalid": int, "oversize": int}


def _generate(args: str) -> GenerateSource:
    values: dict[str, float] = {}
    for part in filter(None, args.split(",")):
        name, sep, raw = part.partition("=")
        if not sep or name not in _GENERATE_KEYS:
            raise ValueError(f"--source=generate: unknown or malformed parameter {part!r}; "
                             f"use count=N[,rate=R][,seed=S][,invalid=N][,oversize=N]")
        try:
            values[name] = _GENERATE_KEYS[name](raw)
        except ValueError:
            raise ValueError(f"--source=generate: {name} must be a number, got {raw!r}") from None
    if "count" not in values or values["count"] < 0:
        raise ValueError("--source=generate: count=N (N >= 0) is required")
    if "rate" in values and not 0 < values["rate"] < float("inf"):
        raise ValueError("--source=generate: rate must be > 0 events per second")
    if values.get("invalid", 0) < 0 or values.get("oversize", 0) < 0:
        raise ValueError("--source=generate: invalid and oversize must be >= 0")
    if values.get("invalid", 0) + values.get("oversize", 0) > values["count"]:
        raise ValueError("--source=generate: invalid + oversize cannot exceed count")
    return GenerateSource(**values)  # type: ignore[arg-type]


def parse_source(spec: Optional[str]) -> SourceSpec:
    """Parse `--source`, raising ValueError with a message that names the option and the accepted forms."""
    if not spec:
        raise ValueError("--source is required: file:GLOB | generate:count=N[,rate=R][,seed=S] | deadletter:GLOB "
                         "| pubsub:projects/P/subscriptions/S | kafka:BOOTSTRAP/TOPIC")
    kind, sep, rest = spec.partition(":")
    if not sep:
        raise ValueError(f"--source={spec!r}: expected KIND:ARGS, e.g. file:events/*.jsonl")
    if kind == "file":
        if not rest:
            raise ValueError("--source=file: needs a glob, e.g. file:events/*.jsonl.gz")
        return FileSource(rest)
    if kind == "deadletter":
        if not rest:
            raise ValueError("--source=deadletter: needs a glob, e.g. deadletter:out/dead-letter/**/*.jsonl")
        return DeadLetterSource(rest)
    if kind == "generate":
        return _generate(rest)
    if kind in ("pubsub", "kafka"):
        raise ValueError(f"--source={spec!r}: {kind} sources are not available in this version yet; "
                         "use file:, generate: or deadletter:")
    raise ValueError(f"--source={spec!r}: unknown kind {kind!r}; expected file, generate or deadletter")


def replay_record(line: bytes) -> Union[bytes, tuple[bytes, dict[str, str]]]:
    """A dead-letter line back to the record it dropped; a line that is not a dead letter is passed on as is."""
    try:
        letter = orjson.loads(line)
        payload = letter["payload"]
        data = base64.b64decode(payload) if letter.get("payload_encoding") == "base64" else payload.encode("utf-8")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        return line  # not a dead letter: parse will dead-letter it again, with this line as payload
    connector = letter.get("connector")
    return (data, {ATTR_CONNECTOR: connector}) if connector else data


class ReadSource(beam.PTransform):
    """Raw records from `--source`."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__()
        self._spec = spec

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        spec = self._spec
        if isinstance(spec, FileSource):
            return pbegin | "ReadLines" >> ReadFromText(spec.glob, coder=BytesCoder())
        if isinstance(spec, DeadLetterSource):
            return (pbegin
                    | "ReadDeadLetters" >> ReadFromText(spec.glob, coder=BytesCoder())
                    | "ToRecords" >> beam.Map(replay_record))
        if isinstance(spec, GenerateSource):
            if spec.rate is None:
                return pbegin | "Generate" >> GenerateRecords(
                    count=spec.count, seed=spec.seed, invalid=spec.invalid, oversize=spec.oversize)
            return pbegin | "GenerateAtRate" >> _GenerateAtRate(spec)
        raise TypeError(f"unsupported source {spec!r}")


class _GenerateAtRate(beam.PTransform):
    """An unbounded generator: `rate` events a second from launch until `count` events are out."""

    def __init__(self, spec: GenerateSource) -> None:
        super().__init__()
        self._spec = spec

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        import time

        from apache_beam.transforms.periodicsequence import PeriodicImpulse

        from transforms.generate import generate_lines

        spec = self._spec
        per_tick = max(1, int(round(spec.rate or 1)))
        ticks = -(-spec.count // per_tick)
        start = time.time()

        def lines(tick_time: float) -> Iterator[bytes]:
            tick = int(round(float(tick_time) - start))
            first = tick * per_tick
            wanted = min(per_tick, spec.count - first)
            if wanted > 0:
                yield from generate_lines(wanted, seed=spec.seed, start=first)

        return (pbegin
                | "Ticks" >> PeriodicImpulse(start_timestamp=start, stop_timestamp=start + ticks, fire_interval=1.0)
                | "Lines" >> beam.FlatMap(lines))

