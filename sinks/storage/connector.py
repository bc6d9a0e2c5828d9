"""What every storage connector has: where files go in the bucket (prefix, cluster, zone), their format and codec,
when a file is cut, and how many writers share an event type's hour. Each store's own model (its file under
`sinks/storage/stores/`) adds where the bucket is and how to reach it."""
from __future__ import annotations

import re
from typing import Hashable, Literal, Optional

from pydantic import Field, field_validator

from core.config import KIB, MIB, BatchLimits, ConnectorBase

# Characters every store takes in a key as they are (S3's "safe" set, less `*` and `'`, plus `=` and `@`).
_PREFIX_CHARS = re.compile(r"[A-Za-z0-9/._=+@,!~()-]")


class StorageConnector(ConnectorBase):
    prefix: str = "currents"
    format: Literal["avro", "parquet", "jsonl"] = "avro"
    codec: Literal["null", "deflate", "snappy", "zstandard"] = "null"
    cluster: str = Field(default="beam-01", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    zone: str = Field(default="us-01", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    flush_seconds: float = Field(default=300, gt=0, le=24 * 3600)
    max_events_per_file: int = Field(default=15000, ge=1, le=100_000)
    max_bytes_per_file: int = Field(default=128 * MIB, ge=64 * KIB, le=4096 * MIB)
    shards: int = Field(default=1, ge=1, le=256, description="parallel writers per event type and hour")
    connect_timeout_seconds: float = Field(default=10, gt=0, le=300)
    read_timeout_seconds: float = Field(default=120, gt=0, le=3600)
    retry_attempts: int = Field(default=5, ge=1, le=20, description="attempts of a put, by the store's own SDK "
                                                                  "retry policy, before the file is held")
    share_lane: bool = Field(default=True, description="share one lane (one encoding) with connectors that would "
                                                       "write the same files; false: a lane of its own, so a slow "
                                                       "or failing store never delays another")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if any(part in ("", ".", "..") for part in value.split("/")) and value:
            raise ValueError(f"bad prefix {value!r}: no empty, '.' or '..' path segments")
        bad = sorted(set(_PREFIX_CHARS.sub("", value)))
        if bad:
            raise ValueError(f"bad prefix {value!r}: {''.join(bad)!r} cannot be in an object key everywhere; use "
                             "letters, digits, '/' and . _ - = + @ , ! ~ ( )")
        return value

    @property
    def connection_type(self) -> str:
        """The `<connection-type-identifier>` segment of object keys."""
        return "S3"

    def shard_count(self) -> int:
        return self.shards

    def batch_limits(self) -> BatchLimits:
        return BatchLimits(max_count=self.max_events_per_file, max_bytes=self.max_bytes_per_file,
                           flush_seconds=self.flush_seconds)

    def sharing_key(self) -> Optional[Hashable]:
        """Connectors whose files would be byte for byte the same share a lane (`core.lanes`)."""
        if not self.share_lane:
            return None
        limits = self.batch_limits()
        return (self.format, self.codec, tuple(sorted(self.field_transforms.items())),
                limits.max_count, limits.max_bytes, limits.flush_seconds, self.shards)
