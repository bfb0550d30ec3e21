"""IngestConfig: defaults, validation, env vars, no secrets in the repr."""

from __future__ import annotations

import pytest

from pistats.ingest.config import IngestConfig


def test_from_env_reads_every_variable():
    config = IngestConfig.from_env(
        {
            "PISTATS_INGEST_STREAM": "events",
            "AWS_REGION": "eu-west-1",
            "PISTATS_INGEST_ENDPOINT_URL": "http://127.0.0.1:4567",
            "PISTATS_REDIS_URL": "redis://:hunter2@redis.internal:6379/1",
            "PISTATS_INGEST_DEDUP_TTL_S": "3600",
            "PISTATS_INGEST_KEY_CACHE_S": "2.5",
            "PISTATS_INGEST_TRUSTED_HOPS": "1",
        }
    )
    assert (config.stream, config.region, config.endpoint_url) == ("events", "eu-west-1", "http://127.0.0.1:4567")
    assert (config.dedup_ttl_s, config.key_cache_s, config.trusted_hops) == (3600, 2.5, 1)
    assert "hunter2" not in repr(config)
    assert "redis.internal" in repr(config)


def test_overrides_win_and_none_is_ignored():
    config = IngestConfig.from_env({"PISTATS_INGEST_STREAM": "a"}, stream="b", region=None)
    assert (config.stream, config.region) == ("b", "us-east-1")


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"stream": ""},
        {"stream": "s", "dedup_ttl_s": 0},
        {"stream": "s", "put_attempts": 0},
        {"stream": "s", "trusted_hops": -1},
        {"stream": "s", "backoff_base_ms": 10, "backoff_max_ms": 5},
        {"stream": "s", "key_prefix": "a b"},
        {"stream": "s", "dedup_ttl_s": "soon"},
        {"stream": "s", "colour": "red"},
        {"stream": "s", "redis_url": "http://127.0.0.1:6379"},
    ],
)
def test_invalid_configs(values):
    with pytest.raises(ValueError):
        IngestConfig.from_dict(values) if values else IngestConfig.from_env({})
