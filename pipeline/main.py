"""`python -m pipeline`: validate everything at launch, build the graph, run it.

On a local runner the run is awaited, `--metrics_out` written and a per-connector summary logged; on Dataflow (or
any remote runner) the job is submitted and the launcher returns, as a Flex Template launcher must.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import sys
from dataclasses import replace
from typing import Any, NamedTuple, NoReturn, Optional, Sequence, TextIO

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser

from core.deadletters import (CREDENTIALS_EXPIRED, DRAINED, EXPIRED, PARKING_FULL, REJECTED, TOO_LARGE, UNREADABLE,
                              WRITE_FAILED)
from core.metrics import PIPELINE
from core.progress import TALLY, Reporter
from core.runs import new_run_token
from core.secrets import env_names, install_log_redaction, redact
from pipeline.config import ConfigError, StorageConnector, dumps_public, load_config, secret_refs
from pipeline.graph import JobSpec, build_pipeline
from pipeline.metrics import collect, progress_line, summary_lines
from pipeline.options import EVENT_TIME_MODES, CurrentsOptions
from pipeline.sources import (
    DeadLetterSource,
    FileSource,
    GenerateSource,
    KafkaSource,
    PubSubSource,
    SourceSpec,
    parse_source,
)
from sinks.storage.formats import check_codec
from sinks.storage.schemas import known_event_types

_LOG = logging.getLogger("pipeline")
LOCAL_RUNNERS = {None, "DirectRunner", "direct", "FnApiRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"}


# Exit codes of `python -m pipeline` (README "Exit codes"). 1 stays Python's own: a crash, which is a bug.
EXIT_OK = 0  # every valid event was delivered (bad input lines are dead letters, as expected)
EXIT_LAUNCH = 2  # the run could not start: a bad option or config, said in one line
EXIT_DESTINATION = 3  # a destination failed: some events are dead letters for a connector (see the summary)
EXIT_UNREADABLE = 4  # some input could not be read (dead letters with reason unreadable name the file and offset)
DESTINATION_FAILURES = (WRITE_FAILED, EXPIRED, CREDENTIALS_EXPIRED, PARKING_FULL, DRAINED, REJECTED, TOO_LARGE)


def exit_code(metrics: dict[str, dict[str, Any]]) -> int:
    """What a finished local run's counters say: a destination failure first, then input not read whole."""
    top = metrics.get(PIPELINE, {})
    if any(top.get(f"dead_letters.{reason}") for reason in DESTINATION_FAILURES):
        return EXIT_DESTINATION
    if top.get(f"dead_letters.{UNREADABLE}") or top.get(UNREADABLE):
        return EXIT_UNREADABLE
    return EXIT_OK


class LaunchError(ValueError):
    """A bad option or config: reported in one message before any work starts."""


class _LaunchParser(_BeamArgumentParser):
    """Beam's option parser, but a bad value is one line (a LaunchError), not Beam's 140-line usage."""

    def error(self, message: str) -> NoReturn:
        raise LaunchError(message)


def _all_options_parser() -> _BeamArgumentParser:
    parser = _LaunchParser(allow_abbrev=False)
    for cls in PipelineOptions.__subclasses__():
        cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's own way of collecting every option
    return parser


def _options_help(cls: type[PipelineOptions], title: str) -> str:
    parser = argparse.ArgumentParser(add_help=False, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     usage=argparse.SUPPRESS)
    cls._add_argparse_args(parser)  # noqa: SLF001
    return parser.format_help().replace("options:", title, 1)


def print_help(out: TextIO) -> None:
    """The job's own options first, with their defaults; then Beam's, which every runner takes."""
    out.write("usage: python -m pipeline --source=KIND:ARGS --connectors=CONFIG [options] [Beam options]\n\n")
    out.write(_options_help(CurrentsOptions, "beam-currents options:"))
    out.write("\nBeam's own pipeline options follow (--runner, --streaming, and those of Dataflow, Flink and the "
              "other runners):\n\n")
    _all_options_parser().print_help(out)


