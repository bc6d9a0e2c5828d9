"""Launch-time validation (pipeline/main.py): bad options fail before any work starts, naming the option."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.main import LaunchError, check_unknown_options, job_from_options
from pipeline.sources import FileSource, GenerateSource

CONNECTORS = json.dumps({"connectors": [{"id": "local", "type": "filesystem", "path": "/tmp/currents-out"}]})


@pytest.fixture(autouse=True)
def _corpus_files(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """The file sources named in these tests exist (a glob matching nothing is itself a launch error)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "events").mkdir()
    for name in ("x.jsonl", "events/a.jsonl"):
        (tmp_path / name).write_text("{}\n")


def job(*argv: str, connectors: str | None = CONNECTORS) -> Any:
    args = list(argv)
    if connectors is not None:
        args.append(f"--connectors={connectors}")
    return job_from_options(PipelineOptions(args))


def launch_error(*argv: str, connectors: str | None = CONNECTORS) -> str:
    with pytest.raises(LaunchError) as info:
        job(*argv, connectors=connectors)
    return str(info.value)


# --- unknown options --------------------------------------------------------------------------------------------

def test_unknown_option_is_rejected_naming_it() -> None:
    with pytest.raises(LaunchError) as info:
        check_unknown_options(["--source=file:x.jsonl", "--conectors=c.yaml"])
    assert "--conectors" in str(info.value)


def test_every_unknown_option_is_named_at_once() -> None:
    with pytest.raises(LaunchError) as info:
        check_unknown_options(["--bogus=1", "--source=file:x", "--also_bogus", "v"])
    assert "--bogus" in str(info.value) and "--also_bogus" in str(info.value)


def test_abbreviated_option_is_not_accepted() -> None:
    with pytest.raises(LaunchError, match="--sourc"):
        check_unknown_options(["--sourc=file:x.jsonl"])


def test_known_job_and_beam_options_pass() -> None:
    check_unknown_options(["--source=file:x.jsonl", f"--connectors={CONNECTORS}", "--dead_letter=/tmp/dl",
                           "--max_event_bytes=1000", "--event_time=field", "--metrics_out=/tmp/m.json",
                           "--runner=DirectRunner", "--streaming", "--job_name=currents"])


# --- bad values -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, detail", [
    ("ftp:host/x", "unknown kind 'ftp'"),
    ("generate:count=x", "count must be a number"),
    ("file:", "needs a glob"),
])
def test_bad_source_is_a_launch_error_naming_the_option(source: str, detail: str) -> None:
    message = launch_error(f"--source={source}")
    assert "--source" in message and detail in message


def test_missing_source_is_a_launch_error() -> None:
    assert "--source is required" in launch_error()


def test_bad_event_time_is_a_launch_error_listing_the_modes() -> None:
    message = launch_error("--source=file:x.jsonl", "--event_time=wallclock")
    assert "--event_time='wallclock'" in message
    assert "publish" in message and "field" in message


@pytest.mark.parametrize("value", ["0", "-5"])
def test_non_positive_max_event_bytes_is_a_launch_error(value: str) -> None:
    assert "--max_event_bytes" in launch_error("--source=file:x.jsonl", f"--max_event_bytes={value}")


def test_empty_dead_letter_folder_is_a_launch_error() -> None:
    assert "--dead_letter" in launch_error("--source=file:x.jsonl", "--dead_letter=")


def test_missing_connectors_is_a_launch_error() -> None:
    assert "--connectors is required" in launch_error("--source=file:x.jsonl", connectors=None)


def test_bad_config_is_a_launch_error_naming_connector_and_field() -> None:
    bad = json.dumps({"connectors": [{"id": "warehouse", "type": "s3", "buket": "b"}]})
    message = launch_error("--source=file:x.jsonl", connectors=bad)
    assert "connector 'warehouse' (connectors[0]): field 'buket': unknown field" in message


