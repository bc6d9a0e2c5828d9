"""The run token: what keeps one launch's object keys and dead-letter files apart from every other launch's."""
from __future__ import annotations

import secrets
import time
from typing import Callable

TOKEN_RANDOM_SPAN = 1_000_000  # the random part: six decimal digits after the launch millisecond (fits 64 bits)


def new_run_token(clock: Callable[[], float] = time.time,
                  random_below: Callable[[int], int] = secrets.randbelow) -> int:
    """Launch time in milliseconds, then six random digits: two launches in the same millisecond still differ
    (but for one chance in a million), and tokens of later launches sort after earlier ones, so offsets in a folder keep
    increasing. A retried bundle of one run reuses its run's token, so it rewrites its own keys."""
    return int(clock() * 1000) * TOKEN_RANDOM_SPAN + random_below(TOKEN_RANDOM_SPAN)
