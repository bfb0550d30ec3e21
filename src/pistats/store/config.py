"""Typed configuration of the store (which backend, by URL) and of the batching sink."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from urllib.parse import parse_qs, unquote, urlsplit

from pistats.errors import ConfigError
from pistats.redact import redact_url

PASSWORD_ENV = "PISTATS_CLICKHOUSE_PASSWORD"
STORE_URL_ENV = "PISTATS_STORE_URL"
STORE_URL_OPTION = "pistats.store.url"
SINK_OPTION = "pistats.sink"
DEFAULT_STORE_URL = "chdb://./.pistats/chdb"  # relative to the working directory: see docs/store.md
_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL. The password is kept out of ``repr`` and ``str`` (use ``redacted``).

    - ``clickhouse://user:pass@host:9000/db`` and ``clickhouses://...`` (TLS, default port 9440):
      the native protocol through clickhouse-driver. Without a password in the URL the environment
      variable ``PISTATS_CLICKHOUSE_PASSWORD`` is used. Query options: ``connect_timeout``,
      ``send_receive_timeout`` (seconds).
    - ``chdb:///absolute/dir`` or ``chdb://./relative/dir``: embedded chdb at that data path; the
      database is ``pistats`` unless ``?database=NAME``.
    """

    scheme: str
    host: str = ""
    port: int = 0
    user: str = "default"
    password: str = field(default="", repr=False)
    database: str = "default"
    path: str = ""
    connect_timeout: float = 3.0
    send_receive_timeout: float = 10.0

    @classmethod
    def parse(cls, url: str, env: Mapping[str, str] | None = None) -> "StoreURL":
        env = {} if env is None else env
        parts = urlsplit(url)
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        if parts.scheme in ("clickhouse", "clickhouses"):
            secure = parts.scheme == "clickhouses"
            try:
                port = parts.port or (9440 if secure else 9000)
            except ValueError:
                raise ConfigError("store URL", f"has a bad port: {redact_url(url)}") from None
            database = unquote(parts.path.lstrip("/")) or "default"
            password = unquote(parts.password) if parts.password else env.get(PASSWORD_ENV, "")
            result = cls(
                scheme=parts.scheme,
                host=parts.hostname or "127.0.0.1",
                port=port,
                user=unquote(parts.username) if parts.username else "default",
                password=password,
                database=database,
                connect_timeout=_seconds(options, "connect_timeout", 3.0, url),
                send_receive_timeout=_seconds(options, "send_receive_timeout", 10.0, url),
            )
        elif parts.scheme == "chdb":
            path = unquote(parts.netloc + parts.path)
            if not path:
                raise ConfigError("store URL", f"needs a data path after chdb://: {url}")
            result = cls(scheme="chdb", path=path, database=options.get("database", "pistats"))
        else:
            raise ConfigError(
                "store URL", f"{redact_url(url)!r} is not supported: use clickhouse://, clickhouses:// or chdb:///path"
            )
        if not _DATABASE.match(result.database):
            raise ConfigError("store URL", f"has a bad database name {result.database!r}")
        return result

    @classmethod
    def from_topology_conf(cls, conf: Mapping, env: Mapping[str, str]) -> "StoreURL":
        """The store of a Storm topology conf: ``pistats.store.url``, else ``PISTATS_STORE_URL``
        in ``env``, else the local chdb default (see :func:`store_url_from`)."""
        return cls.parse(store_url_from(conf.get(STORE_URL_OPTION), env), env)

    @property
    def redacted(self) -> str:
        """The URL for logs and messages: never contains the password."""
        if self.scheme == "chdb":
            return f"chdb://{self.path}?database={self.database}"
        secret = ":***" if self.password else ""
        return f"{self.scheme}://{self.user}{secret}@{self.host}:{self.port}/{self.database}"

    def __str__(self) -> str:
        return self.redacted


def _seconds(options: Mapping[str, str], name: str, default: float, url: str) -> float:
    if name not in options:
        return default
    try:
        value = float(options[name])
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError("store URL", f"option {name} must be a positive number: {redact_url(url)}")
    return value


def store_url_from(explicit: str | None, env: Mapping[str, str]) -> str:
    """The store URL to use: the explicit one, else ``PISTATS_STORE_URL``, else the local chdb default."""
    return explicit or env.get(STORE_URL_ENV) or DEFAULT_STORE_URL


@dataclass(frozen=True)
class SinkConfig:
    """Batching and retry settings of the sink (topology option ``pistats.sink``).

    ``retry_budget_s`` bounds how long one flush may keep retrying a failed insert while holding
    its batch; together with one insert's own timeout it must stay below Storm's
    ``topology.subprocess.timeout.secs`` (30 s by default), because the bolt does not answer
    heartbeats while it waits for an insert.

    ``inserts_in_flight``: how many full batches may be handed to the writer thread before adding
    rows waits (1: one insert runs while the next batch fills; 0: insert in the caller's thread).
    Besides the two batches filling (events, rejects), at most ``inserts_in_flight + 1`` batches
    are held (one waiting to be handed over), each within ``max_rows`` and ``max_bytes``.

    ``max_bisect_inserts``: how many more inserts a batch the store refused for its data may
    cost to find the refused rows (``pistats.store.refusal.isolate_refused``). One refused row
    of a 5,000-row batch takes 26; rows still not told apart when the budget is spent become
    rejects together. They share the batch's ``retry_budget_s``.
    """

    max_rows: int = 5000
    max_bytes: int = 32 * 1024 * 1024
    max_age_s: float = 1.0
    retry_budget_s: float = 10.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 2.0
    max_string_chars: int = 256 * 1024
    inserts_in_flight: int = 1
    max_bisect_inserts: int = 64

    def __post_init__(self) -> None:
        problems = []
        if self.max_rows < 1:
            problems.append("max_rows must be >= 1")
        if self.max_bytes < 1024:
            problems.append("max_bytes must be >= 1024")
        if self.max_age_s <= 0:
            problems.append("max_age_s must be > 0")
        if self.retry_budget_s < 0:
            problems.append("retry_budget_s must be >= 0")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            problems.append("need 0 < backoff_initial_s <= backoff_max_s")
        if self.max_string_chars < 1:
            problems.append("max_string_chars must be >= 1")
        if not 0 <= self.inserts_in_flight <= 8:
            problems.append("inserts_in_flight must be 0..8")
        if not 0 <= self.max_bisect_inserts <= 10_000:
            problems.append("max_bisect_inserts must be 0..10000")
        if problems:
            raise ConfigError(SINK_OPTION, "is bad: " + "; ".join(problems))

    @classmethod
    def from_topology_conf(cls, conf: Mapping) -> "SinkConfig":
        """Build from a Storm topology conf: only its ``pistats.sink`` mapping is read."""
        return cls.from_dict(conf.get(SINK_OPTION))

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "SinkConfig":
        data = dict(data or {})
        known = {item.name: item for item in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(SINK_OPTION, f"has unknown keys {', '.join(unknown)}")
        values = {}
        for name, value in data.items():
            expected = int if known[name].type == "int" else float
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{SINK_OPTION}.{name}", "must be a number")
            if expected is int and not isinstance(value, int):
                raise ConfigError(f"{SINK_OPTION}.{name}", "must be an integer")
            values[name] = expected(value)
        return cls(**values)
