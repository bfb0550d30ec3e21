"""PostgreSQL's binary array format, written directly: what ``registry_write`` receives, pure.

psycopg writes a list as a binary array element by element in Python (a dumper looked up and
called per element): for the 18 arrays of a batch of 100 events that was 0.8 ms of the
ingest's CPU, a third of the registry's client side. Here each column is one loop that
appends a 4-byte length and the element's bytes; the result is byte for byte what psycopg's
``ListBinaryDumper`` writes for the same list (a unit test holds them together), sent by
:mod:`pistats.registry.store` as a binary parameter of the array type's OID.

Only what registry_write takes: one-dimensional arrays of ``text``, ``bytea`` and
``timestamptz`` (timezone-aware datetimes), any element None (SQL NULL), never empty (an empty
batch sends nothing).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

TEXT_OID, BYTEA_OID, TIMESTAMPTZ_OID = 25, 17, 1184
TEXT_ARRAY_OID, BYTEA_ARRAY_OID, TIMESTAMPTZ_ARRAY_OID = 1009, 1001, 1185

# ndim, has-null flag, element OID, then the one dimension: its length and lower bound (1).
_HEAD = struct.Struct(">iiiii").pack
_LENGTH = struct.Struct(">i").pack
_NULL = _LENGTH(-1)
_TIMESTAMP = struct.Struct(">iq").pack  # length 8, then microseconds since 2000-01-01 UTC
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def text_array(values: Sequence[str | None], encoding: str = "utf-8") -> bytes:
    """``values`` as a binary ``text[]``, in the connection's client ``encoding`` (a Python
    codec name, as psycopg's ``conn.info.encoding``), as psycopg would have encoded them."""
    parts, null = [], 0
    append = parts.append
    for value in values:
        if value is None:
            append(_NULL)
            null = 1
        else:
            data = value.encode(encoding)
            append(_LENGTH(len(data)))
            append(data)
    return _HEAD(1, null, TEXT_OID, len(values), 1) + b"".join(parts)


def bytea_array(values: Sequence[bytes | None]) -> bytes:
    """``values`` as a binary ``bytea[]``."""
    parts, null = [], 0
    append = parts.append
    for value in values:
        if value is None:
            append(_NULL)
            null = 1
        else:
            append(_LENGTH(len(value)))
            append(value)
    return _HEAD(1, null, BYTEA_OID, len(values), 1) + b"".join(parts)


def timestamptz_array(values: Sequence[datetime | None]) -> bytes:
    """``values`` (timezone-aware: a naive datetime raises TypeError) as a binary
    ``timestamptz[]``: microseconds since 2000-01-01 UTC, as the server keeps them."""
    parts, null = [], 0
    append = parts.append
    for value in values:
        if value is None:
            append(_NULL)
            null = 1
        else:
            append(_TIMESTAMP(8, (value - _PG_EPOCH) // _MICROSECOND))
    return _HEAD(1, null, TIMESTAMPTZ_OID, len(values), 1) + b"".join(parts)

