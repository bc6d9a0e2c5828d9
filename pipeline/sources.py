"""`--source`: the one place where input plugs in.

Every source yields raw records: `bytes`, `(bytes, attributes)` where attributes is a dict of strings (the
dead-letter replay uses it to aim a record at the connector that dropped it), or Pub/Sub's `PubsubMessage` (data,
attributes, publish time as the element timestamp). Parsing and guards happen downstream, identically for every
source.
"""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Union

import apache_beam as beam
import orjson

from core.records import Replay
from transforms.generate import GenerateRecords
from transforms.lines import ReadLineChunks


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


@dataclass(frozen=True)
class PubSubSource:
    """A subscription, or a topic (Beam then creates a temporary subscription of its own)."""

    subscription: Optional[str] = None
    topic: Optional[str] = None
    timestamp_attribute: Optional[str] = None
    id_label: Optional[str] = None
    bounded = False


@dataclass(frozen=True)
class KafkaSource:
    bootstrap_servers: str
    topic: str
    consumer_config: tuple[tuple[str, str], ...] = ()
    expansion_service: Optional[str] = None
    bounded = False


SourceSpec = Union[FileSource, GenerateSource, DeadLetterSource, PubSubSource, KafkaSource]
_PUBSUB = re.compile(r"^projects/([a-z][-a-z0-9]{4,28}[a-z0-9]|[a-z0-9.:-]+)/(subscriptions|topics)/"
                     r"([A-Za-z][-A-Za-z0-9_.~+%]{2,254})$")
_KAFKA = re.compile(r"^((?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):\d{1,5}(?:,(?:[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):\d{1,5})*)"
                    r"/([A-Za-z0-9._-]{1,249})$")
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
    if kind == "pubsub":
        match = _PUBSUB.match(rest)
        if not match:
            raise ValueError(f"--source={spec!r}: expected pubsub:projects/PROJECT/subscriptions/NAME "
                             "or pubsub:projects/PROJECT/topics/NAME")
        return PubSubSource(subscription=rest) if match.group(2) == "subscriptions" else PubSubSource(topic=rest)
    if kind == "kafka":
        match = _KAFKA.match(rest)
        if not match:
            raise ValueError(f"--source={spec!r}: expected kafka:HOST:PORT[,HOST:PORT...]/TOPIC")
        return KafkaSource(bootstrap_servers=match.group(1), topic=match.group(2))
    raise ValueError(f"--source={spec!r}: unknown kind {kind!r}; expected file, generate, deadletter, pubsub or kafka")


def replay_record(line: Any) -> Any:
    """A dead-letter line back to the record it dropped, for the connector that dropped it; a line that is not a
    dead letter (or a ReadProblem from the reader) is passed on as is, and parse dead-letters it again."""
    if type(line) is not bytes:
        return line
    try:
        letter = orjson.loads(line)
        payload = letter["payload"]
        data = base64.b64decode(payload) if letter.get("payload_encoding") == "base64" else payload.encode("utf-8")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        return line
    connector = letter.get("connector")
    return Replay(data, connector) if isinstance(connector, str) and connector else data


class ReadSource(beam.PTransform):
    """Raw records from `--source`."""

    def __init__(self, spec: SourceSpec, max_event_bytes: Optional[int] = None) -> None:
        super().__init__()
        self._spec = spec
        self._max = max_event_bytes

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        spec = self._spec
        if isinstance(spec, FileSource):
            return pbegin | "ReadLines" >> ReadLineChunks(spec.glob, max_line_bytes=self._max)
        if isinstance(spec, DeadLetterSource):
            # A letter is its record escaped as JSON (or base64) with a few fields around it: room for that.
            letter_bytes = None if self._max is None else 8 * self._max + 64 * 1024
            return (pbegin
                    | "ReadDeadLetters" >> ReadLineChunks(spec.glob, max_line_bytes=letter_bytes)
                    | "ToRecords" >> beam.Map(lambda lines: [replay_record(line) for line in lines]))
        if isinstance(spec, GenerateSource):
            if spec.rate is None:
                return pbegin | "Generate" >> GenerateRecords(
                    count=spec.count, seed=spec.seed, invalid=spec.invalid, oversize=spec.oversize)
            return pbegin | "GenerateAtRate" >> _GenerateAtRate(spec)
        if isinstance(spec, PubSubSource):
            # PubsubMessage elements (data, attributes; the publish time as timestamp) go to parse as they are.
            return pbegin | "ReadPubSub" >> beam.io.ReadFromPubSub(**pubsub_read_args(spec))
        if isinstance(spec, KafkaSource):
            from apache_beam.io.kafka import ReadFromKafka

            return (pbegin
                    | "ReadKafka" >> ReadFromKafka(**kafka_read_args(spec))
                    | "Values" >> beam.Map(lambda record: record[1] or b""))  # a null value: an invalid record
        raise TypeError(f"unsupported source {spec!r}")


def pubsub_read_args(spec: PubSubSource) -> dict[str, Any]:
    """The arguments of ReadFromPubSub: attributes always (an `event_type` attribute is honoured)."""
    args: dict[str, Any] = {"subscription": spec.subscription, "topic": spec.topic, "with_attributes": True}
    if spec.timestamp_attribute:
        args["timestamp_attribute"] = spec.timestamp_attribute
    if spec.id_label:
        args["id_label"] = spec.id_label
    return args


def kafka_read_args(spec: KafkaSource) -> dict[str, Any]:
    """The arguments of ReadFromKafka: bytes in, the record's own timestamp as publish time."""
    from apache_beam.io.kafka import ReadFromKafka

    config = {"bootstrap.servers": spec.bootstrap_servers, "auto.offset.reset": "latest", **dict(spec.consumer_config)}
    args: dict[str, Any] = {"consumer_config": config, "topics": [spec.topic],
                            "timestamp_policy": ReadFromKafka.create_time_policy}
    if spec.expansion_service:
        args["expansion_service"] = spec.expansion_service
    return args


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

