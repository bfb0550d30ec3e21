"""Typed configuration of the registry connection, from a URL or environment variables (at the edge).

==================================  ===============================================  ==========
variable                            meaning                                          default
==================================  ===============================================  ==========
``PISTATS_REGISTRY_URL``            ``postgresql://user@host:port/db``; unset: the    (off)
                                    ingest writes no registry
``PGPASSWORD``                      the password, if the URL has none (libpq reads
                                    it itself)
``PISTATS_REGISTRY_TIMEOUT_MS``     statement timeout of each registry write          ``5000``
==================================  ===============================================  ==========

The URL may hold a password: it is redacted in the repr, in logs and in every message
(:func:`redact`), including a ``password=`` query parameter.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pistats.errors import ConfigError
from pistats.redact import redact_url

URL_VARIABLE = "PISTATS_REGISTRY_URL"
TIMEOUT_VARIABLE = "PISTATS_REGISTRY_TIMEOUT_MS"
SCHEMES = ("postgresql", "postgres")


def local_url(environ: Mapping[str, str] | None = None) -> str:
    """The local registry of ``pistats services start postgres``."""
    env = os.environ if environ is None else environ
    return f"postgresql://pistats@127.0.0.1:{env.get('PISTATS_POSTGRES_PORT') or 5432}/pistats"


def redact(url: str) -> str:
    """``url`` with any password (``user:password@`` or ``?password=``) replaced by ``***``."""
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", redact_url(url))


@dataclass(frozen=True)
class RegistryConfig:
    """Where the registry is and how to talk to it.

    ``statement_timeout_ms`` bounds each write (``SET LOCAL`` inside its transaction: no session
    state, so RDS Proxy does not pin the connection for it); 0 leaves the server's default.
    ``pool_min``/``pool_max``/``pool_timeout_s`` size the pool of ``pistats ingest-server``
    (a Lambda container holds one connection instead).
    """

    url: str = field(repr=False)
    connect_timeout_s: int = 2
    statement_timeout_ms: int = 5000
    pool_min: int = 1
    pool_max: int = 8
    pool_timeout_s: float = 2.0
    application_name: str = "pistats"

    def __post_init__(self):
        try:
            scheme = urlsplit(self.url).scheme
        except ValueError:
            scheme = ""
        if scheme not in SCHEMES:
            raise ConfigError("url", f"must start with postgresql://, not {redact(self.url)!r}")
        if self.connect_timeout_s < 1:
            raise ConfigError("connect_timeout_s", "must be >= 1 (libpq counts whole seconds)")
        if self.statement_timeout_ms < 0:
            raise ConfigError("statement_timeout_ms", "must be >= 0")
        if not 0 <= self.pool_min <= self.pool_max or self.pool_max < 1:
            raise ConfigError("pool_max", "must be >= 1 and >= `pool_min` (>= 0)")
        if self.pool_timeout_s <= 0:
            raise ConfigError("pool_timeout_s", "must be > 0")

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["url"] = redact(self.url)
        return "RegistryConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    @property
    def redacted_url(self) -> str:
        return redact(self.url)

    def connect_kwargs(self) -> dict:
        """psycopg connection options: autocommit (each write is an explicit transaction in one
        pipeline), no server-side prepared statements (they pin RDS Proxy connections)."""
        return {
            "autocommit": True,
            "prepare_threshold": None,
            "connect_timeout": self.connect_timeout_s,
            "application_name": self.application_name,
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, url: str | None = None,
                 **overrides) -> "RegistryConfig | None":
        """The config from ``url`` or ``PISTATS_REGISTRY_URL``; None when neither is set."""
        env = os.environ if environ is None else environ
        url = url or env.get(URL_VARIABLE)
        if not url:
            return None
        values: dict = {"url": url}
        if env.get(TIMEOUT_VARIABLE):
            try:
                values["statement_timeout_ms"] = int(env[TIMEOUT_VARIABLE])
            except ValueError:
                raise ConfigError(TIMEOUT_VARIABLE, "must be a whole number of milliseconds") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
