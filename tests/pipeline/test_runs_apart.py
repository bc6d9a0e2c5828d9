"""Runs never overwrite each other; a retried bundle of one run rewrites its own keys.

Two batch runs of the same corpus into the same folders, one after the other, both launched with the clock pinned
to the same millisecond (the worst case: before run tokens had a random part, two launches in the same second
wrote the same keys): every object and every dead-letter file of both runs is there, none overwritten, and every
event is in exactly two objects of each connector, one per run. And a real (unpinned) rerun adds a third set.

Within one run, the writer given the same batch twice (a retried bundle) with the same token writes one object,
byte for byte the same; a different token (another run) writes another.
"""
from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

import pipeline.main
from core.records import Batch, BatchKey
from core.runs import new_run_token
from pipeline.config import load_config
from pipeline.main import run
from sinks.storage.writer import WriteFiles, WrittenFile
from tests.corpus import corpus, dead_letters, decode_file, local_objects, valid_events, write_lines

PINNED = 1_790_000_000.123  # both runs "launch" in this millisecond


def _connectors(tmp: Path) -> dict[str, Any]:
    return {"connectors": [
        {"id": "lake", "type": "filesystem", "path": str(tmp / "lake"), "max_events_per_file": 40},
        {"id": "rows", "type": "filesystem", "path": str(tmp / "rows"), "format": "jsonl", "share_lane": False,
         "events": ["users.behaviors.*"]},
    ]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("runs")
    lines, kinds = corpus(600, seed=3, invalid=6)
    source = write_lines(str(tmp / "events.jsonl"), lines)
    args = ["--runner=DirectRunner", f"--source=file:{source}", f"--connectors={json.dumps(_connectors(tmp))}",
            f"--dead_letter={tmp / 'dead'}"]
    snapshots, tokens = [], []
    with pytest.MonkeyPatch.context() as patch:
        def pinned() -> int:
            tokens.append(new_run_token(clock=lambda: PINNED))
            return tokens[-1]

        patch.setattr(pipeline.main, "new_run_token", pinned)
        for _ in range(2):
            run(args)
            snapshots.append({name: local_objects(str(tmp / name)) for name in ("lake", "rows", "dead")})
    run(args)  # a third run with the real clock
    snapshots.append({name: local_objects(str(tmp / name)) for name in ("lake", "rows", "dead")})
    return {"tmp": tmp, "snapshots": snapshots, "tokens": tokens, "valid": valid_events(lines, kinds),
            "invalid": len(kinds)}


def _ids(objects: dict[str, bytes]) -> collections.Counter:
    return collections.Counter(r["id"] for key, data in objects.items() for r in decode_file(key, data))


def test_runs_launched_in_the_same_millisecond_get_different_tokens(runs: dict[str, Any]) -> None:
    first, second = runs["tokens"]
    assert first != second and first // 10 ** 6 == second // 10 ** 6 == int(PINNED * 1000)


@pytest.mark.parametrize("folder", ["lake", "rows", "dead"])
def test_the_second_run_overwrites_no_file_of_the_first(runs: dict[str, Any], folder: str) -> None:
    first, second, third = (s[folder] for s in runs["snapshots"])
    assert first and set(first) <= set(second) <= set(third)
    assert all(second[key] == data and third[key] == data for key, data in first.items())  # untouched
    assert len(second) == 2 * len(first) and len(third) == 3 * len(first)


@pytest.mark.parametrize("folder, selects", [("lake", lambda t: True),
                                             ("rows", lambda t: t.startswith("users.behaviors."))])
def test_every_event_is_in_one_object_per_run(runs: dict[str, Any], folder: str, selects: Any) -> None:
    expected = {e["id"] for e in runs["valid"] if selects(e["event_type"])}
    for n, snapshot in enumerate(runs["snapshots"], start=1):
        ids = _ids(snapshot[folder])
        assert set(ids) == expected and set(ids.values()) == {n}


def test_every_run_keeps_its_own_dead_letters(runs: dict[str, Any]) -> None:
    letters = dead_letters(str(runs["tmp"] / "dead"))
    assert len(letters) == 3 * runs["invalid"]
    assert all(c == 3 for c in collections.Counter(d["payload"] for d in letters).values())


def test_object_keys_of_the_runs_differ_only_in_their_offsets(runs: dict[str, Any]) -> None:
    first, second = runs["snapshots"][0]["lake"], runs["snapshots"][1]["lake"]
    new = sorted(set(second) - set(first))

    def stem(key: str) -> str:
        return key.rsplit("+", 1)[0]

    assert sorted(map(stem, first)) == sorted(map(stem, new))  # same folders, partitions and names
    first_token, second_token = runs["tokens"]
    assert {int(k.rsplit("+", 1)[1].split(".")[0]) // 10 ** 6 for k in first} == {first_token}
    assert {int(k.rsplit("+", 1)[1].split(".")[0]) // 10 ** 6 for k in new} == {second_token}


# ---- a retried bundle ----------------------------------------------------------------------------------------------

def _writer(tmp: Path) -> tuple[WriteFiles, str]:
    (connector,) = load_config(json.dumps({"connectors": [
        {"id": "lake", "type": "filesystem", "path": str(tmp / "lake")}]})).connectors
    writer = WriteFiles([connector])
    writer.setup()
    return writer, str(tmp / "lake")


def _batch(token: int, seq: int = 0) -> Batch:
    events = [{"id": f"retry-{i}", "event_type": "users.behaviors.CustomEvent", "time": 1_790_000_000,
               "user_id": f"u{i}", "name": "n", "properties": "{}"} for i in range(25)]
    items = [(data, len(data)) for data in map(orjson.dumps, events)]
    return Batch(BatchKey("lake", "users.behaviors.CustomEvent", "2026-09-21-14", 0, ("lake",)), seq, items, token)


def _write(writer: WriteFiles, batch: Batch) -> list[Any]:
    out = list(writer.process(batch))
    assert all(isinstance(o, WrittenFile) for o in out), out
    return out


def test_a_retried_batch_with_the_same_token_rewrites_its_one_object(tmp_path: Path) -> None:
    writer, root = _writer(tmp_path)
    token = new_run_token()
    (first,) = _write(writer, _batch(token))
    before = local_objects(root)
    (again,) = _write(writer, _batch(token))  # the bundle retried: the same batch, the same token
    after = local_objects(root)
    assert first == again and len(after) == 1 and after == before
    assert [r["id"] for r in decode_file(*next(iter(after.items())))] == [f"retry-{i}" for i in range(25)]


def test_the_same_batch_in_another_run_is_another_object(tmp_path: Path) -> None:
    writer, root = _writer(tmp_path)
    one = new_run_token(clock=lambda: PINNED, random_below=lambda _: 17)
    other = new_run_token(clock=lambda: PINNED, random_below=lambda _: 912_345)
    _write(writer, _batch(one))
    _write(writer, _batch(other))  # the same batch of a run launched in the same millisecond
    _write(writer, _batch(one, seq=1))  # the run's next batch for the key
    objects = local_objects(root)
    assert len(objects) == 3 and len({k.rsplit("/", 1)[0] for k in objects}) == 1
