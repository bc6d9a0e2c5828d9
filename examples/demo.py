"""`make demo`: the job on the local runner against the built-in generator, then a look at what it wrote."""
from __future__ import annotations

import collections
import json
import os
import shutil
import sys
import time

import fastavro
import pyarrow.parquet as pq

from examples.receiver import Receiver
from pipeline.main import main

OUT = "out/demo"
EVENTS = 30_000


def _files(root: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


def _records(path: str) -> list[dict]:
    if path.endswith(".avro"):
        with open(path, "rb") as handle:
            return [record for record in fastavro.reader(handle) if isinstance(record, dict)]
    rows: list[dict] = pq.read_table(path).to_pylist()
    return rows


def show(receiver: Receiver) -> None:
    for connector in ("warehouse", "marketing"):
        files = _files(os.path.join(OUT, connector))
        per_type: collections.Counter = collections.Counter()
        for path in files:
            per_type[path.split("event_type=")[1].split("/")[0]] += len(_records(path))
        print(f"\n== {connector}: {len(files)} files, {sum(per_type.values())} events, {len(per_type)} event types")
        print(f"   first file: {files[0]}")
        for event_type, n in per_type.most_common(5):
            print(f"   {n:6d}  {event_type}")
        email = next((p for p in files if "users.messages.email.Send" in p), None)
        if email:
            record = _records(email)[0]
            print(f"   users.messages.email.Send email_address = {record['email_address']!r}")
    print(f"\n== email-webhook: the receiver got {sum(receiver.events.values())} events "
          f"({len(receiver.ids)} distinct ids) in {receiver.requests} requests, {len(receiver.events)} event types")
    for event_type, n in receiver.events.most_common(3):
        print(f"   {n:6d}  {event_type}")
    letters = _files(os.path.join(OUT, "dead-letter"))
    reasons: collections.Counter = collections.Counter()
    for path in letters:
        with open(path, "rb") as handle:
            for line in handle:
                reasons[json.loads(line)["reason"]] += 1
    print(f"\n== dead letters: {dict(reasons)} in {len(letters)} files under {OUT}/dead-letter")
    with open(os.path.join(OUT, "metrics.json"), "rb") as handle:
        metrics = json.load(handle)
    print(f"== metrics ({OUT}/metrics.json): currents = {metrics.get('currents')}")


if __name__ == "__main__":
    shutil.rmtree(OUT, ignore_errors=True)
    with Receiver(token="demo-token") as receiver:
        os.environ["DEMO_RECEIVER_URL"] = receiver.url
        os.environ["DEMO_RECEIVER_TOKEN"] = receiver.token
        started = time.time()
        main([
            "--runner=DirectRunner",
            f"--source=generate:count={EVENTS},seed=7,invalid=25,oversize=5",
            "--connectors=examples/demo.yaml",
            f"--dead_letter={OUT}/dead-letter",
            f"--metrics_out={OUT}/metrics.json",
        ])
        print(f"\nran in {time.time() - started:.1f}s")
        show(receiver)
    sys.stdout.flush()
