"""Connector configuration: pydantic models, loading and launch-time validation.

A config is validated once, at launch, so that a typo fails the `python -m pipeline` command with a message naming
the connector and the field, instead of failing (and being retried forever) inside a worker.

Secrets never leave the config as plain values: fields typed `Secret` keep their reference (`${ENV}`,
`secret:gcp:projects/P/secrets/S/versions/V`, or a literal) until a worker resolves them in `DoFn.setup`
(see `core.secrets`). Every other string field may use `${ENV}`, substituted at launch.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Annotated, Any, Literal, Optional, Union, get_args

import orjson
import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator, model_validator

from core.config import ConfigError, ConnectorBase, Model, Secret, is_secret, nested_models
from sinks.http.partners.base import HttpConnectorBase
from sinks.storage.connector import StorageConnector

__all__ = ["ConfigError", "ConnectorBase", "Connector", "CurrentsConfig", "HttpConnectorBase", "StorageConnector",
           "dumps_public", "load_config", "parse_config", "secret_field_names"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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


class S3Credentials(Model):
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


class GCSCredentials(Model):
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


class CurrentsConfig(Model):
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


@lru_cache(maxsize=1)
def secret_field_names() -> frozenset[str]:
    """Names of every secret field of every connector type (and their nested credential models)."""
    names: set[str] = set()
    todo: list[type[BaseModel]] = list(get_args(get_args(Connector)[0]))
    while todo:
        model = todo.pop()
        for name, info in model.model_fields.items():
            if is_secret(info):
                names.add(name)
            todo += nested_models(info)
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

    def mask(model: Model) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, info in type(model).model_fields.items():
            value = getattr(model, name)
            if value is not None and is_secret(info):
                out[name] = "***"
            elif isinstance(value, Model):
                out[name] = mask(value)
            else:
                out[name] = value
        return out

    return orjson.dumps(mask(connector))
