"""Object keys, compatible with the reference layout (DESIGN.md §2):

<prefix>/dataexport.<cluster>.<S3|GCS|AzureBlob>.integration.<id>/event_type=<type>/date=<YYYY-MM-DD-HH>/
    <schema id>/<zone>/dataexport.<cluster>.<S3|GCS|AzureBlob>.integration.<id>+<partition>+<offset>.<ext>

partition = the writer shard; offset = run token × 10⁶ + the batch's sequence number for its key, so offsets are
unique and increasing within a folder, a retried batch gets the same key, and a restarted job (new run token, at
launch time) never overwrites an earlier run's files.
"""
from __future__ import annotations

from sinks.storage.connector import StorageConnector

OFFSET_SPAN = 1_000_000


def integration(connector: StorageConnector) -> str:
    return f"dataexport.{connector.cluster}.{connector.connection_type}.integration.{connector.id}"


def offset(run_token: int, seq: int) -> int:
    return run_token * OFFSET_SPAN + seq


def object_key(connector: StorageConnector, event_type: str, hour: str, schema_id: int, partition: int,
               offset_: int, extension: str) -> str:
    name = integration(connector)
    parts = [connector.prefix] if connector.prefix else []
    parts += [name, f"event_type={event_type}", f"date={hour}", str(schema_id), connector.zone,
              f"{name}+{partition}+{offset_}.{extension}"]
    return "/".join(parts)
