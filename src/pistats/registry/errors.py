"""The registry's errors (no psycopg import: the ingest catches them without loading the driver)."""

from __future__ import annotations

from pistats.errors import ServiceError


class RegistryUnavailable(ServiceError):
    """The registry could not be reached or did not take a write; retrying later may succeed.

    The message names the error class (and SQLSTATE), never a value: a PostgreSQL error detail
    can quote a row, and a row holds a push token."""


class RegistrySchemaError(RegistryUnavailable):
    """The database's registry schema is missing or older than this code (run ``pistats registry init``)."""
