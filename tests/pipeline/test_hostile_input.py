"""Hostile records through the real job (local runner): nothing the input carries can crash a bundle, lose a record
or change a value.

Generated corpora (hypothesis) of arbitrary JSON values — nested up to a few hundred levels, wide objects, huge
strings, every JSON type, integers at and beyond 64 bits, bytes that are not UTF-8, escaped lone surrogates, NUL,
duplicate and colliding keys, event types at and over 200 characters, garbage and blank lines — are written to a
file and run through one job with three connectors: a filesystem Avro connector, a filesystem jsonl connector with
field transforms, and an `http` connector to a local stand-in partner. Hypothesis generates the records (dozens of
examples of every kind) and one job carries them all: a job costs a second or two, so each test is one job over a
few hundred generated records, not one job per example (no shrinking: a failure names the line it is about).

Conservation, for every input line: a blank line is counted (`blank_lines`); any other line is a dead letter
`invalid` or `oversize` carrying the line (its first 4 KiB and full size when oversize), or a valid event, which
each connector selecting its type delivers exactly once or turns into one dead letter of its own, and which is
counted `unselected` when no connector selects it. The metrics reconcile: events_in = valid + invalid + oversize,
events_valid = selected + unselected, and per connector routed = delivered + skipped + dead letters. What a
connector delivers carries the event's values unchanged (integers exact, no float where an integer was).
"""
from __future__ import annotations

import base64
import collections
import fnmatch
import gzip
import hashlib
import json
import os
import string
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pipeline.cli import placeholder_event
from pipeline.main import run
from sinks.storage.schemas import known_event_types, load_schema
from tests.corpus import dead_letters, decode_file, event_type_of, local_objects
from tests.partner_standins import StandIn

MAX_EVENT_BYTES = 16_384
PER_KIND = 40  # hypothesis examples of each kind of record per job
PREFIX = 4096
MAX_TIME = 253_402_300_799
NAME_CHARS = string.ascii_letters + string.digits + "._-"
CATALOGUE = ("users.behaviors.CustomEvent", "users.behaviors.Purchase", "users.messages.email.Send",
             "users.behaviors.app.SessionStart", "users.campaigns.Conversion", "agentconsole.AgentExecuted")
TRANSFORMS = {"email_address": "hash", "phone_number": "remove", "ssn": "remove"}
CONNECTORS = {  # id: event selection
    "avro": ["users.*", "hostile.*"],
    "jsonl": ["hostile.*", "users.behaviors.*", "users.messages.email.*"],
    "partner": ["hostile.*", "users.behaviors.CustomEvent", "users.messages.*"],
}
KNOWN = frozenset(known_event_types())
GENERIC_CORE = ("id", "event_type", "time", "user_id", "external_user_id")
CONNECTOR_REASONS = {"schema_mismatch", "invalid", "rejected", "too_large"}

VALID, INVALID, MAYBE, BLANK = "valid", "invalid", "valid-or-invalid", "blank"


@dataclass
class Case:
    """One input line and what the job must make of it: VALID, INVALID, MAYBE (either; the JSON is one that
    parsers differ on) or BLANK; a line over the limit is oversize whatever it holds."""

    line: bytes
    expect: str
    kind: str
    event_id: Optional[str] = None  # the id the event carries (valid events and readable invalid ones)


# ---- generated values ----------------------------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8"), max_size=24)  # every code point but surrogates: NUL, controls, emoji
ints = st.integers(-2 ** 63, 2 ** 64 - 1)  # what a 64-bit parser keeps exact
leaves = (st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | texts
          | st.sampled_from([2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, -2 ** 63, 0, -0.0, 5e-324, 1.7976931348623157e308]))
json_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(texts, inner, max_size=4), max_leaves=12)
field_names = texts | st.sampled_from(["user", "properties", "user_id", "external_user_id", "device_id", "timezone",
                                       "email_address", "phone_number", "ssn", "schema_id", "time_ms", "price",
                                       "currency", "product_id", "name", "app_id", "campaign_id", "ID", "Time",
                                       "event_type ", "id\u0000", ""])
fields = st.dictionaries(field_names, json_values, max_size=8)