# Portable runners hand flags the Python SDK does not know to their Java job server (e.g. Flink's
# --checkpointing_interval): there an unknown flag may be meant for the runner.
FORWARDING_RUNNERS = {"FlinkRunner", "PortableRunner", "SparkRunner"}


def check_unknown_options(argv: Sequence[str]) -> None:
    for arg in argv:
        if arg.startswith("-") and not arg.startswith("--") and arg != "-h" and not arg[1:2].isdigit():
            name = arg.split("=", 1)[0]
            raise LaunchError(f"single-dash option {name!r}: options take two dashes (-{name})")
    known, unknown = _all_options_parser().parse_known_args(list(argv))
    flags = [a.split("=", 1)[0] for a in unknown if a.startswith("--")]
    forwarding = getattr(known, "runner", None) in FORWARDING_RUNNERS
    if flags and forwarding:
        _LOG.warning("options not known to the Python SDK, passed on to the %s: %s", known.runner, ", ".join(flags))
        return
    if flags:
        raise LaunchError(f"unknown option(s): {', '.join(flags)} (see `python -m pipeline --help`)")
    stray = [a for a in unknown if not a.startswith("-")]
    if stray and not forwarding:  # with a forwarding runner it may be the value of a runner's own flag
        raise LaunchError(f"unexpected argument {stray[0]!r}: every option is --name=value "
                          "(see `python -m pipeline --help`)")


def _kafka_config(raw: Optional[str]) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    try:
        config = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise LaunchError(f"--kafka_consumer_config: not JSON: {exc}") from None
    if not isinstance(config, dict) or not all(isinstance(v, (str, int, bool)) for v in config.values()):
        raise LaunchError('--kafka_consumer_config: expected a JSON object of properties, '
                          'e.g. {"group.id": "currents"}')
    return tuple((str(k), str(v).lower() if isinstance(v, bool) else str(v)) for k, v in config.items())


def _source(options: PipelineOptions) -> SourceSpec:
    """`--source` plus the options of its kind, checked at launch."""
    opts = options.view_as(CurrentsOptions)
    try:
        source = parse_source(opts.source)
    except ValueError as exc:
        raise LaunchError(str(exc)) from None
    if isinstance(source, PubSubSource):
        id_label = opts.pubsub_id_label
        if id_label and options.view_as(StandardOptions).runner not in ("DataflowRunner", "dataflow"):
            _LOG.warning("--pubsub_id_label is only honoured by Dataflow; ignored on this runner")
            id_label = None
        return replace(source, timestamp_attribute=opts.pubsub_timestamp_attribute, id_label=id_label)
    if isinstance(source, KafkaSource):
        if not opts.kafka_expansion_service and not shutil.which("java"):
            raise LaunchError(
                "--source=kafka: needs Java (a JRE 11 or newer on PATH) to start Beam's Kafka expansion service, "
                "and none was found. Install one (e.g. `apt-get install default-jre-headless`), or pass "
                "--kafka_expansion_service=HOST:PORT of an expansion service you run yourself.")
        return replace(source, consumer_config=_kafka_config(opts.kafka_consumer_config),
                       expansion_service=opts.kafka_expansion_service)
    if isinstance(source, (FileSource, DeadLetterSource)):
        try:
            found = FileSystems.match([source.glob])[0].metadata_list
        except Exception as exc:  # noqa: BLE001 - any filesystem's error (bad bucket, no credentials): at launch
            raise LaunchError(f"--source={opts.source}: cannot list files: {exc}") from None
        if not found:
            raise LaunchError(f"--source={opts.source}: no files match {source.glob!r}")
    return source


