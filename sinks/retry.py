"""Exponential backoff with full jitter, shared by every external call (object stores, partner APIs).

Full jitter (a random wait between 0 and the capped exponential) spreads the retries of many workers that failed
together, so they do not hammer a recovering endpoint in lockstep.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    attempts: int = 6  # calls in all, the first one included

    def delay(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """The wait before retry number `retry` (0-based)."""
        return rng() * min(self.cap_seconds, self.base_seconds * (2 ** retry))


def call_with_retries(call: Callable[[], T], retryable: Callable[[BaseException], bool], backoff: Backoff,
                      sleep: Callable[[float], None] = time.sleep,
                      on_retry: Optional[Callable[[BaseException, float], None]] = None) -> T:
    """`call()`, retried on retryable errors up to `backoff.attempts` calls; the last error is raised."""
    for retry in range(backoff.attempts):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classified by `retryable`, re-raised when not
            if not retryable(exc) or retry == backoff.attempts - 1:
                raise
            wait = backoff.delay(retry)
            if on_retry:
                on_retry(exc, wait)
            sleep(wait)
    raise AssertionError("unreachable")
