"""Connector types are found, not listed: each store and partner module declares its model, and the config's
union of connector types is built from what the modules declare."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.config import CONNECTOR_MODELS, CONNECTOR_TYPES, discover_connector_models, parse_config
from sinks.http.partners.base import HttpConnectorBase
from sinks.storage.stores import StoreConnector

EXPECTED = {"filesystem", "s3", "gcs", "azure_blob", "http", "heap", "amplitude", "mixpanel", "segment", "mparticle"}


def test_every_store_and_partner_module_declares_one_connector_type() -> None:
    assert set(CONNECTOR_TYPES) == EXPECTED and len(CONNECTOR_TYPES) == len(EXPECTED)


def test_store_types_come_first_so_listings_group_them() -> None:
    kinds = [issubclass(m, StoreConnector) for m in CONNECTOR_MODELS]
    assert kinds == sorted(kinds, reverse=True)


@pytest.mark.parametrize("model", CONNECTOR_MODELS, ids=lambda m: m.__name__)
def test_each_model_is_a_store_that_opens_a_store_or_a_partner_that_names_its_encoder(model: type) -> None:
    if issubclass(model, StoreConnector):
        assert model.open_store is not StoreConnector.open_store
    else:
        assert issubclass(model, HttpConnectorBase)
        assert model.partner_class.type == model.model_fields["type"].annotation.__args__[0]


def test_a_partner_module_dropped_into_a_package_is_a_connector_type(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "more_partners"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "echo.py").write_text(textwrap.dedent('''
        from typing import ClassVar, Literal

        from sinks.http.partners.base import Envelope, HttpConnectorBase, Limits, Partner


        class Echo(Partner):
            type: ClassVar[str] = "echo"
            limits: ClassVar[Limits] = Limits(max_events=10, max_request_bytes=10_000, max_event_bytes=1_000)
            ENVELOPE: ClassVar[Envelope] = Envelope(b"[", b"]")


        class EchoConnector(HttpConnectorBase):
            type: Literal["echo"]
            partner_class: ClassVar[type[Partner]] = Echo
            endpoint: str
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        (model,) = discover_connector_models(("more_partners",))
        assert model.__name__ == "EchoConnector"
        connector = model(id="e", type="echo", endpoint="http://127.0.0.1:1/")
        assert connector.batch_limits().max_count == 10 * connector.max_concurrent_requests
    finally:
        for name in [n for n in sys.modules if n.startswith("more_partners")]:
            del sys.modules[name]


def test_a_type_declared_twice_is_refused_at_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "twice"
    package.mkdir()
    (package / "__init__.py").write_text("")
    body = textwrap.dedent('''
        from typing import Literal

        from sinks.storage.stores import FilesystemConnector


        class Again(FilesystemConnector):
            type: Literal["filesystem"]
    ''')
    (package / "a.py").write_text(body)
    (package / "b.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(TypeError, match="declared twice"):
            discover_connector_models(("twice",))
    finally:
        for name in [n for n in sys.modules if n.startswith("twice")]:
            del sys.modules[name]


def test_an_unknown_type_lists_every_declared_type() -> None:
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config({"connectors": [{"id": "x", "type": "nope"}]})
    assert all(kind in str(caught.value) for kind in EXPECTED)