def _catalogue_or_hostile(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 9))
    if choice < 4:
        return draw(st.sampled_from(CATALOGUE))
    if choice < 8:
        return "hostile." + draw(st.text(NAME_CHARS, min_size=1, max_size=40))
    if choice == 8:
        return "other." + draw(st.text(NAME_CHARS, min_size=1, max_size=20))  # no connector selects it
    return draw(st.text(NAME_CHARS, min_size=1, max_size=30).filter(lambda t: t[0] not in ".-"))


_OMIT = object()
_AVRO: dict[str, st.SearchStrategy[Any]] = {
    "string": texts | st.text(st.characters(codec="utf-8"), min_size=200, max_size=2000),
    "int": st.integers(-2 ** 31, 2 ** 31 - 1), "long": st.integers(-2 ** 63, 2 ** 63 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False, width=32) | st.integers(-2 ** 24, 2 ** 24),
    "double": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-2 ** 53, 2 ** 53),
    "boolean": st.booleans()}


def _typed(avro_type: Any) -> st.SearchStrategy[Any]:
    """A value of an Avro field type (of the kinds the catalogue uses); optional fields may be null or left out."""
    if isinstance(avro_type, list):
        inner = _typed(next(t for t in avro_type if t != "null"))
        return inner | st.none() | st.just(_OMIT) if "null" in avro_type else inner
    if isinstance(avro_type, dict):
        return st.lists(_typed(avro_type["items"]), max_size=4)
    return _AVRO[avro_type]


def _placeholder(event_type: str) -> dict[str, Any]:
    event = placeholder_event(event_type, now=1_790_000_000)
    del event["id"], event["event_type"], event["time"]
    return event


def _dumps(value: Any, ascii_only: bool) -> bytes:
    """Exact JSON (Python's encoder keeps integers of any size), as raw UTF-8 or with every non-ASCII escaped."""
    return json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":")).encode("utf-8")


def _object(pairs: list[tuple[str, bytes]]) -> bytes:
    """A JSON object from (key, encoded value) pairs in order, repeats kept: duplicate keys as a client sends them."""
    return b"{" + b",".join(json.dumps(k).encode() + b":" + v for k, v in pairs) + b"}"


def _nest(value: Any, depth: int, shape: list[bool]) -> Any:
    for level in range(depth):
        value = [value] if shape[level % len(shape)] else {"k": value}
    return value


