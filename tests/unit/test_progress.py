"""Progress on long local runs: every counter increment also feeds a running tally, and the launcher prints a
line from it at an interval, with events read and their rate, and per connector what was delivered and
dead-lettered so far."""
from __future__ import annotations

import threading

from core.metrics import counter
from core.progress import TALLY, Reporter
from pipeline.metrics import progress_line


def test_a_counter_increment_reaches_the_running_tally() -> None:
    TALLY.clear()
    counter(None, "events_in").inc(7)
    counter("lake", "delivered").inc(5)
    counter("lake", "delivered").inc(2)
    assert TALLY.snapshot() == {("currents", "events_in"): 7, ("connector.lake", "delivered"): 7}


def test_the_progress_line_gives_events_read_with_their_rate_and_each_connectors_deliveries_and_dead_letters() -> None:
    tally = {("currents", "events_in"): 3000, ("currents", "dead_letters.invalid"): 4,
             ("connector.lake", "delivered"): 1500, ("connector.lake", "dead_letters.write_failed"): 2,
             ("connector.amp", "delivered"): 300}
    line = progress_line(tally, 30.0)
    assert line.startswith("progress after 30 s: read 3000 events (100/s), dead letters 4")
    assert "amp: delivered 300 (10/s), dead letters 0" in line
    assert "lake: delivered 1500 (50/s), dead letters 2" in line


def test_the_reporter_reports_at_its_interval_until_stopped() -> None:
    seen: list[float] = []
    reported = threading.Event()

    def report(tally: dict, seconds: float) -> None:
        seen.append(seconds)
        if len(seen) >= 2:
            reported.set()

    with Reporter(report, interval=0.01):
        assert reported.wait(timeout=30)  # generous: only a reporter that never reports fails
    count = len(seen)
    assert count >= 2 and seen == sorted(seen)
    reported.clear()
    assert not reported.wait(timeout=0.2) and len(seen) == count  # stopped: no more reports
