"""The subscriber registry: users and their push subscriptions in PostgreSQL (RDS in production).

Written by the ingest (register, subscribe, unsubscribe events), marked by the push sender
(invalid tokens), read by the push sender and operators. See docs/registry.md.

- :mod:`~pistats.registry.rules`: the pure rules (which change wins; a subscription's status).
- :mod:`~pistats.registry.changes`: events to merged per-row changes, pure.
- :mod:`~pistats.registry.store`: :class:`Registry`, the SQL mirroring the rules.
- :mod:`~pistats.registry.connections`: one connection per Lambda container, or a pool.
- :mod:`~pistats.registry.migrations`: the versioned schema; :mod:`~pistats.registry.config`.
"""

from __future__ import annotations

from collections.abc import Mapping


def from_env(environ: Mapping[str, str] | None = None, url: str | None = None, *, pooled: bool = False):
    """The Registry configured by ``url`` or ``PISTATS_REGISTRY_URL`` (see registry.config), or
    None when neither is set. One connection opened on first use (a Lambda container), or with
    ``pooled`` a pool (``pistats ingest-server``). psycopg is imported only when configured."""
    from pistats.registry.config import RegistryConfig

    config = RegistryConfig.from_env(environ, url=url)
    if config is None:
        return None
    from pistats.registry.store import Registry

    return Registry.pooled(config) if pooled else Registry.for_lambda(config)