def job_from_options(options: PipelineOptions) -> JobSpec:
    opts = options.view_as(CurrentsOptions)
    source = _source(options)
    if opts.event_time not in EVENT_TIME_MODES:
        raise LaunchError(f"--event_time={opts.event_time!r}: expected one of {', '.join(EVENT_TIME_MODES)}")
    if opts.max_event_bytes is None or opts.max_event_bytes < 1:
        raise LaunchError("--max_event_bytes must be a positive number of bytes")
    if not opts.dead_letter:
        raise LaunchError("--dead_letter must be a folder path")
    try:
        config = load_config(opts.connectors or "")
    except ConfigError as exc:
        raise LaunchError(str(exc)) from None
    for connector in config.connectors:
        if isinstance(connector, StorageConnector):
            try:
                check_codec(connector.format, connector.codec)
            except ValueError as exc:
                raise LaunchError(f"connector {connector.id!r}: field 'codec': {exc}") from None
    streaming = bool(options.view_as(StandardOptions).streaming) or not source.bounded
    if opts.bounded_hold_minutes is None or not 0 < opts.bounded_hold_minutes <= 7 * 24 * 60:
        raise LaunchError("--bounded_hold_minutes must be a number of minutes above 0 (at most a week)")
    return JobSpec(source=source, config=config, dead_letter=opts.dead_letter, max_event_bytes=opts.max_event_bytes,
                   event_time=opts.event_time, streaming=streaming, run_token=new_run_token(),
                   bounded_hold_seconds=opts.bounded_hold_minutes * 60)


def _runner(options: PipelineOptions, streaming: bool):  # noqa: ANN202 - a Beam runner or its name
    """Local runs get a named local runner: the DirectRunner's first try (Prism) downloads a binary from the
    internet."""
    name = options.view_as(StandardOptions).runner
    if name not in LOCAL_RUNNERS:
        return name
    if streaming:
        from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner

        return BundleBasedDirectRunner()
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return FnApiRunner()


def _is_local(options: PipelineOptions) -> bool:
    """Runs whose workers are this process, which the launcher waits for: the local runners, the embedded portable
    runner, and any portable runner (Prism, a Flink job server) with `--environment_type=LOOPBACK`, whose SDK
    worker lives here: returning at once would leave the job without a worker."""
    from apache_beam.options.pipeline_options import PortableOptions

    runner = options.view_as(StandardOptions).runner
    portable = options.view_as(PortableOptions)
    return runner in LOCAL_RUNNERS or (runner in FORWARDING_RUNNERS | {"PrismRunner"} and (
        portable.job_endpoint == "embed" or (portable.environment_type or "").upper() == "LOOPBACK"))


def tune_collector() -> None:
    """Make CPython's cyclic collector cheap for a local run, whose worker is this process.

    Bundles allocate millions of short-lived dicts, so the collector runs constantly, and its older generations
    walk every object Beam and the client libraries created at start-up (several hundred thousand, alive until
    exit). Freezing those and collecting the young generation less often took about 7% off the benchmark job.
    `python -m pipeline` also pauses the collector while importing; this turns it back on.
    """
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    gc.enable()


