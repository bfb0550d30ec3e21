"""Fixtures the push integration tests share."""

from __future__ import annotations

import pytest

from tests.integration.registry.conftest import delete_client


@pytest.fixture
def client_id(unique_name, registry_url):
    """This test's client; its campaigns, sends and registry rows are deleted afterwards."""
    yield unique_name
    delete_client(registry_url, unique_name)
