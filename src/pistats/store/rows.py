"""Enriched events and rejects -> table rows: one column list per table, deliberate handling of bad values.

A row is a tuple in the order of ``EVENT_COLUMNS`` / ``REJECT_COLUMNS``. Conversion never raises for
odd *values* it can repair, and records each repair in the row instead of hiding it:

- a string longer than ``max_string_chars`` is cut to that length (noted ``store:truncated:<field>``
  in ``enrich_errors`` for events, appended to ``detail`` for rejects);
- a string that is not encodable as UTF-8 (lone surrogates) is stored with "?" in place of the bad code points
  (noted ``store:bad_unicode:<field>``);
- NaN, infinite or out-of-range coordinates become NULL (noted ``store:bad_coordinate:<field>``);
- NUL bytes are legal in ClickHouse ``String`` and are stored unchanged.

An event that cannot be stored at all (missing ``event_id``, a timestamp that is not RFC 3339, a
number where text is expected, ...) raises :class:`RowError`; the sink turns it into a reject
(``reason="schema"``, ``stage="sink"``) so the data failure is a stored value, never a crash.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import operator
from itertools import chain
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pistats.contract import is_text

# Column kinds; their SQL types per server are in pistats.store.schema.
STR, LC, DT, BOOL, U32, NF64, NU32, STRARR = "str", "lc", "dt", "bool", "u32", "nf64", "nu32", "strarr"


@dataclass(frozen=True)
class Column:
    name: str
    kind: str


EVENT_COLUMNS: tuple[Column, ...] = tuple(
    Column(name, kind)
    for name, kind in (
        ("client_id", LC),
        ("property_id", LC),
        ("event_id", STR),
        ("event_type", LC),
        ("user_id", STR),
        ("event_time", DT),
        ("received_at", DT),
        ("ip", STR),
        ("user_agent", STR),
        ("push_token", STR),
        ("notification_id", STR),
        ("page_url", STR),
        ("referrer", STR),
        ("locale", LC),
        ("sdk_name", LC),
        ("sdk_version", LC),
        ("context_json", STR),
        ("properties_json", STR),
        ("clock_skew", BOOL),
        ("geo_country", LC),
        ("geo_country_name", LC),
        ("geo_region", LC),
        ("geo_city", LC),
        ("geo_postal", LC),
        ("geo_lat", NF64),
        ("geo_lon", NF64),
        ("geo_accuracy_km", NU32),
        ("geo_timezone", LC),
        ("geo_continent", LC),
        ("geo_asn", NU32),
        ("geo_org", LC),
        ("ua_browser", LC),
        ("ua_browser_version", LC),
        ("ua_os", LC),
        ("ua_os_version", LC),
        ("ua_device_family", LC),
        ("ua_device_brand", LC),
        ("ua_device_model", LC),
        ("device_type", LC),
        ("is_touch", BOOL),
        ("is_bot", BOOL),
        ("session_id", STR),
        ("session_index", U32),
        ("session_event_index", U32),
        ("is_new_user", BOOL),
        ("first_seen_at", DT),
        ("enrich_errors", STRARR),
        ("kinesis_shard", LC),
        ("kinesis_seq", STR),
        ("kinesis_subseq", U32),
        ("processed_at", DT),
    )
)

REJECT_COLUMNS: tuple[Column, ...] = tuple(
    Column(name, kind)
    for name, kind in (
        ("client_id", LC),
        ("reason", LC),
        ("stage", LC),
        ("field", LC),
        ("detail", STR),
        ("raw_b64", STR),
        ("kinesis_shard", LC),
        ("kinesis_seq", STR),
        ("kinesis_subseq", U32),
        ("rejected_at", DT),
    )
)

EVENT_COLUMN_NAMES = tuple(column.name for column in EVENT_COLUMNS)
REJECT_COLUMN_NAMES = tuple(column.name for column in REJECT_COLUMNS)
_EVENT_INDEX = {name: index for index, name in enumerate(EVENT_COLUMN_NAMES)}
_REJECT_INDEX = {name: index for index, name in enumerate(REJECT_COLUMN_NAMES)}

# Oldest and newest instants that fit every server's DateTime (UInt32 seconds since the epoch).
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MIN_TIME = datetime(1970, 1, 2, tzinfo=timezone.utc)
_MAX_TIME = datetime(2105, 12, 31, tzinfo=timezone.utc)
_MILLISECOND = timedelta(milliseconds=1)
_U32_MAX = 2**32 - 1
_COORDINATE_LIMIT = {"geo_lat": 90.0, "geo_lon": 180.0}
# Fields whose absence makes an event meaningless; everything else has a default.
_REQUIRED_EVENT_FIELDS = ("client_id", "event_id", "event_type", "user_id", "event_time")
# Times that default to the event time when absent.
_DEFAULTS_TO_EVENT_TIME = ("received_at", "first_seen_at", "processed_at")
_FIXED_COST = 8  # rough bytes for a non-string value when bounding a batch


class RowError(ValueError):
    """An event that cannot become a row; ``field`` names the culprit."""

    def __init__(self, field: str, detail: str):
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


def parse_time(value: object, field: str) -> datetime:
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
    return (parse_time(value, field) - _EPOCH) // _MILLISECOND


def from_epoch_ms(milliseconds: int) -> datetime:
    return _EPOCH + milliseconds * _MILLISECOND


def _parse_text_epoch_ms(text: str) -> int | None:
    """``epoch_ms`` of RFC 3339 text, or None when it is not storable."""
    try:
        return epoch_ms(text, "time")
    except RowError:
        return None


# Cached for the times of a micro-batch that repeat: one ``processed_at`` per batch, one
# ``received_at`` per request, one ``first_seen_at`` per user (and all four equal for an event
# seen first). Pure, so a hit equals a parse. ``event_time`` rarely repeats and skips the cache.
_text_epoch_ms = functools.lru_cache(maxsize=4096)(_parse_text_epoch_ms)


class _Converter:
    """Converts values the fast path did not accept; collects repair notes and a byte-size estimate."""

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
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U32_MAX:
            raise RowError(field, f"expected an integer in 0..2^32-1, got {value!r:.40}")
        return value

    def coordinate(self, value: object, field: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RowError(field, f"expected a number, got {type(value).__name__}")
        value = float(value)
        limit = _COORDINATE_LIMIT.get(field, math.inf)
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
        if kind in (STR, LC):
            return self.text(value, field)
        self.size += _FIXED_COST
        if kind == DT:
            return epoch_ms(value, field)
        if kind == BOOL:
            return self.flag(value, field)
        if kind == U32:
            return self.count(value, field, nullable=False)
        if kind == NU32:
            return self.count(value, field, nullable=True)
        if kind == NF64:
            return self.coordinate(value, field)
        return self.texts(value, field)


_EVENT_PLAN = tuple((column.name, column.kind in (STR, LC), column.kind) for column in EVENT_COLUMNS)
_ERRORS_INDEX = _EVENT_INDEX["enrich_errors"]
_REQUIRED_INDEXES = tuple(_EVENT_INDEX[name] for name in _REQUIRED_EVENT_FIELDS)


def _names(kinds: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(column.name for column in EVENT_COLUMNS if column.kind in kinds)


def _indexes(kinds: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(_EVENT_INDEX[name] for name in _names(kinds))


_ALL_VALUES = operator.itemgetter(*EVENT_COLUMN_NAMES)
# Picked from the row tuple, not the event: indexing a tuple is cheaper than looking keys up again.
_TEXTS_OF_ROW = operator.itemgetter(*_indexes((STR, LC)))
_TEXT_INDEXES = _indexes((STR, LC))
_FLAGS_OF_ROW = operator.itemgetter(*_indexes((BOOL,)))
_FLAG_INDEXES = _indexes((BOOL,))
_COUNTS_OF_ROW = operator.itemgetter(*_indexes((U32,)))
_NULLABLE_COUNTS_OF_ROW = operator.itemgetter(*_indexes((NU32,)))
_REQUIRED_OF_ROW = operator.itemgetter(*_REQUIRED_INDEXES)
_COORDINATES = tuple((_EVENT_INDEX[name], limit) for name, limit in _COORDINATE_LIMIT.items())
_TIMES = tuple((_EVENT_INDEX[name], name) for name in _names((DT,)))
_EVENT_TIME_INDEX = _EVENT_INDEX["event_time"]
_NONE_OR_TEXT = {str, type(None)}
_TEXT_TYPES = ({str}, _NONE_OR_TEXT)
_FLAG_TYPES = ({bool},)
_COUNT_TYPES = ({int},)
_FIXED_SIZE = _FIXED_COST * len(_EVENT_PLAN)


def _event_row_fast(event: Mapping, max_string_chars: int) -> tuple[tuple, int] | None:
    """The common case in bulk C-level checks: every key present, text valid UTF-8 within the limit,
    real bools, counts in range, finite coordinates. Returns None for anything else, which the
    field-by-field path then converts (or rejects) with notes; both paths give the same row."""
    try:
        values = _ALL_VALUES(event)
    except (KeyError, TypeError):
        return None
    texts = _TEXTS_OF_ROW(values)
    if set(map(type, texts)) not in _TEXT_TYPES or set(map(type, _FLAGS_OF_ROW(values))) not in _FLAG_TYPES:
        return None
    if not all(_REQUIRED_OF_ROW(values)):
        return None
    counts = _COUNTS_OF_ROW(values)
    if set(map(type, counts)) not in _COUNT_TYPES or min(counts) < 0 or max(counts) > _U32_MAX:
        return None
    for value in _NULLABLE_COUNTS_OF_ROW(values):
        if value is not None and (value.__class__ is not int or not 0 <= value <= _U32_MAX):
            return None
    # "" adds nothing to the text checks and None becomes ""; filter(None, ...) drops both in C.
    present_texts = list(filter(None, texts))
    joined = "".join(present_texts)
    if not is_text(joined) or max(map(len, present_texts), default=0) > max_string_chars:
        return None
    errors = values[_ERRORS_INDEX]
    if errors.__class__ is not list or (errors and (
        set(map(type, errors)) != {str} or not is_text("".join(errors))
        or max(map(len, errors)) > max_string_chars
    )):
        return None
    row = list(values)
    if len(present_texts) != len(texts):
        # Only a few texts are None: find them with C-level scans rather than test all of them.
        position = -1
        while True:
            try:
                position = texts.index(None, position + 1)
            except ValueError:
                break
            row[_TEXT_INDEXES[position]] = ""
    for index, limit in _COORDINATES:
        value = row[index]
        if value is not None:
            if value.__class__ not in (float, int) or not -limit <= value <= limit:  # NaN fails both
                return None
            row[index] = float(value)
    for index in _FLAG_INDEXES:
        row[index] = 1 if row[index] else 0
    for index, name in _TIMES:
        value = row[index]
        if value is None:
            value = values[_EVENT_TIME_INDEX]
        if value.__class__ is str:
            milliseconds = _text_epoch_ms(value)
            if milliseconds is None:
                return None
        else:
            try:
                milliseconds = epoch_ms(value, name)
            except RowError:
                return None
        row[index] = milliseconds
    size = len(joined) + 2 * (len(texts) - texts.count(None)) + sum(map(len, errors)) + _FIXED_SIZE
    return tuple(row), size


_TEXT_NAMES = _names((STR, LC))
_FLAG_NAMES = _names((BOOL,))
_COUNT_NAMES = _names((U32,))
_NULLABLE_COUNT_NAMES = _names((NU32,))
_TIME_NAMES = _names((DT,))
_NONE_OR_COUNT = {int, type(None)}
_NONE_OR_NUMBER = {float, int, type(None)}


def event_rows_columnar(fields: Sequence[str], values: Sequence[Sequence], max_string_chars: int
                        ) -> tuple[list[tuple], list[int]] | None:
    """``_event_row_fast`` for a whole micro-batch at once, column by column: the rows and their
    byte estimates, or None when any row is not the plain case (the caller then converts the
    batch row by row, with repairs and rejects). ``fields`` and ``values`` are the packed form
    of ``pistats.wire.pack_rows``: one header and one list of values per row.

    A check over a column of a hundred values costs about what one value's check costs in a loop,
    which is where the sink spent most of its time. Gives the very rows ``event_row`` gives.
    """
    if not values:
        return [], []
    names = set(fields)
    if len(names) != len(fields) or not names.issuperset(EVENT_COLUMN_NAMES):
        return None
    if len(set(map(len, values))) != 1 or len(values[0]) != len(fields):
        return None
    by_name = dict(zip(fields, zip(*values)))
    texts = [by_name[name] for name in _TEXT_NAMES]
    kinds = set(map(type, chain.from_iterable(texts)))
    if not kinds <= _NONE_OR_TEXT:
        return None
    lengths = []
    for position, column in enumerate(texts):
        if type(None) in kinds and None in column:
            # None is stored as "" and counts nothing (a text counts its length + 2).
            lengths.append([-2 if value is None else len(value) for value in column])
            texts[position] = tuple("" if value is None else value for value in column)
        else:
            lengths.append(list(map(len, column)))
    if max(map(max, lengths)) > max_string_chars or not is_text("".join(chain.from_iterable(texts))):
        return None
    columns = dict(zip(_TEXT_NAMES, texts))
    base_size = _FIXED_SIZE + 2 * len(_TEXT_NAMES)
    sizes = [base_size + size for size in map(sum, zip(*lengths))]
    for name in _REQUIRED_EVENT_FIELDS:
        if not all(by_name[name]):
            return None
    for name in _FLAG_NAMES:
        column = by_name[name]
        if set(map(type, column)) != {bool}:
            return None
        columns[name] = tuple(map(int, column))
    for name in _COUNT_NAMES:
        column = by_name[name]
        if set(map(type, column)) != {int} or min(column) < 0 or max(column) > _U32_MAX:
            return None
        columns[name] = column
    for name in _NULLABLE_COUNT_NAMES:
        column = by_name[name]
        present = [value for value in column if value is not None]
        if not set(map(type, column)) <= _NONE_OR_COUNT or (present and (min(present) < 0 or max(present) > _U32_MAX)):
            return None
        columns[name] = column
    for name, limit in _COORDINATE_LIMIT.items():
        column = by_name[name]
        kinds = set(map(type, column))
        if not kinds <= _NONE_OR_NUMBER:
            return None
        present = [value for value in column if value is not None]
        # NaN fails every comparison, so check finiteness before the range.
        if present and (not all(map(math.isfinite, present)) or min(present) < -limit or max(present) > limit):
            return None
        columns[name] = column if int not in kinds else tuple(None if value is None else float(value) for value in column)
    errors = by_name["enrich_errors"]
    if set(map(type, errors)) != {list}:
        return None
    if any(errors):
        notes = [note for row_errors in errors for note in row_errors]
        if set(map(type, notes)) != {str} or not is_text("".join(notes)) or max(map(len, notes)) > max_string_chars:
            return None
        sizes = list(map(_plus_lengths, sizes, errors))
    columns["enrich_errors"] = errors
    event_times = by_name["event_time"]
    for name in _TIME_NAMES:
        column = by_name[name]
        if None in column:
            column = tuple(event_time if value is None else value for value, event_time in zip(column, event_times))
        if set(map(type, column)) != {str}:
            return None  # datetime objects (not what travels over multilang): the row path handles them
        milliseconds = tuple(map(_parse_text_epoch_ms if name == "event_time" else _text_epoch_ms, column))
        if None in milliseconds:
            return None
        columns[name] = milliseconds
    return list(zip(*(columns[name] for name in EVENT_COLUMN_NAMES))), sizes


def _plus_lengths(size: int, texts: list[str]) -> int:
    return size + sum(map(len, texts))


def event_row(event: Mapping, max_string_chars: int) -> tuple[tuple, int]:
    """One enriched event (the brief's contract; datetimes as objects or RFC 3339 text) -> (row, bytes).

    Timestamps become epoch milliseconds (``from_epoch_ms`` turns them back). Raises
    :class:`RowError` when the event cannot be stored; repairs are noted in ``enrich_errors``.
    """
    fast = _event_row_fast(event, max_string_chars)
    return fast if fast is not None else _event_row_checked(event, max_string_chars)


def _event_row_checked(event: Mapping, max_string_chars: int) -> tuple[tuple, int]:
    """Field by field: converts what it can repair (with notes), raises RowError for the rest."""
    if not isinstance(event, Mapping):
        raise RowError("event", f"expected an object, got {type(event).__name__}")
    get = event.get
    for field in _REQUIRED_EVENT_FIELDS:
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
        elif kind == BOOL and value.__class__ is bool:
            append(int(value))
            continue
        elif kind == U32 and value.__class__ is int and 0 <= value <= _U32_MAX:
            append(value)
            continue
        elif kind == DT and value is None and name in _DEFAULTS_TO_EVENT_TIME:
            value = get("event_time")
        append(slow.convert(kind, value, name))
    if slow.notes:
        row[_ERRORS_INDEX] = row[_ERRORS_INDEX] + slow.notes
    return tuple(row), size + slow.size + _FIXED_COST * len(_EVENT_PLAN)


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
        if column.kind == U32:
            try:
                row.append(convert.count(value, name, nullable=False))
            except RowError:
                convert.notes.append(f"store:bad_value:{name}")
                row.append(0)
        elif column.kind == DT:
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
        detail_index = _REJECT_INDEX["detail"]
        row[detail_index] = " ".join([row[detail_index], *convert.notes]).strip()
    return tuple(row), convert.size + _FIXED_COST * len(REJECT_COLUMNS)


def reject_for_event(event: object, error: RowError, now: datetime) -> dict:
    """The dead letter for an event the store cannot hold: the whole event kept as base64 JSON."""
    mapping = event if isinstance(event, Mapping) else {}
    raw = json.dumps(event, default=str, ensure_ascii=False).encode("utf-8", "replace")
    return {
        "reason": "schema",
        "stage": "sink",
        "field": error.field,
        "detail": error.detail,
        "raw_b64": base64.b64encode(raw).decode("ascii"),
        "kinesis_shard": mapping.get("kinesis_shard"),
        "kinesis_seq": mapping.get("kinesis_seq"),
        "kinesis_subseq": mapping.get("kinesis_subseq"),
        "client_id": mapping.get("client_id") if isinstance(mapping.get("client_id"), str) else "",
        "rejected_at": now,
    }


STORE_REFUSED = "store_refused"
STORE_STAGE = "store"
_MAX_REFUSAL_CHARS = 1000  # the engine's message, as the detail of a reject


def _row_as_record(columns: tuple[Column, ...], row: tuple) -> dict:
    """A stored row back in the form the sink receives (times as RFC 3339 text, flags as bools)."""
    record = {}
    for column, value in zip(columns, row):
        if column.kind == DT and isinstance(value, int):
            value = from_epoch_ms(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        elif column.kind == BOOL:
            value = bool(value)
        record[column.name] = value
    return record


_REPLAY_VARIANT = frozenset({"processed_at", "rejected_at"})


def reject_for_refused_row(columns: tuple[Column, ...], row: tuple, message: str, together: int,
                           now: datetime, keep_raw: bool = True) -> dict:
    """The dead letter for a row the store refused for its data: ``reason="store_refused"``,
    ``stage="store"``, the engine's message (cut to 1,000 characters) as ``detail``, the row's
    provenance and, with ``keep_raw``, the row as base64 JSON in the form the sink receives it
    (what the reject table allows: text cut at ``max_string_chars``, noted) without its
    ``processed_at``/``rejected_at``, so that a replay of the row gives the same reject.

    ``together`` is how many rows the engine refused along with this one without the sink
    telling them apart (1 when this row alone was refused). Without ``keep_raw`` (the row was
    itself a reject the store refused) only the provenance and the message are kept.
    """
    record = _row_as_record(columns, row)
    detail = message[:_MAX_REFUSAL_CHARS]
    if together > 1:
        detail += f" (refused together with {together - 1} other rows; not told apart)"
    if not keep_raw and "reason" in record:
        detail += f" (in place of a {record['reason']} reject from stage {record.get('stage')})"
    raw = ""
    if keep_raw:
        # Without the time the row was made: a replayed row must give the same reject, which the
        # reject table's key (it holds raw_b64) then collapses into one.
        stable = {name: value for name, value in record.items() if name not in _REPLAY_VARIANT}
        raw = base64.b64encode(json.dumps(stable, default=str, ensure_ascii=False).encode("utf-8", "replace")).decode("ascii")
    client_id = record.get("client_id")
    return {
        "client_id": client_id if isinstance(client_id, str) else "",
        "reason": STORE_REFUSED,
        "stage": STORE_STAGE,
        "field": "",
        "detail": detail,
        "raw_b64": raw,
        "kinesis_shard": record.get("kinesis_shard"),
        "kinesis_seq": record.get("kinesis_seq"),
        "kinesis_subseq": record.get("kinesis_subseq"),
        "rejected_at": now,
    }


_CLIENT_ID_INDEX, _EVENT_ID_INDEX = _EVENT_INDEX["client_id"], _EVENT_INDEX["event_id"]


def event_key(row: tuple) -> str:
    """The identity ReplacingMergeTree collapses on: (client_id, event_id)."""
    return f"{row[_CLIENT_ID_INDEX]}\x1f{row[_EVENT_ID_INDEX]}"


def reject_key(row: tuple) -> str:
    """A reject is identified by the record it came from and where it failed."""
    return "\x1f".join(
        str(row[_REJECT_INDEX[name]])
        for name in ("client_id", "reason", "stage", "kinesis_shard", "kinesis_seq", "kinesis_subseq", "raw_b64")
    )


def dedup_token(table: str, keys: list[str]) -> str:
    """Deterministic token of a batch: the same rows in the same order give the same token on retry."""
    digest = hashlib.sha256(table.encode("utf-8"))
    for key in keys:
        digest.update(b"\x1e")
        digest.update(key.encode("utf-8", "replace"))
    return digest.hexdigest()[:40]
