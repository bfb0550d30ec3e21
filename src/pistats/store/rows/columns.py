"""The column schema: the columns of ``events``, ``events_rejected`` and ``push_sends``, in row
order, with their kinds.

A row is a tuple in the order of ``EVENT_COLUMNS`` / ``REJECT_COLUMNS`` / ``PUSH_SEND_COLUMNS``.
A column's kind says what it holds; how a value becomes one is the rule (``pistats.store.rows.rule``),
its SQL type per server is ``pistats.store.schema.column_type``, its Arrow type is in
``pistats.store.backends``.
"""

from __future__ import annotations

from dataclasses import dataclass

# Column kinds.
TEXT = "text"  # String
LOW_CARDINALITY_TEXT = "low_cardinality_text"  # few distinct values: LowCardinality(String) where the server has it
TIMESTAMP = "timestamp"  # DateTime64(3, 'UTC') or DateTime('UTC'); a row holds epoch milliseconds
FLAG = "flag"  # UInt8, 0 or 1
UINT32 = "uint32"
NULLABLE_UINT32 = "nullable_uint32"
NULLABLE_FLOAT64 = "nullable_float64"
TEXT_LIST = "text_list"  # Array of the text type
TEXT_KINDS = (TEXT, LOW_CARDINALITY_TEXT)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str


EVENT_COLUMNS: tuple[Column, ...] = tuple(
    Column(name, kind)
    for name, kind in (
        ("client_id", LOW_CARDINALITY_TEXT),
        ("property_id", LOW_CARDINALITY_TEXT),
        ("event_id", TEXT),
        ("event_type", LOW_CARDINALITY_TEXT),
        ("user_id", TEXT),
        ("event_time", TIMESTAMP),
        ("received_at", TIMESTAMP),
        ("ip", TEXT),
        ("user_agent", TEXT),
        ("push_token", TEXT),
        ("notification_id", TEXT),
        ("page_url", TEXT),
        ("referrer", TEXT),
        ("locale", LOW_CARDINALITY_TEXT),
        ("sdk_name", LOW_CARDINALITY_TEXT),
        ("sdk_version", LOW_CARDINALITY_TEXT),
        ("context_json", TEXT),
        ("properties_json", TEXT),
        ("clock_skew", FLAG),
        ("geo_country", LOW_CARDINALITY_TEXT),
        ("geo_country_name", LOW_CARDINALITY_TEXT),
        ("geo_region", LOW_CARDINALITY_TEXT),
        ("geo_city", LOW_CARDINALITY_TEXT),
        ("geo_postal", LOW_CARDINALITY_TEXT),
        ("geo_lat", NULLABLE_FLOAT64),
        ("geo_lon", NULLABLE_FLOAT64),
        ("geo_accuracy_km", NULLABLE_UINT32),
        ("geo_timezone", LOW_CARDINALITY_TEXT),
        ("geo_continent", LOW_CARDINALITY_TEXT),
        ("geo_asn", NULLABLE_UINT32),
        ("geo_org", LOW_CARDINALITY_TEXT),
        ("ua_browser", LOW_CARDINALITY_TEXT),
        ("ua_browser_version", LOW_CARDINALITY_TEXT),
        ("ua_os", LOW_CARDINALITY_TEXT),
        ("ua_os_version", LOW_CARDINALITY_TEXT),
        ("ua_device_family", LOW_CARDINALITY_TEXT),
        ("ua_device_brand", LOW_CARDINALITY_TEXT),
        ("ua_device_model", LOW_CARDINALITY_TEXT),
        ("device_type", LOW_CARDINALITY_TEXT),
        ("is_touch", FLAG),
        ("is_bot", FLAG),
        ("session_id", TEXT),
        ("session_index", UINT32),
        ("session_event_index", UINT32),
        ("is_new_user", FLAG),
        ("first_seen_at", TIMESTAMP),
        ("enrich_errors", TEXT_LIST),
        ("kinesis_shard", LOW_CARDINALITY_TEXT),
        ("kinesis_seq", TEXT),
        ("kinesis_subseq", UINT32),
        ("processed_at", TIMESTAMP),
    )
)

REJECT_COLUMNS: tuple[Column, ...] = tuple(
    Column(name, kind)
    for name, kind in (
        ("client_id", LOW_CARDINALITY_TEXT),
        ("reason", LOW_CARDINALITY_TEXT),
        ("stage", LOW_CARDINALITY_TEXT),
        ("field", LOW_CARDINALITY_TEXT),
        ("detail", TEXT),
        ("raw_b64", TEXT),
        ("kinesis_shard", LOW_CARDINALITY_TEXT),
        ("kinesis_seq", TEXT),
        ("kinesis_subseq", UINT32),
        ("rejected_at", TIMESTAMP),
    )
)

# One row per (campaign, token) a push was sent to, as the campaign settled it
# (``pistats.push.results``). The token itself is never stored: token_hash is the sha256 hex of it.
PUSH_SEND_COLUMNS: tuple[Column, ...] = tuple(
    Column(name, kind)
    for name, kind in (
        ("campaign_id", TEXT),
        ("client_id", LOW_CARDINALITY_TEXT),
        ("property_id", LOW_CARDINALITY_TEXT),
        ("user_id", TEXT),
        ("token_hash", TEXT),
        ("platform", LOW_CARDINALITY_TEXT),
        ("status", LOW_CARDINALITY_TEXT),
        ("error_code", LOW_CARDINALITY_TEXT),
        ("attempts", UINT32),
        ("settled_at", TIMESTAMP),
    )
)

EVENT_COLUMN_NAMES = tuple(column.name for column in EVENT_COLUMNS)
REJECT_COLUMN_NAMES = tuple(column.name for column in REJECT_COLUMNS)
EVENT_INDEX = {name: index for index, name in enumerate(EVENT_COLUMN_NAMES)}
REJECT_INDEX = {name: index for index, name in enumerate(REJECT_COLUMN_NAMES)}


def event_column_names(*kinds: str) -> tuple[str, ...]:
    """The names of the event columns of these kinds, in row order."""
    return tuple(column.name for column in EVENT_COLUMNS if column.kind in kinds)
