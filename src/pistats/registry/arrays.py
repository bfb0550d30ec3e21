"""PostgreSQL's binary array format, written directly: what ``registry_write`` receives, pure.

psycopg writes a list as a binary array element by element in Python (a dumper looked up and
called per element): for the 18 arrays of a batch of 100 events that was 0.8 ms of the
ingest's CPU, a third of the registry's client side. Here each column is one loop that
appends a 4-byte length and the element's bytes; the result is byte for byte what psycopg's
``ListBinaryDumper`` writes for the same list (a unit test holds them together), wrapped in a
``bytes`` subclass whose dumper hands it over as is, with the array type's OID.

Only what registry_write takes: one-dimensional arrays of ``text``, ``bytea`` and
``timestamptz`` (timezone-aware datetimes), any element None (SQL NULL), never empty (an empty
batch sends nothing).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

TEXT_OID, BYTEA_OID, TIMESTAMPTZ_OID = 25, 17, 1184
TEXT_ARRAY_OID, BYTEA_ARRAY_OID, TIMESTAMPTZ_ARRAY_OID = 1009, 1001, 1185

# ndim, has-null flag, element OID, then the one dimension: its length and lower bound (1).
_HEAD = struct.Struct(">iiiii").pack
_LENGTH = struct.Struct(">i").pack
_NULL = _LENGTH(-1)
_TIMESTAMP = struct.Struct(">iq").pack  # length 8, then microseconds since 2000-01-01 UTC
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


class TextArray(bytes):
    """A ``text[]`` already in binary."""


class ByteaArray(bytes):
    """A ``bytea[]`` already in binary."""


class TimestamptzArray(bytes):
    """A ``timestamptz[]`` already in binary."""


def text_array(values: Sequence[str | None]) -> TextArray:
    """``values`` as a binary ``text[]`` (UTF-8, the registry's server encoding)."""
    parts, null = [], 0
    append = parts.append
    for value in values:
        if value is None:
            append(_NULL)
            null = 1
        else:
            data = value.encode()
            append(_LENGTH(len(data)))
            append(data)
    return TextArray(_HEAD(1, null, TEXT_OID, len(values), 1) + b"".join(parts))


def bytea_array(values: Sequence[bytes | None]) -> ByteaArray:
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
    return ByteaArray(_HEAD(1, null, BYTEA_OID, len(values), 1) + b"".join(parts))


def timestamptz_array(values: Sequence[datetime | None]) -> TimestamptzArray:
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
    return TimestamptzArray(_HEAD(1, null, TIMESTAMPTZ_OID, len(values), 1) + b"".join(parts))


def _dumper(array_oid: int) -> type[Dumper]:
    class _Encoded(Dumper):
        format = Format.BINARY
        oid = array_oid

        def dump(self, obj: bytes) -> bytes:
            return obj

    return _Encoded


# Registered on psycopg's global adapters, which every connection made afterwards copies: the
# three types are this module's own, so nothing else is dumped differently.
for _type, _oid in ((TextArray, TEXT_ARRAY_OID), (ByteaArray, BYTEA_ARRAY_OID),
                    (TimestamptzArray, TIMESTAMPTZ_ARRAY_OID)):
    psycopg.adapters.register_dumper(_type, _dumper(_oid))
