"""The file-source job through the portable runner (`--runner=PortableRunner --job_endpoint=embed`): the graph is
portable, as Flink and other portable runners need."""
from __future__ import annotations

import collections
import json

from pipeline.main import run
from tests.corpus import corpus, dead_letters, decode_file, local_objects, valid_events, write_lines


def test_the_job_runs_end_to_end_on_the_portable_runner(tmp_path) -> None:  # noqa: ANN001
    lines, kinds = corpus(300, seed=4, invalid=3, oversize=1)
    source = write_lines(str(tmp_path / "events.jsonl"), lines)
    config = {"connectors": [{"id": "lake", "type": "filesystem", "path": str(tmp_path / "out")}]}
    run(["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK", f"--source=file:{source}",
         f"--connectors={json.dumps(config)}", f"--dead_letter={tmp_path / 'dead'}"])
    written = [r["id"] for k, v in local_objects(str(tmp_path / "out")).items() for r in decode_file(k, v)]
    assert sorted(written) == sorted(e["id"] for e in valid_events(lines, kinds))
    reasons = collections.Counter(d["reason"] for d in dead_letters(str(tmp_path / "dead")))
    assert reasons == {"invalid": 3, "oversize": 1}
