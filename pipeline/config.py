"""Connector configuration: pydantic models, loading and launch-time validation.

A config is validated once, at launch, so that a typo fails the `python -m pipeline` command with a message naming
the connector and the field, instead of failing (and being retried forever) inside a worker.

Secrets never leave the config as plain values: fields typed `Secret` keep their reference (`${ENV}`,
`secret:gcp:projects/P/secrets/S/versions/V`, or a literal) until a worker resolves them in `DoFn.setup`
(see `pipeline.secrets`). Every other string field may use `${ENV}`, substituted at launch.
"""
from __future__ import annotations

import fnmatch
import os
import re
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

KIB = 1024
MIB = 1024 * 1024


class ConfigError(ValueError):
    """A config problem, worded for the person who wrote the config."""


class _SecretMarker:
    """Annotation marker: the field holds a secret reference, resolved only on workers."""


Secret = Annotated[str, _SecretMarker()]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_GLOB_CHARS = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]+$")
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _check_glob(pattern: str) -> str:
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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConnectorBase(_Model):
    """What every connector has: an id, an event selection, field transforms and batching limits."""

    id: str = Field(pattern=_ID, description="connector id; also the integration id in object keys")
    events: Optional[list[str]] = Field(default=None, description="glob patterns of event types; omitted = all")
    field_transforms: dict[str, Literal["hash", "remove"]] = Field(default_factory=dict)

    @field_validator("events")
    @classmethod
    def _globs(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        if value is None:
            return None
        if not value:
            raise ValueError("empty list selects nothing; omit 'events' to select every event type")
        return [_check_glob(p) for p in value]

    @cached_property
    def _selector(self) -> Optional[re.Pattern[str]]:
        if self.events is None:
            return None
        return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.events))

    def selects(self, event_type: str) -> bool:
        selector = self._selector
        return selector is None or selector.match(event_type) is not None

    def destination(self) -> str:
        """Where the connector delivers, without secrets: for logs and connector listings."""
        raise NotImplementedError


class BatchLimits(_Model):
    """When a batch is cut: count, encoded bytes, or time since its first event, whichever comes first."""

    max_count: int
    max_bytes: int
    flush_seconds: float


class StorageConnector(ConnectorBase):
    prefix: str = "currents"
    format: Literal["avro", "parquet", "jsonl"] = "avro"
    codec: Literal["null", "deflate", "snappy", "zstandard"] = "null"
    cluster: str = Field(default="beam-01", pattern=r"^[A-Za-z0-9_-]+$")
    zone: str = Field(default="us-01", pattern=r"^[A-Za-z0-9_-]+$")
    flush_seconds: float = Field(default=300, gt=0, le=24 * 3600)
    max_events_per_file: int = Field(default=15000, ge=1, le=100_000)
    max_bytes_per_file: int = Field(default=128 * MIB, ge=64 * KIB, le=4096 * MIB)
    shards: int = Field(default=1, ge=1, le=256, description="parallel writers per event type and hour")
    share_lane: bool = Field(default=True, description="share one lane (one encoding) with connectors that would "
                                                       "write the same files; false: a lane of its own, so a slow "
                                                       "or failing store never delays another")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if any(part in ("", ".", "..") for part in value.split("/")) and value:
            raise ValueError(f"bad prefix {value!r}: no empty, '.' or '..' path segments")
        return value

    @property
    def connection_type(self) -> str:
        """The `<connection-type-identifier>` segment of object keys."""
        return "S3"

    def batch_limits(self) -> BatchLimits:
        return BatchLimits(max_count=self.max_events_per_file, max_bytes=self.max_bytes_per_file,
                           flush_seconds=self.flush_seconds)


class FilesystemConnector(StorageConnector):
    type: Literal["filesystem"]
    path: str = Field(min_length=1, description="a local folder; object stores have their own connector types")

    @field_validator("path")
    @classmethod
    def _local(cls, value: str) -> str:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) and not value.startswith("file://"):
            raise ValueError(f"{value!r} is not a local folder; use an s3, gcs or azure_blob connector")
        return value

    @property
    def connection_type(self) -> str:
        return "S3"  # local copies use the S3 layout, so tools written for the bucket work on them

    def destination(self) -> str:
        return os.path.join(self.path, self.prefix)


