"""Pub/Sub and Kafka sources: `--source` parsing, launch checks, and the arguments given to Beam's readers."""
from __future__ import annotations

import json

import pytest
from apache_beam.io.kafka import ReadFromKafka
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.main import LaunchError, job_from_options
from pipeline.sources import KafkaSource, PubSubSource, kafka_read_args, parse_source, pubsub_read_args

CONNECTORS = json.dumps({"connectors": [{"id": "local", "type": "filesystem", "path": "/tmp/currents-out"}]})


def _job(*argv: str):  # noqa: ANN202
    return job_from_options(PipelineOptions([*argv, f"--connectors={CONNECTORS}"]))


@pytest.mark.parametrize("spec, expected", [
    ("pubsub:projects/my-project/subscriptions/currents-sub",
     PubSubSource(subscription="projects/my-project/subscriptions/currents-sub")),
    ("pubsub:projects/my-project/topics/events", PubSubSource(topic="projects/my-project/topics/events")),
    ("kafka:broker-1:9092/events", KafkaSource("broker-1:9092", "events")),
    ("kafka:b1:9092,b2.example.com:9093/raw.events-v2", KafkaSource("b1:9092,b2.example.com:9093", "raw.events-v2")),
])
def test_streaming_sources_parse(spec: str, expected: object) -> None:
    assert parse_source(spec) == expected


@pytest.mark.parametrize("spec", ["pubsub:my-topic", "pubsub:projects/p/queues/q", "pubsub:projects/my-project/topics/",
                                  "kafka:localhost/events", "kafka:localhost:9092", "kafka:host:port/t",
                                  "kafka:localhost:9092/bad topic"])
def test_malformed_streaming_sources_fail_naming_the_option(spec: str) -> None:
    with pytest.raises(ValueError, match="--source"):
        parse_source(spec)


def test_pubsub_and_kafka_sources_make_a_streaming_job() -> None:
    assert _job("--source=pubsub:projects/my-project/topics/events").streaming
    assert _job("--source=kafka:localhost:9092/events").streaming


def test_subscription_reads_with_attributes_and_the_timestamp_attribute() -> None:
    spec = _job("--source=pubsub:projects/my-project/subscriptions/sub-1", "--pubsub_timestamp_attribute=ts").source
    assert pubsub_read_args(spec) == {"subscription": "projects/my-project/subscriptions/sub-1", "topic": None,
                                      "with_attributes": True, "timestamp_attribute": "ts"}


def test_topic_reads_through_a_topic_argument() -> None:
    spec = _job("--source=pubsub:projects/my-project/topics/events").source
    assert pubsub_read_args(spec) == {"subscription": None, "topic": "projects/my-project/topics/events",
                                      "with_attributes": True}


def test_id_label_is_passed_on_dataflow_only() -> None:
    on_dataflow = _job("--source=pubsub:projects/my-project/topics/topic-1", "--pubsub_id_label=mid",
                       "--runner=DataflowRunner").source
    local = _job("--source=pubsub:projects/my-project/topics/topic-1", "--pubsub_id_label=mid").source
    assert pubsub_read_args(on_dataflow)["id_label"] == "mid" and "id_label" not in pubsub_read_args(local)


def test_kafka_reads_bytes_with_the_record_timestamp_and_extra_consumer_config() -> None:
    spec = _job("--source=kafka:b1:9092,b2:9092/events", '--kafka_consumer_config={"group.id": "currents", '
                '"enable.auto.commit": true}', "--kafka_expansion_service=localhost:8097").source
    assert kafka_read_args(spec) == {
        "consumer_config": {"bootstrap.servers": "b1:9092,b2:9092", "auto.offset.reset": "latest",
                            "group.id": "currents", "enable.auto.commit": "true"},
        "topics": ["events"], "timestamp_policy": ReadFromKafka.create_time_policy,
        "expansion_service": "localhost:8097"}


def test_kafka_without_java_fails_at_launch_saying_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(LaunchError, match=r"needs Java .* --kafka_expansion_service"):
        _job("--source=kafka:localhost:9092/events")


def test_kafka_with_an_expansion_service_does_not_need_local_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert _job("--source=kafka:localhost:9092/events", "--kafka_expansion_service=localhost:8097").source


def test_bad_kafka_consumer_config_is_a_launch_error() -> None:
    with pytest.raises(LaunchError, match="--kafka_consumer_config"):
        _job("--source=kafka:localhost:9092/events", "--kafka_consumer_config=[1]",
             "--kafka_expansion_service=localhost:8097")