@st.composite
def cases(draw: st.DrawFn, kind: str) -> Case:  # noqa: C901 - one branch per kind of hostile record
    ascii_only = draw(st.booleans())
    event_type = _catalogue_or_hostile(draw)
    # Catalogue types start from a complete event of their schema (so some get through), then take hostile fields.
    base = _placeholder(event_type) if event_type in KNOWN else {}
    base.update(draw(fields))
    # The kind leads the id: hypothesis starts every kind from the same minimal values, and the corpus keeps ids
    # unique, so without it a kind could lose every example to another kind's.
    event = {**base, "id": f"{kind}-{draw(st.uuids()).hex[:12]}-{draw(texts)}", "event_type": event_type,
             "time": draw(st.integers(0, 2 ** 31 - 1) | st.integers(0, MAX_TIME))}
    event_id = event["id"]
    if kind == "valid":
        return Case(_dumps(event, ascii_only), VALID, kind, event_id)
    if kind == "typed":  # a catalogue event with every field of its schema's type, holding hostile values
        event_type = draw(st.sampled_from(CATALOGUE))
        typed = {f["name"]: draw(_typed(f["type"])) for f in load_schema(event_type)["fields"]}
        typed = {k: v for k, v in typed.items() if v is not _OMIT}
        typed.update({"id": event["id"], "event_type": event_type, "time": draw(st.integers(0, 2 ** 31 - 1))})
        return Case(_dumps(typed, ascii_only), VALID, kind, event["id"])
    if kind == "deep":
        depth = draw(st.integers(1, 300) | st.integers(55, 75))
        event["deep"] = _nest(draw(leaves), depth, draw(st.lists(st.booleans(), min_size=1, max_size=4)))
        expect = VALID if depth < 62 else INVALID if depth > 66 else MAYBE  # the 64-level limit, give or take a level
        return Case(_dumps(event, ascii_only), expect, kind, event_id)
    if kind == "wide":
        kinds = [None, True, 2 ** 63, -0.5, "v", [], {}]
        shift = draw(st.integers(0, 6))
        event.update({f"f{i}": kinds[(i + shift) % len(kinds)] for i in range(draw(st.integers(100, 1500)))})
        return Case(_dumps(event, ascii_only), VALID, kind, event_id)
    if kind == "huge_string":
        char = draw(st.characters(codec="utf-8"))
        event["huge"] = char * draw(st.sampled_from([100, 4_000, 15_000, 20_000, 40_000, 1_200_000]))
        return Case(_dumps(event, ascii_only), VALID, kind, event_id)
    if kind == "int_edges":
        event["n"] = draw(st.sampled_from([2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, -2 ** 63]))
        event["nested"] = {"list": [draw(ints), {"n": draw(ints)}]}
        return Case(_dumps(event, ascii_only), VALID, kind, event_id)
    if kind == "bigint":
        big = draw(st.integers(2 ** 64, 2 ** 200) | st.integers(-2 ** 200, -2 ** 63 - 1))
        where = draw(st.integers(0, 2))
        event["big"] = big if where == 0 else [1, big] if where == 1 else {"a": {"b": [big]}}
        return Case(_dumps(event, ascii_only), INVALID, kind, event_id)
    if kind == "non_utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x80abc"]))
        pairs = [(k, _dumps(v, ascii_only)) for k, v in event.items()]
        pairs.insert(draw(st.integers(0, len(pairs))), ("bad", b'"' + bad + b'"'))
        return Case(_object(pairs), INVALID, kind, event_id)
    if kind == "lone_surrogate":
        escape = draw(st.sampled_from([b'"\\ud800"', b'"a\\udfffb"', b'"\\ud83d"', b'"x\\udc00\\ud800"']))
        pairs = [(k, _dumps(v, ascii_only)) for k, v in event.items()] + [("s", escape)]
        return Case(_object(pairs), MAYBE, kind, event_id)
    if kind == "surrogate_pair":
        pairs = [(k, _dumps(v, ascii_only)) for k, v in event.items()] + [("emoji", b'"\\ud83d\\ude00 \\u0000"')]
        return Case(_object(pairs), VALID, kind, event_id)
    if kind == "nul":
        where = draw(st.sampled_from(["id", "value", "raw", "event_type"]))
        if where == "id":
            event["id"] += "\u0000\u0001"
            return Case(_dumps(event, ascii_only), VALID, kind, event["id"])
        if where == "value":
            event["nul"] = "a\u0000b"
            return Case(_dumps(event, ascii_only), VALID, kind, event_id)
        if where == "event_type":
            event["event_type"] += "\u0000"
            return Case(_dumps(event, ascii_only), INVALID, kind, event_id)
        pairs = [(k, _dumps(v, ascii_only)) for k, v in event.items()] + [("raw", b'"a\x00b"')]
        return Case(_object(pairs), INVALID, kind, event_id)  # a raw control character: not JSON
    if kind == "collide":  # the required fields twice: the last one counts
        last_bad = draw(st.booleans())
        name = draw(st.sampled_from(["id", "event_type", "time"]))
        bad = {"id": _dumps(5, True), "event_type": _dumps("a/b", True), "time": _dumps("soon", True)}[name]
        pairs = [(k, _dumps(v, ascii_only)) for k, v in event.items()]
        pairs = ([(name, bad)] + pairs) if not last_bad else (pairs + [(name, bad)])
        pairs += [("user", _dumps({"user_id": 1}, True)), ("properties", _dumps("not an object", True))]
        readable = event_id if not (last_bad and name == "id") else None
        return Case(_object(pairs), INVALID if last_bad else VALID, kind, readable)
    if kind == "event_type_length":
        length = draw(st.sampled_from([199, 200, 201, 250]))
        head = draw(st.sampled_from(["hostile.", "other.", "users.behaviors.", "x"]))
        event["event_type"] = head + draw(st.text(NAME_CHARS, min_size=length, max_size=length))[:length - len(head)]
        return Case(_dumps(event, ascii_only), VALID if length <= 200 else INVALID, kind, event_id)
    if kind == "bad_required":
        name, value = draw(st.sampled_from([
            ("id", None), ("id", ""), ("id", 7), ("id", ["a"]), ("event_type", ""), ("event_type", "a b"),
            ("event_type", "../etc"), ("event_type", "a\n"), ("event_type", ".hidden"), ("event_type", 3),
            ("event_type", "x/y"), ("time", -1), ("time", MAX_TIME + 1), ("time", 1.5), ("time", "1700000000"),
            ("time", True), ("time", None), ("time", 2 ** 70)]))
        if value is None:
            del event[name]
        else:
            event[name] = value
        readable = event_id if name != "id" else None
        return Case(_dumps(event, ascii_only), INVALID, kind, readable)
    if kind == "not_object":
        value = draw(st.lists(json_values, max_size=3) | texts | ints | st.none() | st.booleans())
        return Case(_dumps(value, ascii_only), INVALID, kind)
    if kind == "garbage":
        line = draw(st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b and b"\r" not in b))
        return Case(line, BLANK if line.isspace() else INVALID, kind)
    if kind == "padded":
        return Case(draw(st.sampled_from([b" ", b"\t", b"  \t"])) + _dumps(event, ascii_only)
                    + draw(st.sampled_from([b"", b" ", b"\t\r"])), VALID, kind, event_id)
    assert kind == "blank"
    return Case(draw(st.sampled_from([b"", b" ", b"\t", b"   \t  ", b"\x0b\x0c", b"\r"])), BLANK, kind)