class S3Credentials(_Model):
    access_key_id: Secret
    secret_access_key: Secret
    session_token: Optional[Secret] = None


class S3Connector(StorageConnector):
    type: Literal["s3"]
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: Optional[str] = None
    endpoint_url: Optional[str] = Field(default=None, pattern=r"^https?://")
    credentials: Optional[S3Credentials] = Field(default=None, description="omitted = boto3's default chain")
    sse: Optional[Literal["AES256", "aws:kms"]] = None
    sse_kms_key_id: Optional[str] = None

    @model_validator(mode="after")
    def _kms(self) -> "S3Connector":
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise ValueError("sse_kms_key_id needs sse: aws:kms")
        return self

    def destination(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class GCSCredentials(_Model):
    service_account_json: Secret = Field(description="the key file's JSON text (usually a secret:gcp: reference)")


class GCSConnector(StorageConnector):
    type: Literal["gcs"]
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
    project: Optional[str] = None
    endpoint: Optional[str] = Field(default=None, pattern=r"^https?://",
                                    description="API endpoint override (an emulator); STORAGE_EMULATOR_HOST works too")
    credentials: Optional[GCSCredentials] = Field(default=None, description="omitted = application default")

    @property
    def connection_type(self) -> str:
        return "GCS"

    def destination(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"


class AzureBlobConnector(StorageConnector):
    type: Literal["azure_blob"]
    container: str = Field(pattern=r"^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){1,62}$")
    connection_string: Optional[Secret] = None
    account_url: Optional[str] = Field(default=None, pattern=r"^https?://")
    account_name: Optional[str] = None
    account_key: Optional[Secret] = None
    sas_token: Optional[Secret] = None

    @model_validator(mode="after")
    def _auth(self) -> "AzureBlobConnector":
        if self.connection_string:
            return self
        if not (self.account_url or self.account_name):
            raise ValueError("set connection_string, or account_name (or account_url) with account_key or sas_token")
        if not (self.account_key or self.sas_token):
            raise ValueError("account_name/account_url needs account_key or sas_token")
        return self

    @property
    def connection_type(self) -> str:
        return "AzureBlob"

    def destination(self) -> str:
        return f"azfs://{self.account_name or self.account_url or 'connection-string'}/{self.container}/{self.prefix}"


class HttpConnectorBase(ConnectorBase):
    """What every analytics partner has: batching, timeouts, retries, parking (the credential grace window)."""

    endpoint: Optional[str] = Field(default=None, pattern=r"^https?://",
                                    description="the partner's URL; overrides the default (and region) of a partner")
    flush_seconds: float = Field(default=5, gt=0, le=3600)
    max_events_per_request: Optional[int] = Field(default=None, ge=1, description="at most the partner's limit")
    max_requests_per_second: Optional[float] = Field(default=None, gt=0, description="per worker")
    max_concurrent_requests: int = Field(default=4, ge=1, le=64, description="requests in flight per batch")
    connect_timeout_seconds: float = Field(default=5, gt=0, le=120)
    read_timeout_seconds: float = Field(default=30, gt=0, le=600)
    retry_attempts: int = Field(default=4, ge=1, le=20, description="attempts inside a bundle before parking")
    backoff_base_seconds: float = Field(default=0.5, ge=0, le=60)
    backoff_cap_seconds: float = Field(default=10, ge=0, le=600)
    probe_interval_seconds: float = Field(default=180, gt=0, le=24 * 3600)
    retry_window_hours: float = Field(default=24, gt=0, le=24 * 30)
    credential_grace_hours: float = Field(default=48, gt=0, le=24 * 30)
    max_parked_events: int = Field(default=100_000, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _within_partner_limits(self) -> "HttpConnectorBase":
        from sinks.http.partners import partner_for

        partner = partner_for(self)
        if self.max_events_per_request and self.max_events_per_request > partner.limits.max_events:
            raise ValueError(f"max_events_per_request: {self.type} takes at most {partner.limits.max_events} events "
                             f"a request")
        return self

    def batch_limits(self) -> BatchLimits:
        """A batch holds up to `max_concurrent_requests` requests' worth, which the deliverer cuts into requests
        within the partner's limits and sends side by side."""
        from sinks.http.partners import partner_for

        limits = partner_for(self).limits
        per_request = self.max_events_per_request or limits.max_events
        return BatchLimits(max_count=per_request * self.max_concurrent_requests,
                           max_bytes=limits.max_request_bytes * self.max_concurrent_requests,
                           flush_seconds=self.flush_seconds)

    def destination(self) -> str:
        from sinks.http.partners import partner_for

        return partner_for(self).url


class HttpConnector(HttpConnectorBase):
    """Any endpoint that speaks the Currents custom-export format."""

    type: Literal["http"]
    endpoint: str = Field(pattern=r"^https?://")
    token: Optional[Secret] = Field(default=None, description="sent as `Authorization: Bearer <token>`")


class HeapConnector(HttpConnectorBase):
    """Heap's Currents webhook: the custom-export format to the URL Heap gives you."""

    type: Literal["heap"]
    endpoint: str = Field(pattern=r"^https?://")
    token: Optional[Secret] = None


class AmplitudeConnector(HttpConnectorBase):
    type: Literal["amplitude"]
    api_key: Secret
    region: Literal["us", "eu"] = "us"


class MixpanelConnector(HttpConnectorBase):
    type: Literal["mixpanel"]
    project_token: Secret
    api_secret: Optional[Secret] = Field(default=None, description="legacy auth: the API secret as basic-auth user")
    service_account_username: Optional[str] = None
    service_account_secret: Optional[Secret] = None
    project_id: Optional[str] = Field(default=None, pattern=r"^[0-9]+$")
    region: Literal["us", "eu", "in"] = "us"

    @model_validator(mode="after")
    def _service_account(self) -> "MixpanelConnector":
        if bool(self.service_account_username) != bool(self.service_account_secret):
            raise ValueError("service_account_username and service_account_secret go together")
        if self.service_account_username and not self.project_id:
            raise ValueError("a service account needs project_id")
        return self


class SegmentConnector(HttpConnectorBase):
    type: Literal["segment"]
    write_key: Secret
    region: Literal["us", "eu"] = "us"


class MParticleConnector(HttpConnectorBase):
    type: Literal["mparticle"]
    api_key: Secret
    api_secret: Secret
    pod: Optional[Literal["us1", "us2", "eu1", "au1"]] = None
    environment: Literal["production", "development"] = "production"


Connector = Annotated[
    Union[FilesystemConnector, S3Connector, GCSConnector, AzureBlobConnector, HttpConnector, HeapConnector,
          AmplitudeConnector, MixpanelConnector, SegmentConnector, MParticleConnector],
    Field(discriminator="type"),
]


class CurrentsConfig(_Model):
    connectors: list[Connector] = Field(min_length=1)

    def connector(self, connector_id: str) -> ConnectorBase:
        for c in self.connectors:
            if c.id == connector_id:
                return c
        raise KeyError(connector_id)


_ADAPTER = TypeAdapter(CurrentsConfig)
CONNECTOR_TYPES = ("filesystem", "s3", "gcs", "azure_blob", "http", "heap", "amplitude", "mixpanel", "segment",
                   "mparticle")


def _read_text(source: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(source) as handle:
            return handle.read().decode("utf-8")
    except Exception as exc:  # any filesystem's own error: report it as a config error with the path
        raise ConfigError(f"--connectors: cannot read {source!r}: {exc}") from exc


def _raw(source: str) -> Any:
    text = source if source.lstrip().startswith(("{", "[")) else _read_text(source)
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON: one parser for both
    except yaml.YAMLError as exc:
        raise ConfigError(f"--connectors: not valid YAML/JSON: {exc}") from exc
    if isinstance(data, list):
        data = {"connectors": data}
    if not isinstance(data, dict):
        raise ConfigError("--connectors: expected a mapping with a 'connectors' list")
    return data


def _connector_name(raw: Any, index: int) -> str:
    try:
        cid = raw["connectors"][index].get("id")
    except (KeyError, IndexError, TypeError, AttributeError):
        cid = None
    return f"connector {cid!r} (connectors[{index}])" if cid else f"connectors[{index}]"


def _explain(exc: ValidationError, raw: Any) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        if len(loc) >= 2 and loc[0] == "connectors" and isinstance(loc[1], int):
            where = _connector_name(raw, loc[1])
            path = [str(p) for p in loc[3:]] if len(loc) > 2 and loc[2] in CONNECTOR_TYPES else [str(p) for p in loc[2:]]
            if err["type"] == "union_tag_invalid":
                msg = f"unknown type {err['input'].get('type')!r}; expected one of {', '.join(CONNECTOR_TYPES)}"
            elif err["type"] == "union_tag_not_found":
                msg = f"missing 'type'; expected one of {', '.join(CONNECTOR_TYPES)}"
            elif err["type"] == "extra_forbidden":
                msg = "unknown field"
            else:
                msg = err["msg"].removeprefix("Value error, ")
            field = f"field '{'.'.join(path)}'" if path else "connector"
            lines.append(f"{where}: {field}: {msg}")
        else:
            lines.append(f"{'.'.join(str(p) for p in loc) or 'config'}: {err['msg']}")
    return "invalid connector config:\n  " + "\n  ".join(lines)


def _is_secret(info: Any) -> bool:
    """A field typed `Secret` or `Optional[Secret]`."""
    if any(isinstance(m, _SecretMarker) for m in info.metadata):
        return True
    return any(get_origin(arg) is Annotated and any(isinstance(m, _SecretMarker) for m in get_args(arg)[1:])
               for arg in get_args(info.annotation))


def _nested_models(info: Any) -> list[type[BaseModel]]:
    args = get_args(info.annotation) or (info.annotation,)
    return [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]


@lru_cache(maxsize=1)
def secret_field_names() -> frozenset[str]:
    """Names of every secret field of every connector type (and their nested credential models)."""
    names: set[str] = set()
    todo: list[type[BaseModel]] = list(get_args(get_args(Connector)[0]))
    while todo:
        model = todo.pop()
        for name, info in model.model_fields.items():
            if _is_secret(info):
                names.add(name)
            todo += _nested_models(info)
    return frozenset(names)


def _substitute_env(value: Any, where: str, field: str, environ: dict[str, str]) -> Any:
    """Replace `${ENV}` in every non-secret string of a raw connector, before validation (so patterns see the
    substituted value); secret fields keep their references for the workers."""
    if isinstance(value, dict):
        return {k: v if k in secret_field_names() else
                _substitute_env(v, where, f"{field}.{k}" if field else str(k), environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, where, field, environ) for v in value]
    if isinstance(value, str) and "${" in value:
        def lookup(match: re.Match[str]) -> str:
            if match.group(1) not in environ:
                raise ConfigError(f"{where}: field '{field}': environment variable {match.group(1)} is not set")
            return environ[match.group(1)]
        return _ENV_REF.sub(lookup, value)
    return value


def parse_config(data: Any, environ: Optional[dict[str, str]] = None) -> CurrentsConfig:
    """Validate a parsed config document; raises ConfigError with one line per problem."""
    environ = dict(os.environ) if environ is None else environ
    if isinstance(data, dict) and isinstance(data.get("connectors"), list):
        data = {**data, "connectors": [
            _substitute_env(c, _connector_name(data, i), "", environ) if isinstance(c, dict) else c
            for i, c in enumerate(data["connectors"])]}
    try:
        config = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, data)) from None
    seen: dict[str, int] = {}
    for index, c in enumerate(config.connectors):
        if c.id in seen:
            raise ConfigError(f"connector {c.id!r} (connectors[{index}]): field 'id': duplicate id "
                              f"(also connectors[{seen[c.id]}])")
        seen[c.id] = index
    return config


def load_config(source: str, environ: Optional[dict[str, str]] = None) -> CurrentsConfig:
    """Load `--connectors`: inline JSON, or a YAML/JSON file on any Beam filesystem."""
    if not source or not source.strip():
        raise ConfigError("--connectors is required: a path to a YAML/JSON file, or inline JSON")
    return parse_config(_raw(source), environ)


def dumps_public(connector: ConnectorBase) -> bytes:
    """The connector as JSON with every secret field masked, for logs and `currents validate`."""

    def mask(model: _Model) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, info in type(model).model_fields.items():
            value = getattr(model, name)
            if value is not None and _is_secret(info):
                out[name] = "***"
            elif isinstance(value, _Model):
                out[name] = mask(value)
            else:
                out[name] = value
        return out

    return orjson.dumps(mask(connector))
