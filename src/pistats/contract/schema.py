"""The shape of the contract (v1): limits, field lists, event types, reject reasons, what text is.

Validation (``pistats.contract.validation``), its fast path (``pistats.contract.fast``) and the
codec (``pistats.contract.codec``) all read their limits from here, so they agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

RECORD_VERSION = 1
MAX_RECORD_BYTES = 64 * 1024
# Kinesis's limit, counted in UTF-16 code units as Java counts a String's length (kinesis-local
# agrees: 128 characters outside the BMP pass, 129 do not).
PARTITION_KEY_MAX = 256
EVENT_TYPES = ("register", "subscribe", "unsubscribe", "page_view", "notification_click")
REJECT_REASONS = ("bad_encoding", "bad_json", "unsupported_version", "schema", "too_large", "bad_kpl")

# Request limits of POST /v1/events (the ingest enforces them; they are part of the contract).
MAX_BODY_BYTES = 512 * 1024
MAX_BATCH_EVENTS = 100

# Clock sanity: an event time outside [now - PAST, now + FUTURE] is kept but flagged.
CLOCK_SKEW_FUTURE = timedelta(hours=24)
CLOCK_SKEW_PAST = timedelta(days=30)

EVENT_ID_MAX = 64
PROPERTY_ID_MAX = 128
USER_ID_MAX = 128
CLIENT_ID_MAX = 128
NOTIFICATION_ID_MAX = 128
PUSH_TOKEN_MAX_BYTES = 4096
PROPERTIES_MAX_KEYS = 50
PROPERTY_KEY_MAX = 128
PROPERTY_VALUE_MAX = 1024
# Unknown context keys are kept as they come, within this nesting depth.
CONTEXT_MAX_DEPTH = 5

# Problems are echoed to the client, so hostile input must not amplify: validation lists at
# most MAX_EVENT_PROBLEMS problems per event (and stops looking), and a problem's field path
# is cut to FIELD_PATH_MAX bytes of JSON (see ``pistats.contract.validation.cut_field``).
MAX_EVENT_PROBLEMS = 10
FIELD_PATH_MAX = 100

REQUIRED_FIELDS = ("event_id", "type", "property_id", "user_id", "timestamp")
OPTIONAL_FIELDS = ("push_token", "notification_id", "context", "properties")
EVENT_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
RECORD_FIELDS = ("v", "client_id", "received_at", "ip", "user_agent", "event", "clock_skew")
# Record fields a reader derives when absent: the first description of the record had no
# clock_skew, and it follows from timestamp and received_at (see record_clock_skew).
DERIVED_RECORD_FIELDS = ("clock_skew",)
EVENT_FIELD_SET = frozenset(EVENT_FIELDS)
RECORD_FIELD_SET = frozenset(RECORD_FIELDS)
EVENT_TYPE_SET = frozenset(EVENT_TYPES)

# Known context keys and their limits (characters); other context keys are kept unchecked
# apart from being plain, finite JSON.
CONTEXT_TEXT_LIMITS = {
    "page_url": 4096,
    "referrer": 4096,
    "locale": 64,
    "timezone": 64,
    "user_agent": 2048,
}
# The known keys of context.sdk (text of at most SDK_TEXT_MAX characters) and of context.screen
# (integers in 0..SCREEN_DIMENSION_MAX).
SDK_KEYS = ("name", "version")
SDK_TEXT_MAX = 64
SCREEN_KEYS = ("width", "height")
SCREEN_DIMENSION_MAX = 100_000


@dataclass(frozen=True)
class Problem:
    """One validation problem: ``field`` is a dotted path inside the event ('' for the event itself)."""

    field: str
    problem: str

    def as_dict(self) -> dict:
        return {"field": self.field, "problem": self.problem}


class ContractError(Exception):
    """A record that is not a valid v1 record: ``reason`` is one of :data:`REJECT_REASONS`.

    ``field`` names the offending record field (dotted, e.g. ``event.timestamp``) for
    ``schema`` errors and is None otherwise; ``detail`` is a one-line explanation.
    """

    def __init__(self, reason: str, detail: str, field: str | None = None):
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}")
        self.reason = reason
        self.field = field
        self.detail = detail
        where = f" {field}" if field else ""
        super().__init__(f"{reason}{where}: {detail}")


def is_text(value: object) -> bool:
    """A str that encodes to UTF-8 (json.loads lets lone surrogates such as "\\ud800" through)."""
    if type(value) is not str:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_ascii_text(value: object, min_len: int, max_len: int) -> bool:
    """ASCII text of an allowed length: the usual case, valid without the finer checks."""
    return type(value) is str and min_len <= len(value) <= max_len and value.isascii()