KINDS = ("valid", "typed", "deep", "wide", "huge_string", "int_edges", "bigint", "non_utf8", "lone_surrogate",
         "surrogate_pair", "nul", "collide", "event_type_length", "bad_required", "not_object", "garbage",
         "padded", "blank")


def generated_corpus(per_kind: int) -> list[Case]:
    """`per_kind` hypothesis examples of every kind, collected into one corpus for one job: a job costs a second or
    two, so the property is checked over a few hundred generated records at once, not one job per example. Ids are
    kept unique (hypothesis repeats values it finds interesting)."""
    out: list[Case] = []
    for kind in KINDS:
        @settings(max_examples=per_kind, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=cases(kind))
        def collect(case: Case) -> None:
            out.append(case)

        collect()
    seen: set[str] = set()
    corpus = []
    for case in out:
        if case.event_id is not None and case.event_id in seen:
            continue
        if case.event_id is not None:
            seen.add(case.event_id)
        corpus.append(case)
    return corpus


# ---- the job and what it must have done ----------------------------------------------------------------------------

def _selects(connector_id: str, event_type: str) -> bool:
    patterns = CONNECTORS[connector_id]
    return any(fnmatch.fnmatchcase(event_type, p) for p in patterns)


def _run_job(root: str, lines: list[bytes], gzip_file: bool = False,
             extra_args: Sequence[str] = ()) -> dict[str, Any]:
    source = os.path.join(root, "events.jsonl.gz" if gzip_file else "events.jsonl")
    with (gzip.open if gzip_file else open)(source, "wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")
    with StandIn("http", token="hostile-token") as partner:
        config = {"connectors": [
            {"id": "avro", "type": "filesystem", "path": os.path.join(root, "avro"), "events": CONNECTORS["avro"],
             "max_events_per_file": 50},
            {"id": "jsonl", "type": "filesystem", "path": os.path.join(root, "jsonl"), "format": "jsonl",
             "events": CONNECTORS["jsonl"], "field_transforms": TRANSFORMS, "share_lane": False},
            {"id": "partner", "type": "http", "endpoint": partner.url, "token": "hostile-token",
             "events": CONNECTORS["partner"], "retry_attempts": 3, "backoff_base_seconds": 0.01,
             "backoff_cap_seconds": 0.05, "probe_interval_seconds": 0.1},
        ]}
        metrics_out = os.path.join(root, "metrics.json")
        run(["--runner=DirectRunner", f"--source=file:{source}", f"--connectors={json.dumps(config)}",
             f"--dead_letter={os.path.join(root, 'dead')}", f"--metrics_out={metrics_out}",
             f"--max_event_bytes={MAX_EVENT_BYTES}", *extra_args])
        accepted = list(partner.accepted)
    # Nothing written outside the connectors' folders, whatever the event types and ids held.
    assert set(os.listdir(root)) <= {os.path.basename(source), "avro", "jsonl", "dead", "metrics.json"}
    with open(metrics_out, "rb") as handle:
        metrics = json.load(handle)
    return {"metrics": metrics, "letters": dead_letters(os.path.join(root, "dead")), "partner": accepted,
            "avro": _records(os.path.join(root, "avro")), "jsonl": _records(os.path.join(root, "jsonl"))}


