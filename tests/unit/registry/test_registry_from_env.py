"""pistats.registry.from_env: off without a URL, and nothing connects before the first use."""

from __future__ import annotations

import logging

import pytest

from pistats import registry
from pistats.ingest.lambda_handler import service_from_env
from pistats.registry.errors import RegistryUnavailable
from pistats.registry.store import Registry


def test_no_url_no_registry():
    assert registry.from_env({}) is None


def test_a_registry_is_built_without_connecting():
    # Port 1 refuses connections: building must not try; the first use fails as unavailable.
    built = registry.from_env({"PISTATS_REGISTRY_URL": "postgresql://u:hunter2@127.0.0.1:1/db"})
    assert isinstance(built, Registry)
    with pytest.raises(RegistryUnavailable) as error:
        built.check()
    assert "hunter2" not in str(error.value)
    built.close()


def test_a_lambda_container_says_once_that_the_registry_is_off(monkeypatch, caplog):
    monkeypatch.setenv("PISTATS_INGEST_STREAM", "s")
    monkeypatch.delenv("PISTATS_REGISTRY_URL", raising=False)
    with caplog.at_level(logging.WARNING, logger="pistats.ingest.lambda_handler"):
        service_from_env()
    assert [r.getMessage() for r in caplog.records] == [
        "subscriber registry off (no PISTATS_REGISTRY_URL): events go to Kinesis only"]
