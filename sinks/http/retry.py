"""What a partner's answer means for a request (docs/contract.md "HTTP output", docs/reference/currents-behaviour.md
§2.4), and the backoff between tries.

2xx: done. 400: re-send as single events; a single that still gets 400 is rejected. 413: split in halves down to
one event. 401/403/404: the connector's credentials (or URL) are wrong: park. 5xx, 408, 429, network errors and
anything else: retry with backoff and full jitter, honouring Retry-After. (Stores retry by their SDKs' own
policies: sinks/storage/stores.)
"""
from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable, Mapping, Optional


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: a random wait between 0 and the capped exponential spreads the retries
    of many workers that failed together, so they do not hammer a recovering endpoint in lockstep."""

    base_seconds: float = 0.5
    cap_seconds: float = 30.0
    attempts: int = 6  # calls in all, the first one included

    def delay(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """The wait before retry number `retry` (0-based)."""
        return rng() * min(self.cap_seconds, self.base_seconds * (2 ** retry))


class Verdict(enum.Enum):
    DONE = "done"
    RETRY = "retry"
    SPLIT_TO_SINGLES = "split_to_singles"
    SPLIT_IN_HALVES = "split_in_halves"
    CREDENTIALS = "credentials"


def classify(status: int) -> Verdict:
    if 200 <= status < 300:
        return Verdict.DONE
    if status == 400:
        return Verdict.SPLIT_TO_SINGLES
    if status == 413:
        return Verdict.SPLIT_IN_HALVES
    if status in (401, 403, 404):
        return Verdict.CREDENTIALS
    return Verdict.RETRY


def status_class(status: Optional[int]) -> str:
    """`2xx`, `4xx`, `5xx` ... or `error` (no answer), for the per-connector request counters."""
    return "error" if status is None else f"{status // 100}xx"


def retry_after_seconds(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
    """Retry-After as seconds from now (delta-seconds or an HTTP date), None when absent or unreadable."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:  # whatever a partner sends here must not fail a bundle
        if value.isascii() and value.isdigit():
            return float(value)
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
