"""How a micro-batch travels through Storm: its rows as JSON, compressed (Zstandard), as base64 text.

Storm's multilang protocol is JSON, and the JVM (json-simple) spends per character: it parses
each emit of a Python component and writes it again for the next task, escaping every quote of a
nested JSON text. Enriched events are about 1.2 KB of JSON each, most of it the same 60 keys, so
with one batch per tuple the JVM became the topology's largest CPU consumer again, on bytes
rather than tuples. Compression shrinks a batch several times over for a few microseconds per
row, and base64 needs no escaping (benchmarks/e2e.py; docs/architecture.md). Zstandard at level 1
rather than deflate at level 1: per record, on the spout's batches and the enrich bolt's, it
compresses 2-3.5 times as fast, decompresses twice as fast, and comes out 10-20 % smaller
(benchmarks/wire_codec.py; docs/performance.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

import orjson

# A packed batch's JSON may not claim more than this (a frame states its size, and the
# decompressor allocates it): far above the largest batch (``batch_records`` records of at most
# 1 MiB each, enriched), far below what would exhaust a worker.
MAX_UNPACKED_BYTES = 512 * 2**20

# One encoder for every batch: json.dumps with non-default options builds a new one per call.
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


_UTC = timezone.utc


def format_time(value: datetime) -> str:
    """A time as rows travel with it: RFC 3339 in UTC with microseconds and a ``Z``, e.g.
    ``2026-11-26T05:00:00.123000Z``. Equal instants in other zones give the same text."""
    # Every event's three or four times pass here. isoformat is several times faster than
    # strftime; the chain's times are in UTC already (parse_timestamp, the clock), and their text
    # ends in "+00:00", so they need neither astimezone nor replace, each of which builds a
    # datetime (together about two thirds of the time). A cache did not pay: event and arrival
    # times seldom repeat.
    if value.tzinfo is _UTC:
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    return value.astimezone(_UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class WireError(ValueError):
    """A tuple field that is not a packed batch."""


def compact_json(value: Any) -> bytes:
    """Compact JSON as UTF-8, text kept as it is (not escaped to ASCII).

    orjson writes it about ten times faster than the standard library, the same text apart from
    exponents (``1e-7`` for ``1e-07``); what it refuses (text with lone surrogates, integers beyond
    64 bits) the standard library writes (lone surrogates as they are, ``surrogatepass``). NaN and
    infinities, which JSON has no words for, become null.
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        return _COMPACT_JSON(value).encode("utf-8", "surrogatepass")


class _Codecs(threading.local):
    """A Zstandard compressor and decompressor per thread: neither may be used by two threads
    at once, and building one per batch would cost more than the batch's compression. Imported
    at first use: the ingest Lambda imports this module for ``compact_json`` alone."""

    def __init__(self) -> None:
        import zstandard

        self.compressor = zstandard.ZstdCompressor(level=1)  # writes the content size in the frame
        self.decompressor = zstandard.ZstdDecompressor()
        self.content_size = zstandard.frame_content_size
        self.error = zstandard.ZstdError


_codecs = _Codecs()


def pack(rows: list[Any]) -> str:
    """The tuple field carrying ``rows`` (JSON-serialisable values; NaN and infinities arrive as
    None, see ``compact_json``: the chain never produces them)."""
    data = compact_json(rows)
    return base64.b64encode(_codecs.compressor.compress(data)).decode("ascii")


def unpack(text: str) -> list[Any]:
    """Inverse of ``pack``; raises ``WireError`` for anything else."""
    codecs = _codecs
    try:
        frame = base64.b64decode(text, validate=True)
        size = codecs.content_size(frame)
        if not 0 <= size <= MAX_UNPACKED_BYTES:
            raise ValueError(f"a frame of unknown size or over {MAX_UNPACKED_BYTES} bytes")
        rows = _loads(codecs.decompressor.decompress(frame))
    except (binascii.Error, codecs.error, UnicodeDecodeError, ValueError, TypeError) as error:
        raise WireError(f"not a packed batch: {error}") from None
    if not isinstance(rows, list):
        raise WireError("not a packed batch: not a list")
    return rows


