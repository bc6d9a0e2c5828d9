"""Conservation under faults: the job (local runner, bounded input) against each partner's stand-in server, with
500s, 429 + Retry-After, 413 for large requests, 400 for marked events, connection resets and a 401 period that
later clears. Every input event is accepted by the stand-in at least once, or is a dead letter with its reason, or
(for partners that need an external user id) is counted as skipped; duplicates carry the same idempotency key."""
from __future__ import annotations

import collections
import json
from typing import Any, Optional

import pytest

from pipeline.main import run
from tests.corpus import corpus, dead_letters, valid_events, write_lines
from tests.partner_standins import (Reply, StandIn, _dedupe_ids, combine, reject_events_where,
                                    reset_every, too_large_over, unauthorized_until)

KINDS = {  # the stand-in's expected credentials
    "http": {"token": "t0ken"},
    "heap": {"token": "h3ap"},
    "amplitude": {"api_key": "amp-key"},
    "mixpanel": {"project_token": "mp-token"},
    "segment": {"write_key": "seg-key"},
    "mparticle": {"key": "mp-key", "secret": "mp-secret"},
}
CONNECTOR_SECRETS = {  # the same credentials in the connector config
    "http": {"token": "t0ken"}, "heap": {"token": "h3ap"}, "amplitude": {"api_key": "amp-key"},
    "mixpanel": {"project_token": "mp-token"}, "segment": {"write_key": "seg-key"},
    "mparticle": {"api_key": "mp-key", "api_secret": "mp-secret"},
}


def _takes(kind: str, event: dict[str, Any]) -> bool:
    """Which events a partner takes (the others are skipped and counted), per the reference's identity rules."""
    if kind in ("http", "heap"):
        return True
    if kind == "amplitude":
        return bool(event.get("external_user_id") or event.get("device_id"))
    return bool(event.get("external_user_id"))


def _marked(event_id: str) -> bool:
    return event_id.endswith("7")  # about 1 in 16 UUIDs: the partner rejects these events (400)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_event_is_accepted_or_dead_lettered_under_faults(kind: str, tmp_path) -> None:  # noqa: ANN001
    lines, kinds = corpus(500, seed=21)
    events = valid_events(lines, kinds)
    source = write_lines(str(tmp_path / "events.jsonl"), lines)
    processed_then_lost: list[dict[str, Any]] = []  # the partner took these, but its answer never arrived

    def answer_lost(number: int, records: list[dict[str, Any]]) -> Optional[Reply]:
        if number % 11 == 0 and records:
            processed_then_lost.extend(records)
            return Reply(reset=True)
        return None

    script = combine(unauthorized_until(3),  # a 401 period that clears (parking, then probes)
                     lambda n, evs: Reply(429, {"Retry-After": "1"}) if n == 10 else None,  # throttled once
                     too_large_over(3_000),  # 413: split in halves
                     reject_events_where(lambda record: any(_marked(k) for k in _dedupe_ids(kind, record))),
                     reset_every(9),  # connection reset, nothing processed
                     answer_lost,  # processed, then the connection reset
                     lambda n, evs: Reply(500) if n % 7 == 0 else None)
    with StandIn(kind, script=script, **KINDS[kind]) as standin:
        connector = {"id": "partner", "type": kind, "endpoint": standin.url, "retry_attempts": 6,
                     "backoff_base_seconds": 0.01, "backoff_cap_seconds": 1.5, "probe_interval_seconds": 0.2,
                     **CONNECTOR_SECRETS[kind]}
        metrics_out = tmp_path / "metrics.json"
        run(["--runner=DirectRunner", f"--source=file:{source}",
             f"--connectors={json.dumps({'connectors': [connector]})}", f"--dead_letter={tmp_path / 'dead'}",
             f"--metrics_out={metrics_out}"])
        records = list(standin.accepted) + processed_then_lost
        accepted = collections.Counter(k for r in records for k in _dedupe_ids(kind, r))
        violations = list(standin.violations)
        statuses = {r.status for r in standin.requests}
    assert {0, 400, 401, 413, 429, 500} <= statuses  # every fault happened (0: a reset connection)
    letters = dead_letters(str(tmp_path / "dead"))
    taken = [e for e in events if _takes(kind, e)]
    rejected = {d["event_id"] for d in letters if d["reason"] == "rejected"}
    assert not violations
    assert {d["reason"] for d in letters} == {"rejected"}
    assert rejected == {e["id"] for e in taken if _marked(e["id"])}
    delivered_ids = set(accepted)
    assert delivered_ids == {e["id"] for e in taken if not _marked(e["id"])}
    lane = json.loads(metrics_out.read_bytes())["connector.partner"]
    assert lane["routed"] == len(events) == lane["delivered"] + lane.get("skipped", 0) + len(rejected)
    assert lane.get("skipped", 0) == len(events) - len(taken)
    # Answers lost after the partner processed the request make the job send those events again: duplicates,
    # each with the same idempotency key and the same content, so the partner's dedupe makes them harmless.
    duplicates = {k for k, n in accepted.items() if n > 1}
    assert duplicates
    for key in duplicates:
        copies = [r for r in records if key in _dedupe_ids(kind, r)]
        assert all(copy == copies[0] for copy in copies)
