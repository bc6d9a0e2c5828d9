"""Object keys of the storage export, compatible with the reference layout (docs/object-layout.md)."""
from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import parse_config
from sinks.storage.layout import OFFSET_SPAN, integration, object_key, offset

EMAIL = "users.messages.email.Send"
HOUR = "2024-01-02-03"


def connector(**fields: Any) -> Any:
    return parse_config({"connectors": [fields]}, environ={}).connectors[0]


def test_offset_is_run_token_times_a_million_plus_the_sequence() -> None:
    assert OFFSET_SPAN == 1_000_000
    assert offset(1_700_000_000, 7) == 1_700_000_000_000_007
    assert offset(0, 0) == 0


def test_offsets_of_a_later_run_are_all_greater() -> None:
    assert offset(1001, 0) > offset(1000, OFFSET_SPAN - 1)


def test_s3_key_matches_the_reference_layout() -> None:
    c = connector(id="warehouse", type="s3", bucket="my-bucket", prefix="currents")
    key = object_key(c, EMAIL, HOUR, 1, 0, offset(1_700_000_000, 7), "avro")
    assert key == ("currents/dataexport.beam-01.S3.integration.warehouse/event_type=users.messages.email.Send/"
                   "date=2024-01-02-03/1/us-01/"
                   "dataexport.beam-01.S3.integration.warehouse+0+1700000000000007.avro")


def test_gcs_key_uses_the_gcs_connection_type() -> None:
    c = connector(id="lake", type="gcs", bucket="my-bucket", prefix="exports")
    key = object_key(c, EMAIL, HOUR, 2, 3, 5, "avro")
    assert key == ("exports/dataexport.beam-01.GCS.integration.lake/event_type=users.messages.email.Send/"
                   "date=2024-01-02-03/2/us-01/dataexport.beam-01.GCS.integration.lake+3+5.avro")


def test_azure_key_uses_the_azureblob_connection_type() -> None:
    c = connector(id="az", type="azure_blob", container="exports", connection_string="UseDevelopmentStorage=true")
    key = object_key(c, EMAIL, HOUR, 1, 0, 0, "avro")
    assert key == ("currents/dataexport.beam-01.AzureBlob.integration.az/event_type=users.messages.email.Send/"
                   "date=2024-01-02-03/1/us-01/dataexport.beam-01.AzureBlob.integration.az+0+0.avro")


def test_filesystem_key_uses_the_s3_layout() -> None:
    c = connector(id="local", type="filesystem", path="/tmp/out")
    assert integration(c) == "dataexport.beam-01.S3.integration.local"


@pytest.mark.parametrize("prefix", ["", "/"])
def test_empty_prefix_is_omitted(prefix: str) -> None:
    c = connector(id="warehouse", type="s3", bucket="my-bucket", prefix=prefix)
    key = object_key(c, EMAIL, HOUR, 1, 0, 0, "avro")
    assert key.startswith("dataexport.beam-01.S3.integration.warehouse/event_type=")


def test_nested_prefix_is_kept_as_path_segments() -> None:
    c = connector(id="warehouse", type="s3", bucket="my-bucket", prefix="/team/currents/")
    assert object_key(c, EMAIL, HOUR, 1, 0, 0, "avro").startswith("team/currents/dataexport.")


def test_cluster_and_zone_are_configurable() -> None:
    c = connector(id="warehouse", type="s3", bucket="my-bucket", cluster="prod-07", zone="eu-02")
    key = object_key(c, EMAIL, HOUR, 4, 1, 9, "avro")
    assert key == ("currents/dataexport.prod-07.S3.integration.warehouse/event_type=users.messages.email.Send/"
                   "date=2024-01-02-03/4/eu-02/dataexport.prod-07.S3.integration.warehouse+1+9.avro")


def test_extension_follows_the_format() -> None:
    c = connector(id="warehouse", type="s3", bucket="my-bucket")
    assert object_key(c, EMAIL, HOUR, 1, 0, 0, "parquet").endswith("+0+0.parquet")
    assert object_key(c, EMAIL, HOUR, 1, 0, 0, "jsonl.gz").endswith("+0+0.jsonl.gz")


def test_same_inputs_give_the_same_key() -> None:
    c = connector(id="warehouse", type="s3", bucket="my-bucket")
    assert object_key(c, EMAIL, HOUR, 1, 2, offset(5, 3), "avro") == object_key(c, EMAIL, HOUR, 1, 2, 5_000_003,
                                                                                  "avro")
