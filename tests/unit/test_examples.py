"""The example configs the README points at are valid."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_production_example_validates_without_any_secret_at_hand() -> None:
    config = load_config(str(EXAMPLES / "production.yaml"), environ={})
    assert [c.type for c in config.connectors] == ["s3", "gcs", "amplitude", "segment"]


def test_the_demo_config_validates_once_the_demo_sets_the_receiver_url() -> None:
    config = load_config(str(EXAMPLES / "demo.yaml"), environ={"DEMO_RECEIVER_URL": "http://127.0.0.1:1/currents"})
    assert [c.id for c in config.connectors] == ["warehouse", "marketing", "email-webhook"]


def test_the_local_example_of_the_readme_validates() -> None:
    config = load_config(str(EXAMPLES / "local.yaml"), environ={})
    assert [c.type for c in config.connectors] == ["filesystem", "filesystem"]
