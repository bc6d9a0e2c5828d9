"""The keyed buffer: values held per key until a policy releases them. The one place where the job forks on
`streaming`.

`Hold(policies, streaming=...)` takes `(key, value)` pairs and gives each policy's releases, by its name. A policy
(`HoldPolicy`) says what to keep and when to let it go: the batching policy cuts a lane's chunks into batches
(transforms/batch.py), the parking policy holds what a failing destination could not take and retries it
(sinks/parking.py). The buffer runs a policy the same way in both modes:

- **bounded** (batch mode: there is no processing time): one GroupByKey serves every policy — lanes that share
  routed chunks cross the shuffle once (core/lanes.py) — then each policy takes the keys it wants (`take`),
  admits each key's values (`admit`) and releases them at once (`Why.COMPLETE`); what it keeps is retried on the
  worker every `wake_seconds` (`Why.WAKE`), since the job cannot end before everything is released.
- **streaming**: per policy, a stateful DoFn keeps each key's values in bag state with their tally (count,
  bytes), and releases them when the tally is `due` (`Why.FULL`), when a processing-time timer fires
  `wake_seconds` after the first value arrived (`Why.WAKE`, measured with an injectable clock so TestStream can
  drive it), and when the stream ends (`Why.DRAIN`, an event-time timer at `DRAIN_AT`). A key with nothing held
  for `idle_seconds` is forgotten, so a job that runs for months keeps state for live keys only.

Each key's releases are numbered for deterministic names (`Numbering`): bounded, the run token and a sequence
from 0; streaming, the time the key's state opened (its token) and a sequence kept in state, so a key that comes
back after a clean-up starts a new token and never reuses an earlier name.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, Iterable, Iterator, Mapping, Optional, Sequence, TypeVar

import apache_beam as beam
from apache_beam.coders import BytesCoder, Coder, TupleCoder, VarIntCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer

from core.records import DRAIN_AT

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Why(enum.Enum):
    """Why a policy is asked to release a key's values."""

    COMPLETE = "complete"  # bounded: every value of the key is here; keep what must wait, it is retried on WAKE
    FULL = "full"  # streaming: the tally is due; release what is ready, keep the rest
    WAKE = "wake"  # the wake interval passed (streaming: a timer; bounded: a wait on the worker)
    DRAIN = "drain"  # streaming: the stream ends; nothing can be kept


@dataclass
class Numbering:
    """Names for a key's releases: a token and the next sequence number, which a release advances."""

    token: int
    seq: int = 0


class HoldPolicy(Generic[K, V]):
    """What a keyed buffer does with one key's values. Subclasses set `name` and `wake_seconds` and implement
    `release`; the rest has defaults."""

    name: str  # names the policy's steps and its output
    output_type: Any = Any  # the type of what `release` outputs
    value_coder: Optional[Coder] = None  # how held values are kept in state; None: they are bytes, kept as is
    wake_seconds: float  # how long a key's values wait before a release (WAKE)
    idle_seconds: Optional[float] = None  # streaming: forget a key after this long with nothing held; None: never

    def setup(self) -> None:
        """On the worker, before the first key (open clients here)."""

    def teardown(self) -> None:
        """On the worker, when the buffer's DoFn is discarded."""

    def take(self, key: Any) -> Optional[K]:
        """The key under which to hold a value that arrived under `key`, or None to ignore it (a policy that
        re-keys overrides this; the default takes every key as it is)."""
        return key

    def weigh(self, value: V) -> tuple[int, int]:
        """(count, bytes) of a value: the tally `due` and `admit` look at."""
        return 1, 0

    def admit(self, value: V, held: int) -> tuple[Optional[V], list[Any]]:
        """What of an arriving value to hold (None: nothing), given the count already held, and what to output
        for the rest (a policy with a cap overrides this; the default holds every value whole)."""
        return value, []

    def due(self, count: int, nbytes: int) -> bool:
        """Streaming: release (FULL) as soon as the tally reaches this, without waiting for the wake."""
        return False

    def release(self, key: K, values: Iterable[V], why: Why, now: float,
                numbering: Numbering) -> tuple[list[V], list[Any]]:
        """(values to keep holding, outputs). On DRAIN nothing can be kept."""
        raise NotImplementedError

    def release_complete(self, key: K, values: Iterable[V], numbering: Numbering) -> Optional[Iterator[Any]]:
        """Bounded: a key's complete group as a stream of outputs, for a policy that keeps nothing and must not
        hold a whole group in memory (batching); None (the default) releases it with `release(COMPLETE)`."""
        return None