def _records(folder: str) -> list[tuple[str, dict[str, Any]]]:
    """(event type of the file, record) for every record the connector wrote."""
    if not os.path.isdir(folder):
        return []
    out = []
    for key, data in local_objects(folder).items():
        records = decode_file(key, data)
        assert records, f"empty file {key}"
        out += [(event_type_of(key), r) for r in records]
    return out


def _payload(letter: dict[str, Any]) -> bytes:
    if letter.get("payload_encoding") == "base64":
        return base64.b64decode(letter["payload"])
    assert letter.get("payload_encoding") in (None, "repr"), letter
    return str(letter["payload"]).encode("utf-8", "surrogatepass")


def _exact(line: bytes) -> Any:
    """The line as Python's parser reads it: integers exact, duplicate keys last-wins."""
    return json.loads(line.decode("utf-8"))


def _transformed(name: str, value: Any) -> Any:
    op = TRANSFORMS.get(name)
    if op is None or value is None:
        return value
    if not isinstance(value, str):
        return None
    return hashlib.sha256(value.encode()).hexdigest() if op == "hash" else "[REDACTED]"


def _same(got: Any, want: Any) -> bool:
    """Equal values and equal kinds: an integer stays an integer (a float where an integer was is a changed
    value), a float may be written back as a float of the same value."""
    if isinstance(want, bool) or isinstance(got, bool):
        return type(got) is type(want) and got == want
    if isinstance(want, int):
        return type(got) is int and got == want
    if isinstance(want, float):
        return isinstance(got, (int, float)) and float(got) == want
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(_same, got, want))
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    return type(got) is type(want) and got == want


def _check_storage_record(connector: str, file_type: str, record: dict[str, Any], event: dict[str, Any]) -> None:
    transform = _transformed if connector == "jsonl" else (lambda _name, value: value)
    assert file_type == event["event_type"]
    if file_type not in KNOWN:  # the generic schema: the core fields as columns, every other one in `properties`
        assert set(record) == {*GENERIC_CORE, "properties"}
        extra = {k: transform(k, v) for k, v in event.items() if k not in GENERIC_CORE}
        assert _same(json.loads(record["properties"]), extra), (connector, event["id"])
        for name in GENERIC_CORE:
            assert _same(record[name], transform(name, event.get(name))), (connector, event["id"], name)
        return
    for name, value in record.items():
        want = transform(name, event.get(name))
        if isinstance(want, (int, float)) and not isinstance(want, bool) and isinstance(value, float):
            # a number in a float field: the same double, or (Avro `float`) the same single-precision value
            assert value in (float(want), _single(float(want))), (connector, event["id"], name, value, want)
        else:
            assert _same(value, want), (connector, event["id"], name, value, want)


