"""The job's own pipeline options (README "Options"), plain `add_argument`s so every runner and the Flex Template
see them."""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

DEFAULT_MAX_EVENT_BYTES = 921_600  # 900 KiB: the reference drops larger records
EVENT_TIME_MODES = ("publish", "field")
DEFAULT_BOUNDED_HOLD_MINUTES = 5.0


class CurrentsOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser) -> None:  # noqa: ANN001 - Beam's parser type is private
        parser.add_argument(
            "--source", default=None,
            help="pubsub:projects/P/subscriptions/S | pubsub:projects/P/topics/T | kafka:BOOTSTRAP/TOPIC | "
                 "file:GLOB (JSON lines, .gz ok) | generate:count=N[,rate=R][,seed=S] | deadletter:GLOB")
        parser.add_argument(
            "--connectors", default=None,
            help="connector config: a YAML/JSON file (local, gs://, s3://, azfs://) or inline JSON")
        parser.add_argument(
            "--dead_letter", default="./out/dead-letter",
            help="folder (any Beam filesystem) for dead-letter JSON lines, one per dropped record")
        parser.add_argument(
            "--max_event_bytes", type=int, default=DEFAULT_MAX_EVENT_BYTES,
            help="records larger than this are dead letters (reason oversize) before any connector sees them")
        parser.add_argument(
            "--event_time", default="publish",
            help="which time picks the date= hour: publish (arrival/publish time) or field (the event's `time`)")
        parser.add_argument(
            "--bounded_hold_minutes", type=float, default=DEFAULT_BOUNDED_HOLD_MINUTES,
            help="a bounded run (file, deadletter, generate without rate) holds a failing destination at most this "
                 "long, then its events are expired / credentials_expired dead letters; streaming runs hold for "
                 "retry_window_hours / credential_grace_hours")
        parser.add_argument(
            "--metrics_out", default=None,
            help="write every counter of the run to this JSON file when the run ends")
        parser.add_argument(
            "--pubsub_timestamp_attribute", default=None,
            help="Pub/Sub: the message attribute holding the publish time (RFC 3339 or ms since epoch)")
        parser.add_argument(
            "--pubsub_id_label", default=None,
            help="Pub/Sub: the attribute holding a unique message id, for dedupe (Dataflow only)")
        parser.add_argument(
            "--kafka_consumer_config", default=None,
            help='Kafka: extra consumer properties as a JSON object, e.g. {"group.id": "currents"}')
        parser.add_argument(
            "--kafka_expansion_service", default=None,
            help="Kafka: address (host:port) or jar of a running Java expansion service; default: Beam's own jar")
