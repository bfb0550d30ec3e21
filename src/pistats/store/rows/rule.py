"""The rule: how one enriched event or one reject becomes a row, field by field.

Conversion never raises for odd *values* it can repair, and records each repair in the row
instead of hiding it:

- a string longer than ``max_string_chars`` is cut to that length (noted ``store:truncated:<field>``
  in ``enrich_errors`` for events, appended to ``detail`` for rejects);
- a string that is not encodable as UTF-8 (lone surrogates) is stored with "?" in place of the bad code points
  (noted ``store:bad_unicode:<field>``);
- NaN, infinite or out-of-range coordinates become NULL (noted ``store:bad_coordinate:<field>``);
- NUL bytes are legal in ClickHouse ``String`` and are stored unchanged.

An event that cannot be stored at all (missing ``event_id``, a timestamp that is not RFC 3339, a
number where text is expected, ...) raises :class:`RowError`; the sink turns it into a reject
(``reason="schema"``, ``stage="sink"``) so the data failure is a stored value, never a crash.

The fast paths (``fast_row``, ``fast_columnar``) give the rows this rule gives for the events
they accept and decline the rest; they follow the rule, never the other way round.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from pistats.store.rows.columns import (
    EVENT_COLUMNS,
    EVENT_INDEX,
    FLAG,
    NULLABLE_FLOAT64,
    NULLABLE_UINT32,
    REJECT_COLUMNS,
    REJECT_INDEX,
    TEXT_KINDS,
    TIMESTAMP,
    UINT32,
)

# Oldest and newest instants that fit every server's DateTime (UInt32 seconds since the epoch).
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MIN_TIME = datetime(1970, 1, 2, tzinfo=timezone.utc)
_MAX_TIME = datetime(2105, 12, 31, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)
U32_MAX = 2**32 - 1
COORDINATE_LIMIT = {"geo_lat": 90.0, "geo_lon": 180.0}
# Fields whose absence makes an event meaningless; everything else has a default.
REQUIRED_EVENT_FIELDS = ("client_id", "event_id", "event_type", "user_id", "event_time")
# Times that default to the event time when absent.
_DEFAULTS_TO_EVENT_TIME = ("received_at", "first_seen_at", "processed_at")
FIXED_COST = 8  # rough bytes for a non-string value when bounding a batch


class RowError(ValueError):
    """An event that cannot become a row; ``field`` names the culprit."""

    def __init__(self, field: str, detail: str):
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def row_time(value: object, field: str) -> datetime:
    """An aware datetime or RFC 3339 text (the multilang form) -> aware UTC datetime in DateTime range."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise RowError(field, "not RFC 3339") from None
    if not isinstance(value, datetime):
        raise RowError(field, f"expected a timestamp, got {type(value).__name__}")
    if value.tzinfo is None:
        raise RowError(field, "timestamp without a time zone")
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00, before year 1 in UTC
        raise RowError(field, "timestamp outside 1970-01-02..2105-12-31") from None
    if not _MIN_TIME <= value < _MAX_TIME:
        raise RowError(field, "timestamp outside 1970-01-02..2105-12-31")
    return value


def epoch_ms(value: object, field: str) -> int:
    """Row form of a timestamp: integer milliseconds since the Unix epoch (UTC).

    Integers travel to both backends without per-value time-zone conversions.
    """
    return (row_time(value, field) - _EPOCH) // _MILLISECOND


def from_epoch_ms(milliseconds: int) -> datetime:
    return _EPOCH + milliseconds * _MILLISECOND


