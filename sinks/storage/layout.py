"""Object keys, compatible with the reference layout (docs/object-layout.md):

<prefix>/dataexport.<cluster>.<S3|GCS|AzureBlob>.integration.<id>/event_type=<type>/date=<YYYY-MM-DD-HH>/
    <schema id>/<zone>/dataexport.<cluster>.<S3|GCS|AzureBlob>.integration.<id>+<partition>+<offset>.<ext>

partition = the writer shard; offset = run token × 10⁶ + the batch's sequence number for its key, so offsets are
unique and increasing within a folder, a retried batch gets the same key, and a restarted job (new run token, at
launch time) never overwrites an earlier run's files.
"""
from __future__ import annotations

from core.config import MAX_EVENT_TYPE_LENGTH
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


# The widest values a key's parts take: an event type of the longest length parse accepts, a schema id, a replay's
# partition past 256 shards, an offset from a millisecond run token with a random part, the longest extension.
_WIDEST_SCHEMA_ID, _WIDEST_PARTITION, _WIDEST_OFFSET, _LONGEST_EXTENSION = 99_999, 99_999, 10**25 - 1, "jsonl.gz"


def longest_key(connector: StorageConnector) -> str:
    """The longest object key this connector can write, for checking at launch against the store's limits."""
    return object_key(connector, "x" * MAX_EVENT_TYPE_LENGTH, "9999-12-31-23", _WIDEST_SCHEMA_ID, _WIDEST_PARTITION,
                      _WIDEST_OFFSET, _LONGEST_EXTENSION)