def test_unusable_codec_is_a_launch_error_naming_connector_and_field(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing_library(name: str, codec: str) -> None:
        raise ValueError("zstandard codec needs backports.zstd")

    monkeypatch.setattr("pipeline.main.check_codec", missing_library)
    message = launch_error("--source=file:x.jsonl")
    assert "connector 'local'" in message and "field 'codec'" in message and "backports.zstd" in message


def test_unreadable_config_file_is_a_launch_error(tmp_path: Path) -> None:
    message = launch_error("--source=file:x.jsonl", connectors=str(tmp_path / "missing.yaml"))
    assert "--connectors" in message and "missing.yaml" in message


# --- a good launch ----------------------------------------------------------------------------------------------

def test_file_source_gives_a_batch_job_spec() -> None:
    spec = job("--source=file:events/*.jsonl", "--dead_letter=/tmp/dl", "--max_event_bytes=2048",
               "--event_time=field")
    assert spec.source == FileSource("events/*.jsonl")
    assert spec.streaming is False
    assert spec.dead_letter == "/tmp/dl"
    assert spec.max_event_bytes == 2048
    assert spec.event_time == "field"
    assert [c.id for c in spec.config.connectors] == ["local"]


def test_defaults_follow_the_design() -> None:
    spec = job("--source=generate:count=5")
    assert spec.max_event_bytes == 921_600
    assert spec.event_time == "publish"
    assert spec.dead_letter == "./out/dead-letter"
    assert spec.streaming is False


def test_generate_with_rate_gives_a_streaming_job_spec() -> None:
    spec = job("--source=generate:count=10,rate=5")
    assert spec.source == GenerateSource(count=10, rate=5.0)
    assert spec.streaming is True


def test_streaming_flag_makes_a_bounded_source_streaming() -> None:
    assert job("--source=file:x.jsonl", "--streaming").streaming is True


def test_config_from_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("connectors:\n  - {id: a, type: filesystem, path: /tmp/a}\n  - {id: b, type: gcs, bucket: bkt}\n")
    spec = job("--source=file:x.jsonl", connectors=str(path))
    assert [c.id for c in spec.config.connectors] == ["a", "b"]


def test_a_file_glob_that_matches_nothing_is_a_launch_error() -> None:
    assert "no files match" in launch_error("--source=file:nothing/*.jsonl")


def test_an_unbounded_generator_on_the_local_runner_is_a_launch_error() -> None:
    from pipeline.main import run

    with pytest.raises(LaunchError, match="rate"):
        run(["--source=generate:count=10,rate=5", f"--connectors={CONNECTORS}"])


def test_flags_for_a_portable_runners_java_side_are_passed_on_not_refused() -> None:
    check_unknown_options(["--runner=FlinkRunner", "--checkpointing_interval=60000"])
    with pytest.raises(LaunchError, match="--checkpointing_interval"):
        check_unknown_options(["--runner=DataflowRunner", "--checkpointing_interval=60000"])


@pytest.mark.parametrize("args, waits", [
    ([], True),
    (["--runner=DirectRunner"], True),
    (["--runner=PortableRunner", "--job_endpoint=embed"], True),
    (["--runner=PortableRunner", "--job_endpoint=localhost:8099", "--environment_type=LOOPBACK"], True),
    (["--runner=PrismRunner", "--environment_type=LOOPBACK"], True),
    (["--runner=FlinkRunner", "--flink_master=host:8081", "--environment_type=LOOPBACK"], True),
    (["--runner=PortableRunner", "--job_endpoint=localhost:8099", "--environment_type=PROCESS"], False),
    (["--runner=FlinkRunner", "--flink_master=host:8081"], False),
    (["--runner=DataflowRunner"], False),
])
def test_the_launcher_waits_for_a_run_whose_worker_is_this_process(args: list[str], waits: bool) -> None:
    """A LOOPBACK worker lives in the launcher: returning at once would leave the job without one."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.main import _is_local

    assert _is_local(PipelineOptions(args)) is waits