class _Converter:
    """Converts one value of each column kind; collects repair notes and a byte-size estimate."""

    def __init__(self, max_string_chars: int):
        self.max_string_chars = max_string_chars
        self.notes: list[str] = []
        self.size = 0

    def text(self, value: object, field: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            if isinstance(value, (dict, list, tuple, set)):
                raise RowError(field, f"expected text, got {type(value).__name__}")
            value = str(value)
        if len(value) > self.max_string_chars:
            value = value[: self.max_string_chars]
            self.notes.append(f"store:truncated:{field}")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                value = value.encode("utf-8", "replace").decode("utf-8")
                self.notes.append(f"store:bad_unicode:{field}")
        self.size += len(value) + 2
        return value

    def flag(self, value: object, field: str) -> int:
        if value is None:
            return 0
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return int(value)
        raise RowError(field, f"expected a boolean, got {value!r:.40}")

    def count(self, value: object, field: str, nullable: bool) -> int | None:
        if value is None:
            return None if nullable else 0
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U32_MAX:
            raise RowError(field, f"expected an integer in 0..2^32-1, got {value!r:.40}")
        return value

    def coordinate(self, value: object, field: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RowError(field, f"expected a number, got {type(value).__name__}")
        value = float(value)
        limit = COORDINATE_LIMIT.get(field, math.inf)
        if not math.isfinite(value) or abs(value) > limit:
            self.notes.append(f"store:bad_coordinate:{field}")
            return None
        return value

    def texts(self, value: object, field: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            raise RowError(field, f"expected a list of text, got {type(value).__name__}")
        return [self.text(item, field) for item in value]

    def convert(self, kind: str, value: object, field: str):
        if kind in TEXT_KINDS:
            return self.text(value, field)
        self.size += FIXED_COST
        if kind == TIMESTAMP:
            return epoch_ms(value, field)
        if kind == FLAG:
            return self.flag(value, field)
        if kind == UINT32:
            return self.count(value, field, nullable=False)
        if kind == NULLABLE_UINT32:
            return self.count(value, field, nullable=True)
        if kind == NULLABLE_FLOAT64:
            return self.coordinate(value, field)
        return self.texts(value, field)


_EVENT_PLAN = tuple((column.name, column.kind in TEXT_KINDS, column.kind) for column in EVENT_COLUMNS)
_ERRORS_INDEX = EVENT_INDEX["enrich_errors"]


def event_row_by_field(event: Mapping, max_string_chars: int) -> tuple[tuple, int]:
    """One enriched event -> (row, bytes), field by field: converts what it can repair (with
    notes in ``enrich_errors``), raises RowError for the rest."""
    if not isinstance(event, Mapping):
        raise RowError("event", f"expected an object, got {type(event).__name__}")
    get = event.get
    for field in REQUIRED_EVENT_FIELDS:
        if get(field) in (None, ""):
            raise RowError(field, "missing")
    slow = _Converter(max_string_chars)
    row: list = []
    append = row.append
    size = 0
    for name, textual, kind in _EVENT_PLAN:
        value = get(name)
        # Plain ASCII text within the limit, real bools and in-range counts need no conversion.
        if textual:
            if value.__class__ is str and len(value) <= max_string_chars and value.isascii():
                size += len(value) + 2
                append(value)
                continue
        elif kind == FLAG and value.__class__ is bool:
            append(int(value))
            continue
        elif kind == UINT32 and value.__class__ is int and 0 <= value <= U32_MAX:
            append(value)
            continue
        elif kind == TIMESTAMP and value is None and name in _DEFAULTS_TO_EVENT_TIME:
            value = get("event_time")
        append(slow.convert(kind, value, name))
    if slow.notes:
        row[_ERRORS_INDEX] = row[_ERRORS_INDEX] + slow.notes
    return tuple(row), size + slow.size + FIXED_COST * len(_EVENT_PLAN)


def reject_row(reject: Mapping, max_string_chars: int, now: datetime) -> tuple[tuple, int]:
    """One reject (dead letter) -> (row, bytes). Never raises: a reject is already the failure path.

    Missing or odd fields are stored as text ('' for None); a bad ``rejected_at`` becomes ``now``.
    """
    if not isinstance(reject, Mapping):
        reject = {"reason": "schema", "stage": "sink", "detail": f"reject was {type(reject).__name__}"}
    convert = _Converter(max_string_chars)
    row: list = []
    for column in REJECT_COLUMNS:
        name = column.name
        value = reject.get(name)
        if column.kind == UINT32:
            try:
                row.append(convert.count(value, name, nullable=False))
            except RowError:
                convert.notes.append(f"store:bad_value:{name}")
                row.append(0)
        elif column.kind == TIMESTAMP:
            try:
                row.append(epoch_ms(value, name))
            except RowError:
                row.append(epoch_ms(now, name))
        else:
            try:
                row.append(convert.text(value, name))
            except RowError:
                row.append(convert.text(json.dumps(value, default=str), name))
    if convert.notes:
        detail_index = REJECT_INDEX["detail"]
        row[detail_index] = " ".join([row[detail_index], *convert.notes]).strip()
    return tuple(row), convert.size + FIXED_COST * len(REJECT_COLUMNS)