def _loads(data: bytes) -> Any:
    """JSON bytes -> value: orjson (about 2.5 times faster on a packed batch), and the standard
    library for what orjson refuses and ``compact_json`` may have written: lone surrogates,
    integers beyond 64 bits."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data.decode("utf-8", "surrogatepass"))


def pack_rows(rows: list[dict[str, Any]]) -> str:
    """``pack`` for dicts: a header of their keys and one list of values per row."""
    if not rows:
        return pack([[], []])
    fields = tuple(rows[0])
    if all(tuple(row) == fields for row in rows):
        return pack([fields, [list(row.values()) for row in rows]])
    # Rows of different shapes: the union of their keys, None where a row lacks one.
    union = list(dict.fromkeys(key for row in rows for key in row))
    return pack([union, [[row.get(key) for key in union] for row in rows]])


@dataclass(frozen=True)
class PackedRows:
    """Rows as ``pack_rows`` sends them: one header of field names and one list of values per
    row, each as long as the header. Consumers that go column by column need no dicts."""

    fields: list[str]
    values: list[list[Any]]

    def __len__(self) -> int:
        return len(self.values)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.fields, row)) for row in self.values]


# The first element of a batch packed by column, which a batch of rows (two elements) never has.
COLUMNS_TAG = "columns"


def pack_columns(fields: Sequence[str], columns: Sequence[Sequence[Any]]) -> str:
    """``pack`` for a batch given column by column: ``columns[i]`` holds every row's value of
    ``fields[i]``, all columns as long as the batch. What the enrich bolt emits: the sink checks
    and converts column by column (``pistats.store.rows.fast_columnar``), so neither end builds
    a list per row, and a column of the same value (``processed_at``, empty geo fields) compresses
    to almost nothing."""
    return pack([COLUMNS_TAG, list(fields), [list(column) for column in columns]])


@dataclass(frozen=True)
class PackedColumns:
    """A batch as ``pack_columns`` sends it: one header of field names and one list of values
    per field, each as long as the batch."""

    fields: list[str]
    columns: list[list[Any]]

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.fields, row)) for row in zip(*self.columns)]


def unpack_rows(text: str) -> list[dict[str, Any]]:
    """Inverse of ``pack_rows`` and of ``pack_columns``: the rows as dicts; raises ``WireError``
    for anything else."""
    return unpack_batch(text).as_dicts()


def unpack_packed_rows(text: str) -> PackedRows:
    """``unpack_rows`` of a batch of rows (``pack_rows``) without building dicts; raises
    ``WireError`` for anything else."""
    batch = unpack_batch(text)
    if not isinstance(batch, PackedRows):
        raise WireError("not a packed batch of rows: packed by column")
    return batch


def unpack_batch(text: str) -> PackedRows | PackedColumns:
    """A batch packed by ``pack_rows`` or ``pack_columns``, without building dicts; raises
    ``WireError`` for anything else (ragged rows or columns included)."""
    batch = unpack(text)
    if len(batch) == 3 and batch[0] == COLUMNS_TAG:
        fields, columns = _fields_and_lists(batch[1:], "columns")
        if len(columns) != len(fields) or (columns and len(set(map(len, columns))) != 1):
            raise WireError("not a packed batch of columns: a column does not match the fields or the others")
        return PackedColumns(fields, columns)
    fields, rows = _fields_and_lists(batch, "rows")
    # Whole-list checks in C: a batch has thousands of rows.
    if rows and set(map(len, rows)) != {len(fields)}:
        raise WireError("not a packed batch of rows: a row does not match the fields")
    return PackedRows(fields, rows)


def _fields_and_lists(batch: list[Any], kind: str) -> tuple[list[str], list[list[Any]]]:
    if len(batch) != 2 or not isinstance(batch[0], list) or not isinstance(batch[1], list):
        raise WireError(f"not a packed batch of {kind}: not [fields, {kind}]")
    fields, lists = batch
    if not all(isinstance(field, str) for field in fields):
        raise WireError(f"not a packed batch of {kind}: a field name is not text")
    if lists and set(map(type, lists)) != {list}:
        raise WireError(f"not a packed batch of {kind}: not a list of lists")
    return fields, lists
