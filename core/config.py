"""What every connector's config has, and the pieces connector models are built from.

Each store (`sinks/storage/stores/<name>.py`) and each partner (`sinks/http/partners/<name>.py`) declares its own
pydantic model on these bases; `pipeline.config` finds them and builds the `Connector` union from them. Secrets
never leave a config as plain values: fields typed `Secret` keep their reference (`${ENV}`,
`secret:gcp:projects/P/secrets/S/versions/V`, or a literal) until a worker resolves them (`core.secrets`).
"""
from __future__ import annotations

import fnmatch
import re
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Hashable, Literal, Optional, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator

KIB = 1024
MIB = 1024 * 1024


class ConfigError(ValueError):
    """A config problem, worded for the person who wrote the config."""


class _SecretMarker:
    """Annotation marker: the field holds a secret reference, resolved only on workers."""


Secret = Annotated[str, _SecretMarker()]

_GLOB_CHARS = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")
CONNECTOR_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_EVENT_TYPE_LENGTH = 200  # an event type is an object-key segment: parse refuses longer ones
REQUIRED_FIELDS = frozenset({"id", "event_type", "time"})  # every event has them; nothing may rewrite them


def check_glob(pattern: str) -> str:
    if not pattern or not _GLOB_CHARS.match(pattern):
        raise ValueError(
            f"bad glob {pattern!r}: use event type names with *, ? and [..] (e.g. 'users.messages.email.*')")
    depth = 0
    for ch in pattern:
        depth += ch == "["
        depth -= ch == "]"
        if depth not in (0, 1):
            raise ValueError(f"bad glob {pattern!r}: unbalanced brackets")
    if depth:
        raise ValueError(f"bad glob {pattern!r}: unbalanced brackets")
    return pattern


def is_secret(info: Any) -> bool:
    """A field typed `Secret` or `Optional[Secret]`."""
    if any(isinstance(m, _SecretMarker) for m in info.metadata):
        return True
    return any(get_origin(arg) is Annotated and any(isinstance(m, _SecretMarker) for m in get_args(arg)[1:])
               for arg in get_args(info.annotation))


def nested_models(info: Any) -> list[type[BaseModel]]:
    """The pydantic models a field holds (a credentials block, say)."""
    args = get_args(info.annotation) or (info.annotation,)
    return [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]


def is_numeric(info: Any) -> bool:
    """An int or float field (or Optional of one), where pydantic would take `true` as 1."""
    annotation = info.annotation
    options = [a for a in get_args(annotation) if a is not type(None)] if get_origin(annotation) is Union else \
        [annotation]
    return any(a in (int, float) for a in options)


class Model(BaseModel):
    """Every config model: unknown fields are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchLimits(Model):
    """When a batch is cut: count, encoded bytes, or time since its first event, whichever comes first."""

    max_count: int
    max_bytes: int
    flush_seconds: float


class ConnectorBase(Model):
    """What every connector has: an id, an event selection, field transforms and batching limits.

    A concrete connector model adds `type: Literal["<its type>"]` and its own fields."""

    if TYPE_CHECKING:
        type: str  # every concrete model declares `type: Literal["<its type>"]`

    id: str = Field(pattern=CONNECTOR_ID, description="connector id; also the integration id in object keys")
    events: Optional[list[str]] = Field(default=None, description="glob patterns of event types; omitted = all")
    field_transforms: dict[str, Literal["hash", "remove"]] = Field(default_factory=dict)
    # Holding a destination that keeps failing (sinks/parking.py), the same for stores and partners:
    probe_interval_seconds: float = Field(default=180, gt=0, le=24 * 3600, description="between two probes")
    retry_window_hours: float = Field(default=24, gt=0, le=24 * 30, description="held on errors, then expired")
    credential_grace_hours: float = Field(default=48, gt=0, le=24 * 30,
                                          description="held while credentials are refused, then expired")
    max_parked_events: int = Field(default=100_000, ge=1, le=10_000_000, description="held at most; the rest "
                                                                                      "are parking_full")

    @field_validator("field_transforms")
    @classmethod
    def _not_required_fields(cls, value: dict[str, str]) -> dict[str, str]:
        touched = sorted(REQUIRED_FIELDS & value.keys())
        if touched:
            raise ValueError(f"{', '.join(touched)} cannot be transformed: every connector needs an event's "
                             f"{', '.join(sorted(REQUIRED_FIELDS))} as they are (routing, file names, dedupe)")
        return value

    @field_validator("events")
    @classmethod
    def _globs(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        if value is None:
            return None
        if not value:
            raise ValueError("empty list selects nothing; omit 'events' to select every event type")
        return [check_glob(p) for p in value]

    @cached_property
    def _selector(self) -> Optional[re.Pattern[str]]:
        if self.events is None:
            return None
        return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.events))

    def selects(self, event_type: str) -> bool:
        selector = self._selector
        return selector is None or selector.match(event_type) is not None

    def shard_count(self) -> int:
        """Parallel batches per event type and hour (storage connectors have a `shards` field)."""
        return 1

    def batch_limits(self) -> BatchLimits:
        raise NotImplementedError

    def sharing_key(self) -> Optional[Hashable]:
        """What makes this connector's batches what they are, for connectors that can share one lane
        (`core.lanes`); None for a connector that never shares."""
        return None

    def destination(self) -> str:
        """Where the connector delivers, without secrets: for logs and connector listings."""
        raise NotImplementedError
