"""Connector configuration: pydantic models, loading and launch-time validation.

A config is validated once, at launch, so that a typo fails the `python -m pipeline` command with a message naming
the connector and the field, instead of failing (and being retried forever) inside a worker.

Secrets never leave the config as plain values: fields typed `Secret` keep their reference (`${ENV}`,
`secret:gcp:projects/P/secrets/S/versions/V`, or a literal) until a worker resolves them in `DoFn.setup`
(see `core.secrets`). Every other string field may use `${ENV}`, substituted at launch.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import re
from functools import lru_cache
from typing import Annotated, Any, Optional, Sequence, Union, get_args

import orjson
import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from core.config import ConfigError, ConnectorBase, Model, is_secret, nested_models
from sinks.http.partners.base import HttpConnectorBase
from sinks.storage.connector import StorageConnector

__all__ = ["ConfigError", "ConnectorBase", "Connector", "CurrentsConfig", "HttpConnectorBase", "StorageConnector",
           "dumps_public", "load_config", "parse_config", "secret_field_names"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# Where connector types live: each module of these packages that defines a connector model is one type.
CONNECTOR_PACKAGES = ("sinks.storage.stores", "sinks.http.partners")


def _connector_type(model: type) -> Optional[str]:
    """The `type` literal of a concrete connector model, or None for a base or helper class."""
    if not (isinstance(model, type) and issubclass(model, ConnectorBase)):
        return None
    info = model.model_fields.get("type")
    args = get_args(info.annotation) if info is not None else ()
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


def discover_connector_models(packages: Sequence[str] = CONNECTOR_PACKAGES) -> tuple[type[ConnectorBase], ...]:
    """Every connector model the store and partner modules declare, stores first, each package in module order;
    a model is found in the module that defines it (so a subclass re-exported elsewhere is not counted twice)."""
    found: dict[str, type[ConnectorBase]] = {}
    for package_name in packages:
        package = importlib.import_module(package_name)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            module = importlib.import_module(f"{package_name}.{info.name}")
            for value in vars(module).values():
                kind = _connector_type(value)
                if kind is None or value.__module__ != module.__name__:
                    continue
                if kind in found and found[kind] is not value:
                    raise TypeError(f"connector type {kind!r} is declared twice: {found[kind].__module__} and "
                                    f"{value.__module__}")
                found[kind] = value
    return tuple(found.values())


CONNECTOR_MODELS = discover_connector_models()
CONNECTOR_TYPES = tuple(_connector_type(m) for m in CONNECTOR_MODELS)
Connector = Annotated[Union[CONNECTOR_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]


class CurrentsConfig(Model):
    connectors: list[Connector] = Field(min_length=1)

    def connector(self, connector_id: str) -> ConnectorBase:
        for c in self.connectors:
            if c.id == connector_id:
                return c
        raise KeyError(connector_id)


_ADAPTER = TypeAdapter(CurrentsConfig)


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
            tagged = len(loc) > 2 and loc[2] in CONNECTOR_TYPES  # pydantic puts the union tag in the location
            path = [str(p) for p in loc[3 if tagged else 2:]]
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
    todo: list[type[BaseModel]] = list(CONNECTOR_MODELS)
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