def _overrides(policy: HoldPolicy, method: str) -> bool:
    return getattr(type(policy), method) is not getattr(HoldPolicy, method)


def release_group(policy: HoldPolicy, key: Any, values: Iterable[Any], run_token: int, clock: Callable[[], float],
                  sleep: Callable[[float], None]) -> Iterator[Any]:
    """Bounded: a key's complete group → the policy's outputs; what it keeps is retried every `wake_seconds`."""
    if _overrides(policy, "take"):
        key = policy.take(key)
        if key is None:
            return
    if _overrides(policy, "admit"):
        held: list[Any] = []
        count = 0
        for value in values:
            value, out = policy.admit(value, count)
            yield from out
            if value is not None:
                held.append(value)
                count += policy.weigh(value)[0]
        values = held
    numbering = Numbering(run_token)
    stream = policy.release_complete(key, values, numbering)
    if stream is not None:
        yield from stream
        return
    kept, out = policy.release(key, values, Why.COMPLETE, clock(), numbering)
    yield from out
    while kept:
        sleep(policy.wake_seconds)
        kept, out = policy.release(key, kept, Why.WAKE, clock(), numbering)
        yield from out


class _Release(beam.DoFn):
    """Bounded: `(key, values)` groups → the policy's releases."""

    def __init__(self, policy: HoldPolicy, run_token: int, clock: Callable[[], float],
                 sleep: Callable[[float], None]) -> None:
        self._policy = policy
        self._run_token = run_token
        self._clock = clock
        self._sleep = sleep

    def setup(self) -> None:
        self._policy.setup()

    def teardown(self) -> None:
        self._policy.teardown()

    def process(self, element: tuple[Any, Iterable[Any]]) -> Iterator[Any]:
        yield from release_group(self._policy, element[0], element[1], self._run_token, self._clock, self._sleep)


class _Take(beam.DoFn):
    """Streaming: a value under the key its policy holds it by; values the policy does not take are dropped."""

    def __init__(self, policy: HoldPolicy) -> None:
        self._policy = policy

    def process(self, element: tuple[Any, Any]) -> Iterator[tuple[Any, Any]]:
        key = self._policy.take(element[0])
        if key is not None:
            yield key, element[1]