def _single(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def _check_partner_record(record: dict[str, Any], event: dict[str, Any]) -> None:
    assert record["event_type"] == event["event_type"] and record["time"] == event["time"]
    for name, value in record["user"].items():
        assert _same(value, event[name]), (event["id"], name)
    for name, value in record["properties"].items():
        if name in event and not (name == "properties" and isinstance(event[name], str)):
            assert _same(value, event[name]), (event["id"], name)


def check_conservation(corpus: list[Case], job: dict[str, Any]) -> None:  # noqa: C901 - one pass per output
    metrics, letters = job["metrics"], job["letters"]
    top = metrics["currents"]

    # What the job made of each line, from its dead letters and its connectors' outputs.
    parse_letters = [d for d in letters if d["connector"] is None]
    assert {d["reason"] for d in parse_letters} <= {"invalid", "oversize"}, \
        collections.Counter(d["reason"] for d in parse_letters)
    invalid = collections.Counter(_payload(d) for d in parse_letters if d["reason"] == "invalid")
    oversize = collections.Counter((_payload(d), d["size"]) for d in parse_letters if d["reason"] == "oversize")
    assert all(d.get("truncated") for d in parse_letters if d["reason"] == "oversize")
    by_connector: dict[str, collections.Counter] = {c: collections.Counter() for c in CONNECTORS}
    for d in letters:
        if d["connector"] is not None:
            assert d["reason"] in CONNECTOR_REASONS, d
            by_connector[d["connector"]][d["event_id"]] += 1
    delivered: dict[str, dict[str, list]] = {c: collections.defaultdict(list) for c in CONNECTORS}
    for connector in ("avro", "jsonl"):
        for file_type, record in job[connector]:
            delivered[connector][record["id"]].append((file_type, record))
    for record in job["partner"]:
        delivered["partner"][record["id"]].append((record["event_type"], record))

    blank = valid = unselected = 0
    unselected_types: collections.Counter = collections.Counter()
    expected_invalid: collections.Counter = collections.Counter()
    expected_oversize: collections.Counter = collections.Counter()
    for case in corpus:
        line = case.line
        if case.expect == BLANK:
            blank += 1
            continue
        if len(line) > MAX_EVENT_BYTES:
            expected_oversize[(line[:PREFIX], len(line))] += 1
            continue
        if case.expect == MAYBE:
            is_invalid = invalid[line] > expected_invalid[line]
        else:
            is_invalid = case.expect == INVALID
        if is_invalid:
            expected_invalid[line] += 1
            continue
        valid += 1
        event = _exact(line)
        assert event["id"] == case.event_id
        selecting = [c for c in CONNECTORS if _selects(c, event["event_type"])]
        if not selecting:
            unselected += 1
            unselected_types[event["event_type"] if event["event_type"] in KNOWN else "other"] += 1
        for connector in CONNECTORS:
            got = delivered[connector].pop(event["id"], [])
            dead = by_connector[connector].pop(event["id"], 0)
            if connector not in selecting:
                assert not got and not dead, (connector, case.kind, line[:300])
                continue
            assert len(got) + dead == 1, (connector, case.kind, len(got), dead, line[:300])
            for file_type, record in got:
                if connector == "partner":
                    _check_partner_record(record, event)
                else:
                    _check_storage_record(connector, file_type, record, event)

    assert invalid == expected_invalid, (
        [(line[:200]) for line in (invalid - expected_invalid)], [line[:200] for line in expected_invalid - invalid])
    assert oversize == expected_oversize
    for connector in CONNECTORS:  # nothing delivered or dead-lettered that was not a valid input event
        assert not any(delivered[connector].values()), (connector, list(delivered[connector])[:5])
        assert not +by_connector[connector], (connector, by_connector[connector])

    # Dead letters of invalid records carry the id when it can be read.
    readable = {c.line: c.event_id for c in corpus if c.event_id is not None}
    for d in parse_letters:
        if d["reason"] == "invalid" and d.get("payload_encoding") is None:
            line = _payload(d)
            if line in readable and _loads_or_none(line) is not None:
                assert d["event_id"] == readable[line][:200], (d["event_id"], line[:200])

    # The metrics reconcile with each other and with the corpus.
    assert top.get("blank_lines", 0) == blank
    assert top["events_in"] == len(corpus) - blank
    assert top["events_in"] == top["events_valid"] + top.get("invalid", 0) + top.get("oversize", 0)
    assert top["events_valid"] == valid == top.get("selected", 0) + top.get("unselected", 0)
    assert top.get("unselected", 0) == unselected
    assert {k.split(".", 1)[1]: v for k, v in top.items() if k.startswith("unselected.")} == unselected_types
    assert top.get("invalid", 0) == sum(expected_invalid.values())
    assert top.get("oversize", 0) == sum(expected_oversize.values())
    for connector in CONNECTORS:
        lane = metrics.get(f"connector.{connector}", {})
        dead = sum(v for k, v in lane.items() if k.startswith("dead_letters."))
        assert lane.get("routed", 0) == lane.get("delivered", 0) + lane.get("skipped", 0) + dead, (connector, lane)


def _loads_or_none(line: bytes) -> Optional[dict]:
    """The line as the job's parser reads it, when that is an object with a string id; else None."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"] else None


def test_every_hostile_line_is_delivered_dead_lettered_or_counted(tmp_path: Path) -> None:
    corpus = generated_corpus(PER_KIND)
    assert {case.kind for case in corpus} == set(KINDS)
    check_conservation(corpus, _run_job(str(tmp_path), [case.line for case in corpus]))


def test_the_same_in_a_gzip_file_with_the_hour_taken_from_each_event_time(tmp_path: Path) -> None:
    """Event times anywhere from 1970 to 9999 pick the date= folder of every file."""
    corpus = generated_corpus(PER_KIND)
    check_conservation(corpus, _run_job(str(tmp_path), [case.line for case in corpus], gzip_file=True,
                                        extra_args=["--event_time=field"]))
