"""`python -m pipeline`: validate everything at launch, build the graph, run it.

On a local runner the run is awaited, `--metrics_out` written and a per-connector summary logged; on Dataflow (or
any remote runner) the job is submitted and the launcher returns, as a Flex Template launcher must.
"""
from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence

import apache_beam as beam
import orjson
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions, _BeamArgumentParser

from pipeline.config import ConfigError, StorageConnector, load_config
from pipeline.graph import JobSpec, build_pipeline
from pipeline.metrics import collect, summary_lines
from pipeline.options import EVENT_TIME_MODES, CurrentsOptions
from pipeline.sources import DeadLetterSource, FileSource, GenerateSource, parse_source
from sinks.storage.formats import check_codec

_LOG = logging.getLogger("pipeline")
LOCAL_RUNNERS = {None, "DirectRunner", "direct", "FnApiRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner"}


class LaunchError(ValueError):
    """A bad option or config: reported in one message before any work starts."""


def _all_options_parser() -> _BeamArgumentParser:
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in PipelineOptions.__subclasses__():
        cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's own way of collecting every option
    return parser


def check_unknown_options(argv: Sequence[str]) -> None:
    _, unknown = _all_options_parser().parse_known_args(list(argv))
    flags = [a.split("=", 1)[0] for a in unknown if a.startswith("--")]
    if flags:
        raise LaunchError(f"unknown option(s): {', '.join(flags)} (see `python -m pipeline --help`)")


def job_from_options(options: PipelineOptions) -> JobSpec:
    opts = options.view_as(CurrentsOptions)
    try:
        source = parse_source(opts.source)
    except ValueError as exc:
        raise LaunchError(str(exc)) from None
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
    if isinstance(source, (FileSource, DeadLetterSource)):
        try:
            found = FileSystems.match([source.glob])[0].metadata_list
        except Exception as exc:  # any filesystem's own error (bad bucket, no credentials): said at launch
            raise LaunchError(f"--source={opts.source}: cannot list files: {exc}") from None
        if not found:
            raise LaunchError(f"--source={opts.source}: no files match {source.glob!r}")
    streaming = bool(options.view_as(StandardOptions).streaming) or not source.bounded
    return JobSpec(source=source, config=config, dead_letter=opts.dead_letter, max_event_bytes=opts.max_event_bytes,
                   event_time=opts.event_time, streaming=streaming)


def _runner(options: PipelineOptions, streaming: bool):  # noqa: ANN202 - a Beam runner or its name
    """Local runs get a named local runner: the DirectRunner's first try (Prism) downloads a binary from the internet."""
    name = options.view_as(StandardOptions).runner
    if name not in LOCAL_RUNNERS:
        return name
    if streaming:
        from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner

        return BundleBasedDirectRunner()
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return FnApiRunner()


def _write_metrics(path: str, metrics: dict) -> None:
    with FileSystems.create(path, mime_type="application/json") as handle:
        handle.write(orjson.dumps(metrics, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def run(argv: Optional[Sequence[str]] = None) -> beam.runners.runner.PipelineResult:
    argv = list(sys.argv[1:] if argv is None else argv)
    check_unknown_options(argv)
    options = PipelineOptions(argv)
    job = job_from_options(options)
    if job.streaming:
        options.view_as(StandardOptions).streaming = True
    local = options.view_as(StandardOptions).runner in LOCAL_RUNNERS
    if local and isinstance(job.source, GenerateSource) and job.source.rate is not None:
        raise LaunchError("--source=generate:...,rate=R is unbounded (PeriodicImpulse, a splittable DoFn), which the "
                          "local streaming runner cannot run; drop rate= for a local run, or use Dataflow or Flink")
    pipeline = beam.Pipeline(runner=_runner(options, job.streaming), options=options)
    build_pipeline(pipeline, job)
    result = pipeline.run()
    if not local:
        _LOG.info("job submitted; not waiting for it (state %s)", result.state)
        return result
    result.wait_until_finish()
    metrics = collect(result)
    opts = options.view_as(CurrentsOptions)
    if opts.metrics_out:
        _write_metrics(opts.metrics_out, metrics)
    for line in summary_lines(metrics):
        _LOG.info("%s", line)
    return result


def main(argv: Optional[Sequence[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # Beam's INFO chatter would bury the summary
    try:
        run(argv)
    except LaunchError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None
