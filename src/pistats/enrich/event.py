"""The enriched event and the reject: their keys, defaults and wire form.

An enriched event is a flat ``dict`` with exactly the keys of ``EVENT_FIELDS`` (the shared
contract with the sink). Inside the library, time fields are aware UTC ``datetime`` objects.
Storm's multilang protocol and ``pistats enrich`` speak JSON, so ``to_wire`` turns those fields
into RFC 3339 strings and ``from_wire`` turns them back; every other value is already JSON.
"""

from __future__ import annotations

from operator import itemgetter
from datetime import datetime
from typing import Any

from pistats.contract import parse_timestamp
from pistats.wire import format_time, pack_columns, pack_rows

# The fields the parse stage takes from the record (not the record's own keys: those are
# ``pistats.contract.RECORD_FIELDS``).
PARSED_FIELDS = (
    "client_id", "property_id", "event_id", "event_type", "user_id", "event_time", "received_at",
    "ip", "user_agent", "push_token", "notification_id", "page_url", "referrer", "locale",
    "sdk_name", "sdk_version", "context_json", "properties_json", "clock_skew",
)
GEO_FIELDS = (
    "geo_country", "geo_country_name", "geo_region", "geo_city", "geo_postal", "geo_lat", "geo_lon",
    "geo_accuracy_km", "geo_timezone", "geo_continent", "geo_asn", "geo_org",
)
DEVICE_FIELDS = (
    "ua_browser", "ua_browser_version", "ua_os", "ua_os_version", "ua_device_family",
    "ua_device_brand", "ua_device_model", "device_type", "is_touch", "is_bot",
)
SESSION_FIELDS = ("session_id", "session_index", "session_event_index", "is_new_user", "first_seen_at")
PROVENANCE_FIELDS = ("kinesis_shard", "kinesis_seq", "kinesis_subseq", "processed_at")
EVENT_FIELDS = (
    PARSED_FIELDS + GEO_FIELDS + DEVICE_FIELDS + SESSION_FIELDS + ("enrich_errors",) + PROVENANCE_FIELDS
)

REJECT_FIELDS = (
    "reason", "stage", "field", "detail", "raw_b64", "kinesis_shard", "kinesis_seq",
    "kinesis_subseq", "client_id", "rejected_at",
)

DATETIME_FIELDS = frozenset({"event_time", "received_at", "first_seen_at", "processed_at", "rejected_at"})

DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")

# Values an enrichment leaves when it knows nothing: '' for text, None for numbers.
EMPTY_GEO: dict[str, Any] = {
    "geo_country": "", "geo_country_name": "", "geo_region": "", "geo_city": "", "geo_postal": "",
    "geo_lat": None, "geo_lon": None, "geo_accuracy_km": None, "geo_timezone": "",
    "geo_continent": "", "geo_asn": None, "geo_org": "",
}


def _with_times_converted(row: dict[str, Any], kind: type, convert: Any) -> dict[str, Any]:
    """A copy of ``row`` whose ``DATETIME_FIELDS`` values of type ``kind`` went through ``convert``."""
    copy = dict(row)
    for key in DATETIME_FIELDS:
        value = copy.get(key)
        if isinstance(value, kind):
            copy[key] = convert(value)
    return copy


def to_wire(row: dict[str, Any]) -> dict[str, Any]:
    """A JSON-serialisable copy of an event or reject: its datetimes (``DATETIME_FIELDS``, the
    only fields that hold them) become RFC 3339 strings."""
    return _with_times_converted(row, datetime, format_time)


def from_wire(row: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``to_wire``: a copy whose time fields are aware UTC datetimes again."""
    return _with_times_converted(row, str, parse_timestamp)


def to_wire_batch(rows: list[dict[str, Any]]) -> str:
    """Several events or rejects as one micro-batch tuple field, packed by column
    (``pistats.wire.pack_columns``; see ``pistats.kinesis.microbatch``): the rows of
    ``to_wire``, which the sink reads back with ``pistats.wire.unpack_batch``."""
    fields, columns = wire_columns(rows)
    if rows and not fields:  # rows without a key: columns could not say how many there are
        return pack_rows([{} for _ in rows])
    return pack_columns(fields, columns)


def wire_columns(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(fields, columns) of ``to_wire``'s rows, built column by column without copying a row.

    Rows of one shape (the chain's events all have ``EVENT_FIELDS``, its rejects
    ``REJECT_FIELDS``) take the keys of the first; rows of different shapes the union of their
    keys, None where a row lacks one. A time field's datetimes become RFC 3339 text
    (``format_time``), whatever else it holds stays as it is, as in ``to_wire``.
    """
    if not rows:
        return [], []
    fields = list(rows[0])
    try:
        if not fields or any(len(row) != len(fields) for row in rows):
            raise KeyError
        # Equal lengths and every key of the first present: the same keys.
        columns = [list(column) for column in zip(*map(itemgetter(*fields), rows))] if len(fields) > 1 \
            else [[row[fields[0]] for row in rows]]
    except KeyError:
        fields = list(dict.fromkeys(key for row in rows for key in row))
        columns = [[row.get(key) for row in rows] for key in fields]
    for position, name in enumerate(fields):
        if name in DATETIME_FIELDS:
            columns[position] = [format_time(value) if isinstance(value, datetime) else value
                                 for value in columns[position]]
    return fields, columns