class _Held(beam.DoFn):
    """Streaming: one policy's keys, each with its values in bag state, a tally, a token, a sequence, and the
    wake, idle and drain timers."""

    BUFFER = BagStateSpec("buffer", BytesCoder())  # values, encoded with the policy's value coder
    TALLY = ReadModifyWriteStateSpec("tally", TupleCoder([VarIntCoder(), VarIntCoder()]))  # empty: nothing held
    SEQ = ReadModifyWriteStateSpec("seq", VarIntCoder())
    OPENED = ReadModifyWriteStateSpec("opened", VarIntCoder())
    WAKE = TimerSpec("wake", TimeDomain.REAL_TIME)
    IDLE = TimerSpec("idle", TimeDomain.REAL_TIME)
    DRAIN = TimerSpec("drain", TimeDomain.WATERMARK)

    def __init__(self, policy: HoldPolicy, clock: Callable[[], float]) -> None:
        self._policy = policy
        self._clock = clock
        self._coder = policy.value_coder
        self._admits = _overrides(policy, "admit")

    def setup(self) -> None:
        self._policy.setup()

    def teardown(self) -> None:
        self._policy.teardown()

    def process(self, element: tuple[Any, Any],
                buffer: Any = beam.DoFn.StateParam(BUFFER), tally: Any = beam.DoFn.StateParam(TALLY),
                seq: Any = beam.DoFn.StateParam(SEQ), opened: Any = beam.DoFn.StateParam(OPENED),
                wake: Any = beam.DoFn.TimerParam(WAKE), idle: Any = beam.DoFn.TimerParam(IDLE),
                drain: Any = beam.DoFn.TimerParam(DRAIN)) -> Iterator[Any]:
        key, value = element
        policy = self._policy
        now = self._clock()
        if opened.read() is None:
            opened.write(int(now))
            drain.set(DRAIN_AT)
        held = tally.read()
        if self._admits:
            value, out = policy.admit(value, held[0] if held else 0)
            yield from out
            if value is None:
                return
        if held is None:  # the first value since the last release: the wake interval starts now
            wake.set(now + policy.wake_seconds)
            idle.clear()
            held = (0, 0)
        buffer.add(value if self._coder is None else self._coder.encode(value))
        count, nbytes = policy.weigh(value)
        count, nbytes = held[0] + count, held[1] + nbytes
        tally.write((count, nbytes))
        if policy.due(count, nbytes):
            yield from self._release(key, Why.FULL, now, buffer, tally, seq, opened, wake, idle)

    @on_timer(WAKE)
    def on_wake(self, key: Any = beam.DoFn.KeyParam, now: Any = beam.DoFn.TimestampParam,
                buffer: Any = beam.DoFn.StateParam(BUFFER), tally: Any = beam.DoFn.StateParam(TALLY),
                seq: Any = beam.DoFn.StateParam(SEQ), opened: Any = beam.DoFn.StateParam(OPENED),
                wake: Any = beam.DoFn.TimerParam(WAKE), idle: Any = beam.DoFn.TimerParam(IDLE)) -> Iterator[Any]:
        # A processing-time timer fires at its time: that is "now" here, test clocks included.
        yield from self._release(key, Why.WAKE, float(now), buffer, tally, seq, opened, wake, idle)

    @on_timer(DRAIN)
    def on_drain(self, key: Any = beam.DoFn.KeyParam,
                 buffer: Any = beam.DoFn.StateParam(BUFFER), tally: Any = beam.DoFn.StateParam(TALLY),
                 seq: Any = beam.DoFn.StateParam(SEQ), opened: Any = beam.DoFn.StateParam(OPENED),
                 wake: Any = beam.DoFn.TimerParam(WAKE), idle: Any = beam.DoFn.TimerParam(IDLE)) -> Iterator[Any]:
        yield from self._release(key, Why.DRAIN, self._clock(), buffer, tally, seq, opened, wake, idle)
        buffer.clear()
        tally.clear()
        wake.clear()
        idle.clear()

    @on_timer(IDLE)
    def on_idle(self, tally: Any = beam.DoFn.StateParam(TALLY), seq: Any = beam.DoFn.StateParam(SEQ),
                opened: Any = beam.DoFn.StateParam(OPENED), drain: Any = beam.DoFn.TimerParam(DRAIN)) -> None:
        if tally.read() is None:  # nothing arrived since: forget the key
            seq.clear()
            opened.clear()
            drain.clear()

    def _release(self, key: Any, why: Why, now: float, buffer: Any, tally: Any, seq: Any, opened: Any, wake: Any,
                 idle: Any) -> Iterator[Any]:
        policy, coder = self._policy, self._coder
        values = list(buffer.read()) if coder is None else [coder.decode(v) for v in buffer.read()]
        numbering = Numbering(opened.read() or 0, seq.read() or 0)
        kept, out = policy.release(key, values, why, now, numbering)
        yield from out
        seq.write(numbering.seq)
        buffer.clear()
        if kept and why is not Why.DRAIN:
            count = nbytes = 0
            for value in kept:
                buffer.add(value if coder is None else coder.encode(value))
                c, b = policy.weigh(value)
                count, nbytes = count + c, nbytes + b
            tally.write((count, nbytes))
            if why is Why.WAKE:  # the timer just fired: the kept values wait another interval
                wake.set(now + policy.wake_seconds)
        else:
            tally.clear()
            wake.clear()
            if policy.idle_seconds is not None:
                idle.set(now + policy.idle_seconds)


class Hold(beam.PTransform):
    """`(key, value)` pairs → {policy name: what the policy releases}."""

    def __init__(self, policies: Sequence[HoldPolicy], streaming: bool, run_token: int = 0,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        self._policies = list(policies)
        self._streaming = streaming
        self._run_token = run_token
        self._clock = clock
        self._sleep = sleep

    def expand(self, pcoll: beam.PCollection) -> Mapping[str, beam.PCollection]:
        out: dict[str, beam.PCollection] = {}
        if not self._streaming:
            grouped = pcoll | "Group" >> beam.GroupByKey()
            for policy in self._policies:
                out[policy.name] = grouped | f"{policy.name}/Release" >> beam.ParDo(
                    _Release(policy, self._run_token, self._clock, self._sleep)).with_output_types(policy.output_type)
            return out
        for policy in self._policies:
            held = pcoll
            if _overrides(policy, "take"):
                held = held | f"{policy.name}/Take" >> beam.ParDo(_Take(policy)).with_output_types(pcoll.element_type)
            out[policy.name] = held | f"{policy.name}/Hold" >> beam.ParDo(
                _Held(policy, self._clock)).with_output_types(policy.output_type)
        return out
