"""What a partner's answer means for a request (DESIGN.md §2 "HTTP output", reference §2.4).

2xx: done. 400: re-send as single events; a single that still gets 400 is rejected. 413: split in halves down to
one event. 401/403/404: the connector's credentials (or URL) are wrong: park. 5xx, 408, 429, network errors and
anything else: retry with backoff and full jitter, honouring Retry-After.
"""
from __future__ import annotations

import enum
import time
from email.utils import parsedate_to_datetime
from typing import Mapping, Optional


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
