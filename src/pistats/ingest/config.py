"""Typed configuration of the ingest, from a dict or from environment variables (at the edge).

Environment variables (all optional except the stream name):

==================================  ===========================================  ==================
variable                            meaning                                      default
==================================  ===========================================  ==================
``PISTATS_INGEST_STREAM``           Kinesis stream name                          (required)
``PISTATS_INGEST_REGION``           AWS region (else ``AWS_REGION``,             ``us-east-1``
                                    ``AWS_DEFAULT_REGION``)
``PISTATS_INGEST_ENDPOINT_URL``     Kinesis endpoint (kinesis-local)             AWS
``PISTATS_REDIS_URL``               Redis for write keys and idempotency marks   ``redis://127.0.0.1:6379/0``
``PISTATS_INGEST_KEY_PREFIX``       prefix of every Redis key the ingest uses    ``pistats``
``PISTATS_INGEST_DEDUP_TTL_S``      lifetime of an idempotency mark              ``86400``
``PISTATS_INGEST_KEY_CACHE_S``      in-process write key cache lifetime          ``5``
``PISTATS_INGEST_TRUSTED_HOPS``     trusted proxies appending X-Forwarded-For    ``0``
``PISTATS_INGEST_PUT_ATTEMPTS``     PutRecords attempts for failed entries       ``4``
==================================  ===========================================  ==================

Credentials never appear here: boto3 takes them from the standard AWS chain, and the Redis URL
(which may hold a password) is redacted in the repr.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pistats.redact import redact_url
from pistats.redisconn import CLUSTER_SCHEMES, SINGLE_SCHEMES, RedisTarget

ENV_PREFIX = "PISTATS_INGEST_"

_ENV_NAMES = {
    "stream": "PISTATS_INGEST_STREAM",
    "region": "PISTATS_INGEST_REGION",
    "endpoint_url": "PISTATS_INGEST_ENDPOINT_URL",
    "redis_url": "PISTATS_REDIS_URL",
    "key_prefix": "PISTATS_INGEST_KEY_PREFIX",
    "dedup_ttl_s": "PISTATS_INGEST_DEDUP_TTL_S",
    "key_cache_s": "PISTATS_INGEST_KEY_CACHE_S",
    "trusted_hops": "PISTATS_INGEST_TRUSTED_HOPS",
    "put_attempts": "PISTATS_INGEST_PUT_ATTEMPTS",
    "backoff_base_ms": "PISTATS_INGEST_BACKOFF_BASE_MS",
    "backoff_max_ms": "PISTATS_INGEST_BACKOFF_MAX_MS",
    "retry_after_s": "PISTATS_INGEST_RETRY_AFTER_S",
}


@dataclass(frozen=True)
class IngestConfig:
    """Everything the ingest needs; validated on construction.

    ``trusted_hops`` is the number of proxies in front of the ingest that append to
    ``X-Forwarded-For`` (nginx, CloudFront): the caller IP is the entry that many places from the
    right. With 0 the header is ignored and the connection's peer (or the API Gateway source IP)
    is the caller. ``put_attempts`` bounds the PutRecords calls per request; failed entries are
    retried alone after a full-jitter exponential backoff between ``backoff_base_ms`` and
    ``backoff_max_ms``.
    """

    stream: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    key_prefix: str = "pistats"
    dedup_ttl_s: int = 24 * 3600
    key_cache_s: float = 5.0
    trusted_hops: int = 0
    put_attempts: int = 4
    backoff_base_ms: int = 50
    backoff_max_ms: int = 1000
    retry_after_s: int = 1
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 5.0

    def __post_init__(self):
        if not self.stream:
            raise ValueError("the Kinesis stream name is required (PISTATS_INGEST_STREAM)")
        if urlsplit(self.redis_url).scheme not in (*SINGLE_SCHEMES, *CLUSTER_SCHEMES):
            raise ValueError(f"the Redis URL must start with redis://, rediss://, unix://, redis+cluster:// "
                             f"or rediss+cluster://, not {redact_url(self.redis_url)!r}")
        RedisTarget.parse(self.redis_url)  # the rest of it (its message hides the password)
        if not self.key_prefix or any(c.isspace() for c in self.key_prefix):
            raise ValueError("key_prefix must be a non-empty word")
        if self.dedup_ttl_s < 1:
            raise ValueError("dedup_ttl_s must be >= 1")
        if self.key_cache_s < 0:
            raise ValueError("key_cache_s must be >= 0")
        if self.trusted_hops < 0:
            raise ValueError("trusted_hops must be >= 0")
        if self.put_attempts < 1:
            raise ValueError("put_attempts must be >= 1")
        if not 0 <= self.backoff_base_ms <= self.backoff_max_ms:
            raise ValueError("backoff must satisfy 0 <= backoff_base_ms <= backoff_max_ms")
        if self.retry_after_s < 1:
            raise ValueError("retry_after_s must be >= 1")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("timeouts must be > 0")

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["redis_url"] = redact_url(self.redis_url)
        return "IngestConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @classmethod
    def from_dict(cls, values: Mapping) -> "IngestConfig":
        """Build from plain keys; values given as text (env, CLI) are converted to the field type."""
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(types))
        if unknown:
            raise ValueError(f"unknown ingest settings: {', '.join(unknown)}")
        converted = {}
        for name, value in values.items():
            kind = types[name]
            if isinstance(value, str) and kind in ("int", "float"):
                try:
                    value = int(value) if kind == "int" else float(value)
                except ValueError:
                    raise ValueError(f"{name} must be a number, not {value!r}") from None
            converted[name] = value
        return cls(**converted)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "IngestConfig":
        """Read the variables listed in the module docstring; ``overrides`` (not None) win."""
        env = os.environ if environ is None else environ
        values = {name: env[var] for name, var in _ENV_NAMES.items() if env.get(var)}
        if "region" not in values:
            region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            if region:
                values["region"] = region
        values.update({k: v for k, v in overrides.items() if v is not None})
        values.setdefault("stream", "")
        return cls.from_dict(values)

