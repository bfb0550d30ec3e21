"""The subscriber registry: users and their push subscriptions in PostgreSQL (RDS in production).

Written by the ingest (register, subscribe, unsubscribe events), marked by the push sender
(invalid tokens), read by the push sender and operators. See docs/registry.md.

- :mod:`~pistats.registry.rules`: the pure rules (which change wins; a subscription's status).
- :mod:`~pistats.registry.changes`: events to merged per-row changes, pure.
- :mod:`~pistats.registry.store`: :class:`Registry`, the SQL mirroring the rules.
- :mod:`~pistats.registry.connections`: one connection per Lambda container, or a pool.
- :mod:`~pistats.registry.migrations`: the versioned schema; :mod:`~pistats.registry.config`.
"""
