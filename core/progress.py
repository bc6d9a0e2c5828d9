"""A running tally of the job's counters in this process, for progress lines on a long local run.

Beam's counters are read back only when a local run ends; the local runners run the workers in this process, so
every counter increment (`core.metrics.counter`) is also added here, and the launcher prints the tally every
`PROGRESS_SECONDS`. It is a view for people watching a run, not the record: the run's figures are Beam's counters
(`--metrics_out`, the summary), which count a retried bundle once. On a remote runner the tally stays empty there
and the runner's UI shows the counters.
"""
from __future__ import annotations

import threading
from collections import defaultdict
from typing import Callable, Optional

PROGRESS_SECONDS = 30.0


class Tally:
    def __init__(self) -> None:
        self._values: dict[tuple[str, str], int] = defaultdict(int)
        self._lock = threading.Lock()

    def add(self, namespace: str, name: str, n: int) -> None:
        with self._lock:
            self._values[(namespace, name)] += n

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


TALLY = Tally()  # process state: what the workers of this process have counted so far


class Reporter:
    """Calls `report(snapshot, seconds since start)` every `interval` seconds on a thread until stopped."""

    def __init__(self, report: Callable[[dict[tuple[str, str], int], float], None],
                 interval: float = PROGRESS_SECONDS, clock: Optional[Callable[[], float]] = None) -> None:
        import time

        self._report = report
        self._interval = interval
        self._clock = clock or time.monotonic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def __enter__(self) -> "Reporter":
        self._start = self._clock()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._report(TALLY.snapshot(), self._clock() - self._start)
