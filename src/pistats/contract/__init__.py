"""The event contract (v1): what the SDKs send and what the ingest puts into Kinesis.

One package, shared by the ingest (which builds records) and the topology's parser (which
decodes them), so both sides agree by construction. See docs/contract.md.

- An *event* is one JSON object sent by an SDK; :func:`validate_event` lists its problems.
- A *record* is what the ingest writes to Kinesis for an accepted event:
  ``{"v": 1, "client_id", "received_at", "ip", "user_agent", "event", "clock_skew"}``,
  built by :func:`build_record`, serialised by :func:`encode_record`, put with
  :func:`partition_key`, and read back by :func:`decode_record`.

Bad data is a value (a list of :class:`Problem`, or a :class:`ContractError` carrying a reason
code from :data:`REJECT_REASONS`), never an unexpected exception.

Where each part lives:

- ``schema``: limits, field lists, event types, reject reasons, Problem, ContractError, is_text;
- ``timestamps``: RFC 3339 in and out, and the clock-skew flag;
- ``validation``: the rule, field by field (``validate_event``, ``record_problems``), and
  ``validate_record``, which asks the fast path first;
- ``fast``: ``plainly_valid_record``, "valid" for a record of the usual shape in one pass,
  held to the rule by property tests (named in its docstring);
- ``codec``: ``build_record``, ``encode_record``, ``partition_key``, ``decode_record``.

Everything is imported from ``pistats.contract`` itself; the modules are how it is kept.
"""

from __future__ import annotations

from pistats.contract.codec import build_record, decode_record, encode_record, partition_key
from pistats.contract.schema import (
    CLIENT_ID_MAX,
    CLOCK_SKEW_FUTURE,
    CLOCK_SKEW_PAST,
    CONTEXT_MAX_DEPTH,
    DERIVED_RECORD_FIELDS,
    EVENT_FIELDS,
    EVENT_ID_MAX,
    EVENT_TYPES,
    FIELD_PATH_MAX,
    MAX_BATCH_EVENTS,
    MAX_BODY_BYTES,
    MAX_EVENT_PROBLEMS,
    MAX_RECORD_BYTES,
    NOTIFICATION_ID_MAX,
    OPTIONAL_FIELDS,
    PARTITION_KEY_MAX,
    PROPERTIES_MAX_KEYS,
    PROPERTY_ID_MAX,
    PROPERTY_KEY_MAX,
    PROPERTY_VALUE_MAX,
    PUSH_TOKEN_MAX_BYTES,
    RECORD_FIELDS,
    RECORD_VERSION,
    REJECT_REASONS,
    REQUIRED_FIELDS,
    USER_ID_MAX,
    ContractError,
    Problem,
    is_text,
)
from pistats.contract.timestamps import format_timestamp, is_clock_skewed, parse_timestamp, record_clock_skew
from pistats.contract.validation import cut_field, validate_event, validate_record

__all__ = [
    "RECORD_VERSION", "MAX_RECORD_BYTES", "PARTITION_KEY_MAX", "EVENT_TYPES", "REJECT_REASONS",
    "MAX_BODY_BYTES", "MAX_BATCH_EVENTS", "CLOCK_SKEW_FUTURE", "CLOCK_SKEW_PAST",
    "EVENT_ID_MAX", "PROPERTY_ID_MAX", "USER_ID_MAX", "CLIENT_ID_MAX", "NOTIFICATION_ID_MAX",
    "PUSH_TOKEN_MAX_BYTES", "PROPERTIES_MAX_KEYS", "PROPERTY_KEY_MAX", "PROPERTY_VALUE_MAX",
    "CONTEXT_MAX_DEPTH", "MAX_EVENT_PROBLEMS", "FIELD_PATH_MAX",
    "REQUIRED_FIELDS", "OPTIONAL_FIELDS", "EVENT_FIELDS", "RECORD_FIELDS", "DERIVED_RECORD_FIELDS",
    "Problem", "ContractError", "is_text", "cut_field",
    "parse_timestamp", "format_timestamp", "is_clock_skewed", "record_clock_skew",
    "validate_event", "validate_record",
    "build_record", "encode_record", "partition_key", "decode_record",
]