def _write_metrics(path: str, metrics: dict) -> None:
    with FileSystems.create(path, mime_type="application/json") as handle:
        handle.write(orjson.dumps(metrics, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def _check_writable(option: str, path: Optional[str], folder: bool) -> None:
    """A local `--dead_letter` folder or `--metrics_out` file can be written: said at launch, not after the run."""
    if not path or "://" in path:
        return  # an object store: its client says at the first write (the launcher may not hold its credentials)
    target = path if folder else (os.path.dirname(os.path.abspath(path)) or ".")
    if not folder and os.path.isdir(path):
        raise LaunchError(f"{option}={path}: is a folder; give a file path")
    try:
        os.makedirs(target, exist_ok=True)
    except OSError as exc:
        raise LaunchError(f"{option}={path}: cannot create {target!r}: {exc.strerror}") from None
    if not os.path.isdir(target):
        raise LaunchError(f"{option}={path}: {target!r} is not a folder")
    if not os.access(target, os.W_OK | os.X_OK):
        raise LaunchError(f"{option}={path}: {target!r} is not writable")


def _check_local_secrets(job: JobSpec) -> None:
    """On a local run the launcher's environment is the worker's: a `${ENV}` secret that is not set fails here."""
    for ref in secret_refs(job.config):
        missing = [name for name in env_names(ref.ref) if name not in os.environ]
        if missing:
            raise LaunchError(f"connector {ref.connector!r}: field {ref.field!r}: environment variable {missing[0]} "
                              "is not set")


def _warn_unmatched_selections(job: JobSpec) -> None:
    for connector in job.config.connectors:
        if connector.events is not None and not any(connector.selects(t) for t in known_event_types()):
            _LOG.warning("connector %s: events %s match no catalogue event type; it receives only events of types "
                         "outside the catalogue that match", connector.id, ", ".join(connector.events))


def _make_pipeline(options: PipelineOptions, streaming: bool) -> beam.Pipeline:
    try:
        return beam.Pipeline(runner=_runner(options, streaming), options=options)
    except ValueError as exc:  # Beam's "Unexpected pipeline runner: X. Valid values are ..."
        raise LaunchError(f"--runner: {' '.join(str(exc).split())}") from None


class RunReport(NamedTuple):
    result: Any  # Beam's PipelineResult
    metrics: dict[str, dict[str, Any]]  # every counter of a local run; empty for a submitted one
    exit_code: int


def run(argv: Optional[Sequence[str]] = None) -> RunReport:
    argv = list(sys.argv[1:] if argv is None else argv)
    check_unknown_options(argv)
    options = PipelineOptions(argv)
    job = job_from_options(options)
    if job.streaming:
        options.view_as(StandardOptions).streaming = True
    local = _is_local(options)
    opts = options.view_as(CurrentsOptions)
    pipeline = _make_pipeline(options, job.streaming)  # a bad --runner is said before anything is made
    if local:
        _check_writable("--dead_letter", job.dead_letter, folder=True)
        _check_writable("--metrics_out", opts.metrics_out, folder=False)
        _check_local_secrets(job)
    _warn_unmatched_selections(job)
    for connector in job.config.connectors:
        _LOG.info("connector %s: %s", connector.id, dumps_public(connector).decode())
    if local and isinstance(job.source, GenerateSource) and job.source.rate is not None:
        raise LaunchError("--source=generate:...,rate=R is unbounded (PeriodicImpulse, a splittable DoFn), which the "
                          "local streaming runner cannot run; drop rate= for a local run, or use Dataflow or Flink")
    try:
        build_pipeline(pipeline, job)
    except (RuntimeError, OSError, ValueError) as exc:
        if not isinstance(job.source, KafkaSource):
            raise
        # The cross-language read is expanded here, by a Java service Beam starts from a jar it downloads.
        raise LaunchError(f"--source=kafka: cannot expand Beam's Kafka read ({exc}). Run an expansion service and "
                          "pass --kafka_expansion_service=HOST:PORT, or stage Beam's io expansion-service jar as "
                          "the message says.") from None
    if local:
        tune_collector()
    else:
        gc.enable()
    if not local:
        try:
            result = pipeline.run()
        except Exception as exc:  # noqa: BLE001 - whatever stops a submission is said in one line
            # A job server or jar that cannot be fetched or started, an endpoint that does not answer (gRPC's
            # FutureTimeoutError has no message at all).
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise LaunchError(f"--runner={options.view_as(StandardOptions).runner}: cannot submit the job: "
                              f"{first.strip()}") from None
        _LOG.info("job submitted; not waiting for it (state %s)", result.state)
        return RunReport(result, {}, EXIT_OK)
    TALLY.clear()
    with Reporter(lambda tally, seconds: _LOG.info("%s", progress_line(tally, seconds))):
        result = pipeline.run()  # a local runner runs the whole job here (FnApiRunner) or from here on
        result.wait_until_finish()
    metrics = collect(result)
    if opts.metrics_out:
        _write_metrics(opts.metrics_out, metrics)
    code = exit_code(metrics)
    for line in summary_lines(metrics, job.config.connectors, job.dead_letter):
        _LOG.log(logging.WARNING if code != EXIT_OK else logging.INFO, "%s", line)
    return RunReport(result, metrics, code)


def main(argv: Optional[Sequence[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # Beam's INFO chatter would bury the summary
    install_log_redaction()
    args = list(sys.argv[1:] if argv is None else argv)
    if "--help" in args or "-h" in args:
        print_help(sys.stdout)
        return
    try:
        report = run(args)
    except LaunchError as exc:
        sys.stderr.write(f"error: {redact(str(exc))}\n")
        raise SystemExit(EXIT_LAUNCH) from None
    if report.exit_code != EXIT_OK:
        raise SystemExit(report.exit_code)
