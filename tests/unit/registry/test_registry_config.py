"""RegistryConfig: the URL from a flag or the environment, validation, passwords never shown."""

from __future__ import annotations

import pytest

from pistats.registry.config import RegistryConfig, local_url, redact


def test_no_url_means_no_registry():
    assert RegistryConfig.from_env({}) is None


def test_the_flag_wins_over_the_environment():
    config = RegistryConfig.from_env({"PISTATS_REGISTRY_URL": "postgresql://a@h/db"}, url="postgresql://b@h/db")
    assert config.url == "postgresql://b@h/db"
    assert RegistryConfig.from_env({"PISTATS_REGISTRY_URL": "postgres://a@h/db"}).url == "postgres://a@h/db"


def test_timeout_from_the_environment():
    env = {"PISTATS_REGISTRY_URL": "postgresql://a@h/db", "PISTATS_REGISTRY_TIMEOUT_MS": "250"}
    assert RegistryConfig.from_env(env).statement_timeout_ms == 250
    with pytest.raises(ValueError, match="whole number"):
        RegistryConfig.from_env({**env, "PISTATS_REGISTRY_TIMEOUT_MS": "soon"})


@pytest.mark.parametrize("url", [
    "postgresql://pistats:hunter2@db.internal:5432/pistats",
    "postgresql://pistats@db.internal/pistats?sslmode=require&password=hunter2",
    "postgresql://pistats@db.internal/pistats?PASSWORD=hunter2",
])
def test_passwords_are_redacted_in_repr_and_messages(url):
    config = RegistryConfig(url)
    assert "hunter2" not in repr(config) and "hunter2" not in config.redacted_url
    assert "db.internal" in repr(config)
    with pytest.raises(ValueError) as error:
        RegistryConfig(url.replace("postgresql", "mysql", 1))
    assert "hunter2" not in str(error.value)


def test_redact_leaves_other_parameters():
    assert redact("postgresql://u@h/d?sslmode=require&password=x&application_name=a") == \
        "postgresql://u@h/d?sslmode=require&password=***&application_name=a"


@pytest.mark.parametrize("changes, message", [
    ({"url": "redis://h"}, "url must start with postgresql://"),
    ({"connect_timeout_s": 0}, "connect_timeout_s"),
    ({"statement_timeout_ms": -1}, "statement_timeout_ms"),
    ({"pool_min": 3, "pool_max": 2}, "pool_max must be >= 1 and >= pool_min"),
    ({"pool_timeout_s": 0}, "pool_timeout_s"),
])
def test_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        RegistryConfig(**{"url": "postgresql://u@h/d", **changes})


def test_connections_pin_nothing_on_rds_proxy():
    kwargs = RegistryConfig("postgresql://u@h/d").connect_kwargs()
    assert kwargs["prepare_threshold"] is None and kwargs["autocommit"] is True
    assert "options" not in kwargs


def test_local_url_follows_the_postgres_port():
    assert local_url({}) == "postgresql://pistats@127.0.0.1:5432/pistats"
    assert local_url({"PISTATS_POSTGRES_PORT": "6543"}) == "postgresql://pistats@127.0.0.1:6543/pistats"
