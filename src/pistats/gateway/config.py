"""Typed configuration of the gateway (nginx and the gunicorn workers behind it).

Environment variables (all optional):

============================================  ==============================================  ===============
variable                                      meaning                                         default
============================================  ==============================================  ===============
``PISTATS_GATEWAY_PORT``                      port nginx listens on (127.0.0.1)               ``8088``
``PISTATS_GATEWAY_RATE``                      requests/s per write key (limit_req)            ``100``
``PISTATS_GATEWAY_BURST``                     requests over the rate let through at once      the rate
``PISTATS_GATEWAY_CONNECTIONS``               requests in flight, all clients (limit_conn)    ``1024``
``PISTATS_GATEWAY_CLIENT_TIMEOUT_S``          header, body and send timeouts against clients  ``10``
``PISTATS_GATEWAY_UPSTREAM_TIMEOUT_S``        wait for the ingest's answer                    ``30``
``PISTATS_GATEWAY_WORKERS``                   gunicorn worker processes                       CPU count, >= 2
``PISTATS_GATEWAY_THREADS``                   threads per gunicorn worker                     ``32``
``PISTATS_GATEWAY_GROUP_COMMIT``              a worker's requests share PutRecords calls      ``1`` (on)
``PISTATS_GATEWAY_GROUP_COMMIT_MAX_WAIT_MS``  a call waits this long for company              ``0``
``PISTATS_GATEWAY_GROUP_COMMIT_MAX_QUEUED``   entries queued per worker, at most              ``10000``
============================================  ==============================================  ===============

Group commit (pistats.ingest.group_commit): a worker keeps one PutRecords call in flight, and
what its other threads queue meanwhile goes together in the next call (up to 500 entries and
5 MiB); a lone request is sent at once. ``0`` turns it off (one call per request, as
``pistats ingest-server`` and the Lambda do).

The ingest behind it reads its own ``PISTATS_INGEST_*``, ``PISTATS_REDIS_URL`` and
``PISTATS_REGISTRY_URL`` (pistats.ingest.config), as ``pistats ingest-server`` does.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

_ENV_NAMES = {
    "port": "PISTATS_GATEWAY_PORT",
    "rate": "PISTATS_GATEWAY_RATE",
    "burst": "PISTATS_GATEWAY_BURST",
    "connections": "PISTATS_GATEWAY_CONNECTIONS",
    "client_timeout_s": "PISTATS_GATEWAY_CLIENT_TIMEOUT_S",
    "upstream_timeout_s": "PISTATS_GATEWAY_UPSTREAM_TIMEOUT_S",
    "workers": "PISTATS_GATEWAY_WORKERS",
    "threads": "PISTATS_GATEWAY_THREADS",
    "group_commit": "PISTATS_GATEWAY_GROUP_COMMIT",
    "group_commit_max_wait_ms": "PISTATS_GATEWAY_GROUP_COMMIT_MAX_WAIT_MS",
    "group_commit_max_queued": "PISTATS_GATEWAY_GROUP_COMMIT_MAX_QUEUED",
}
_SWITCHES = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False,
             "off": False}


def _default_workers() -> int:
    # Two at least: a worker that dies (or is killed) leaves another serving while it respawns.
    return max(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class GatewayConfig:
    """The gateway's limits and sizes; validated on construction.

    ``burst`` None means "one second's worth" (the rate): Kong's per-second window let a client
    spend its whole second at once, which ``limit_req ... burst=rate nodelay`` reproduces.
    ``upstream_timeout_s`` must cover the ingest's worst case (PutRecords attempts with backoff).
    """

    port: int = 8088
    rate: int = 100
    burst: int | None = None
    connections: int = 1024
    client_timeout_s: int = 10
    upstream_timeout_s: int = 30
    workers: int = dataclasses.field(default_factory=_default_workers)
    # With group commit a worker's threads mostly wait on one shared PutRecords call: the more
    # requests a worker holds at once, the more each call carries (docs/gateway.md, Performance).
    threads: int = 32
    group_commit: bool = True
    group_commit_max_wait_ms: int = 0
    group_commit_max_queued: int = 10_000
    host: str = "127.0.0.1"

    def __post_init__(self):
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1-65535, not {self.port}")
        if self.rate < 1:
            raise ValueError("rate must be >= 1 request/s")
        if self.burst is not None and self.burst < 0:
            raise ValueError("burst must be >= 0")
        for name in ("connections", "client_timeout_s", "upstream_timeout_s", "workers", "threads",
                     "group_commit_max_queued"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.group_commit_max_wait_ms < 0:
            raise ValueError("group_commit_max_wait_ms must be >= 0")

    def group_commit_settings(self):
        """The workers' :class:`~pistats.ingest.group_commit.GroupCommitSettings`, or None when
        group commit is off. A request waits for room in the queue at most as long as nginx
        waits for its answer."""
        if not self.group_commit:
            return None
        from pistats.ingest.group_commit import GroupCommitSettings

        return GroupCommitSettings(max_queued_entries=self.group_commit_max_queued,
                                   max_wait_s=self.group_commit_max_wait_ms / 1000,
                                   admission_timeout_s=self.upstream_timeout_s / 3)

    @property
    def burst_requests(self) -> int:
        return self.rate if self.burst is None else self.burst

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "GatewayConfig":
        """Read the variables of the module docstring; ``overrides`` (not None) win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, var in _ENV_NAMES.items():
            raw = env.get(var)
            if raw and name == "group_commit":
                if raw.strip().lower() not in _SWITCHES:
                    raise ValueError(f"{var} must be 1 or 0, not {raw!r}")
                values[name] = _SWITCHES[raw.strip().lower()]
            elif raw:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise ValueError(f"{var} must be a whole number, not {raw!r}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
