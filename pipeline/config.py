"""Connector configuration: pydantic models, loading and launch-time validation.

A config is validated once, at launch, so that a typo fails the `python -m pipeline` command with a message naming
the connector and the field, instead of failing (and being retried forever) inside a worker.

Secrets never leave the config as plain values: fields typed `Secret` keep their reference (`${ENV}`,
`secret:gcp:projects/P/secrets/S/versions/V`, or a literal) until a worker resolves them in `DoFn.setup`
(see `core.secrets`). Every other string field may use `${ENV}`, substituted at launch.
"""
from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, Optional, Sequence, Union, get_args

import orjson
import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from core.config import MIB, ConfigError, ConnectorBase, Model, is_numeric, is_secret, nested_models
from core.secrets import GCP_PREFIX, MASK, env_names, redact, reference_problem
from sinks.http.partners.base import HttpConnectorBase
from sinks.storage.connector import StorageConnector

__all__ = ["ConfigError", "ConnectorBase", "Connector", "CurrentsConfig", "HttpConnectorBase", "StorageConnector",
           "dumps_public", "load_config", "parse_config", "secret_field_names"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


_LOG = logging.getLogger(__name__)
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
CONNECTOR_TYPES: tuple[str, ...] = tuple(str(_connector_type(m)) for m in CONNECTOR_MODELS)
if TYPE_CHECKING:  # what a type checker needs to know of a connector: its base (the union is built at run time)
    Connector = ConnectorBase
else:
    Connector = Annotated[Union[CONNECTOR_MODELS], Field(discriminator="type")]


class CurrentsConfig(Model):
    connectors: list[Connector] = Field(min_length=1)

    def connector(self, connector_id: str) -> ConnectorBase:
        for c in self.connectors:
            if c.id == connector_id:
                return c
        raise KeyError(connector_id)


_ADAPTER = TypeAdapter(CurrentsConfig)


MAX_CONFIG_BYTES = 4 * MIB  # a connector config is a few KiB; anything near this is not one
MAX_CONFIG_NODES = 100_000  # values after aliases are expanded: a "billion laughs" document is refused first
MAX_CONFIG_DEPTH = 32  # nesting of mappings and lists


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses what would silently change a config: a key given twice keeps the last value in plain
    YAML; here it is an error naming the key and both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: explicit keys override merged ones
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                continue  # an unhashable key: the constructor below says what is wrong with it
            if key in seen:
                raise ConfigError(f"--connectors: key {key!r} appears twice in one mapping (lines {seen[key] + 1} "
                                  f"and {key_node.start_mark.line + 1}): remove one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _check_size(root: yaml.Node) -> None:
    """Count the values the document stands for with aliases expanded, and its depth, before building anything:
    aliases make a small text expand exponentially (each node's expanded size is computed once)."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) → (expanded nodes, depth)
    on_path: set[int] = set()

    def measure(node: yaml.Node, level: int = 0) -> tuple[int, int]:
        if level > MAX_CONFIG_DEPTH:  # said before going deeper: the walk never recurses past the limit
            raise ConfigError(f"--connectors: values nested more than {MAX_CONFIG_DEPTH} deep")
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in on_path:
            raise ConfigError("--connectors: a YAML alias refers to a value that contains it (a cycle)")
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        on_path.add(id(node))
        total, depth = 1, 0
        for child in children:
            n, d = measure(child, level + 1)
            total, depth = total + n, max(depth, d)
            if total > MAX_CONFIG_NODES:
                raise ConfigError(f"--connectors: the document expands to more than {MAX_CONFIG_NODES} values "
                                  "(YAML aliases?); a connector config is far smaller")
        on_path.discard(id(node))
        depth += 1 if children else 0
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"--connectors: values nested more than {MAX_CONFIG_DEPTH} deep")
        sizes[id(node)] = (total, depth)
        return total, depth

    measure(root)


def _read_text(source: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(source) as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except Exception as exc:  # any filesystem's own error: report it as a config error with the path
        raise ConfigError(f"--connectors: cannot read {source!r}: {exc}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"--connectors: {source!r} is larger than {MAX_CONFIG_BYTES // MIB} MiB; "
                          "a connector config is a few KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--connectors: {source!r} is not UTF-8 text: {exc}") from None


def is_inline(source: str) -> bool:
    """`--connectors` given as JSON text rather than a path."""
    return source.lstrip().startswith(("{", "["))


def _raw(source: str) -> Any:
    text = source if is_inline(source) else _read_text(source)
    try:
        loader = _Loader(text)  # YAML is a superset of JSON: one parser for both
        try:
            root = loader.get_single_node()
            if root is None:
                data = None
            else:
                _check_size(root)
                data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"--connectors: not valid YAML/JSON: {' '.join(str(exc).split())}") from None
    except RecursionError:  # the YAML parser recurses per level: a document nested hundreds deep ends it
        raise ConfigError(f"--connectors: values nested more than {MAX_CONFIG_DEPTH} deep") from None
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


_MODEL_OF_TYPE = {kind: model for kind, model in zip(CONNECTOR_TYPES, CONNECTOR_MODELS)}


def _refuse_booleans_as_numbers(data: Any) -> None:
    """pydantic takes `true` for 1 in a number field (`max_events_per_file: true` would cut a file per event)."""
    connectors = data.get("connectors") if isinstance(data, dict) else None
    for index, raw in enumerate(connectors if isinstance(connectors, list) else []):
        model = _MODEL_OF_TYPE.get(str(raw.get("type"))) if isinstance(raw, dict) else None
        if model is None:
            continue
        for name, value in raw.items():
            info = model.model_fields.get(name) if isinstance(name, str) else None
            if isinstance(value, bool) and info is not None and is_numeric(info):
                raise ConfigError(f"invalid connector config:\n  {_connector_name(data, index)}: field {name!r}: "
                                  f"expected a number, got {str(value).lower()}")


def parse_config(data: Any, environ: Optional[dict[str, str]] = None) -> CurrentsConfig:
    """Validate a parsed config document; raises ConfigError with one line per problem."""
    environ = dict(os.environ) if environ is None else environ
    if isinstance(data, dict) and isinstance(data.get("connectors"), list):
        data = {**data, "connectors": [
            _substitute_env(c, _connector_name(data, i), "", environ) if isinstance(c, dict) else c
            for i, c in enumerate(data["connectors"])]}
    _refuse_booleans_as_numbers(data)
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
    _check_secret_refs(config)
    return config


def load_config(source: str, environ: Optional[dict[str, str]] = None) -> CurrentsConfig:
    """Load `--connectors`: inline JSON, or a YAML/JSON file on any Beam filesystem."""
    if not source or not source.strip():
        raise ConfigError("--connectors is required: a path to a YAML/JSON file, or inline JSON")
    config = parse_config(_raw(source), environ)
    if is_inline(source):
        for ref in literal_secrets(config):
            _LOG.warning("connector %s: field %s holds a literal secret in an inline --connectors, which the process "
                         "list and the pipeline options show: use ${ENV}, a config file, or secret:gcp:",
                         ref.connector, ref.field)
    return config


def dumps_public(connector: ConnectorBase) -> bytes:
    """The connector as JSON with every secret field masked, for logs and `currents validate`."""

    def mask(model: Model) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, info in type(model).model_fields.items():
            value = getattr(model, name)
            if value is not None and is_secret(info):
                out[name] = MASK
            elif isinstance(value, Model):
                out[name] = mask(value)
            else:
                out[name] = redact(value) if isinstance(value, str) else value  # a URL's user:password@
        return out

    return orjson.dumps(mask(connector))


class SecretRef(NamedTuple):
    connector: str
    field: str  # dotted, e.g. credentials.secret_access_key
    ref: str


def secret_refs(config: CurrentsConfig) -> list[SecretRef]:
    """Every secret field's reference (or literal) in the config, with where it is."""
    found: list[SecretRef] = []

    def walk(connector_id: str, model: Model, path: str) -> None:
        for name, info in type(model).model_fields.items():
            value = getattr(model, name)
            if isinstance(value, Model):
                walk(connector_id, value, f"{path}{name}.")
            elif isinstance(value, str) and is_secret(info):
                found.append(SecretRef(connector_id, f"{path}{name}", value))

    for connector in config.connectors:
        walk(connector.id, connector, "")
    return found


def _check_secret_refs(config: CurrentsConfig) -> None:
    """A malformed reference fails at launch, not on every write of every worker."""
    for ref in secret_refs(config):
        problem = reference_problem(ref.ref)
        if problem is not None:
            raise ConfigError(f"connector {ref.connector!r}: field {ref.field!r}: {problem}")


def literal_secrets(config: CurrentsConfig) -> list[SecretRef]:
    """Secret fields holding a value rather than a `${ENV}` or `secret:gcp:` reference."""
    return [ref for ref in secret_refs(config) if not env_names(ref.ref) and not ref.ref.startswith(GCP_PREFIX)]
