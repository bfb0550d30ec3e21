"""The fast path for one event: the row the rule gives, for the common event only, in bulk C-level checks.

``event_row_fast`` accepts an event whose every column key is present, whose text is valid UTF-8
within the limit, with real bools, counts in range, finite coordinates and RFC 3339 times; for
anything else it returns None and ``pistats.store.rows.rule.event_row_by_field`` converts (or
rejects) the event with its notes. Where it accepts, its row is the rule's row.

That equality is held by the property test ``test_fast_and_field_by_field_paths_agree`` and by
``test_fast_path_stores_what_the_field_by_field_path_stores`` (every edge case) in
tests/unit/store/test_store_rows.py. A change of the rule that this path does not follow makes
them fail; make this path decline the case rather than repeat the rule here.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping

from pistats.contract import is_text
from pistats.store.rows.columns import (
    EVENT_COLUMN_NAMES,
    EVENT_COLUMNS,
    EVENT_INDEX,
    FLAG,
    NULLABLE_UINT32,
    TEXT_KINDS,
    TIMESTAMP,
    UINT32,
    event_column_names,
)
from pistats.store.rows.rule import COORDINATE_LIMIT, FIXED_COST, REQUIRED_EVENT_FIELDS, U32_MAX, RowError, epoch_ms


def text_epoch_ms(text: str) -> int | None:
    """``epoch_ms`` of RFC 3339 text, or None when it is not storable."""
    try:
        return epoch_ms(text, "time")
    except RowError:
        return None


# Cached for the times of a micro-batch that repeat: one ``processed_at`` per batch, one
# ``received_at`` per request, one ``first_seen_at`` per user (and all four equal for an event
# seen first). Pure, so a hit equals a parse. ``event_time`` rarely repeats and skips the cache.
cached_text_epoch_ms = functools.lru_cache(maxsize=4096)(text_epoch_ms)


def _indexes(*kinds: str) -> tuple[int, ...]:
    return tuple(EVENT_INDEX[name] for name in event_column_names(*kinds))


_ALL_VALUES = operator.itemgetter(*EVENT_COLUMN_NAMES)
# Picked from the row tuple, not the event: indexing a tuple is cheaper than looking keys up again.
_TEXTS_OF_ROW = operator.itemgetter(*_indexes(*TEXT_KINDS))
_TEXT_INDEXES = _indexes(*TEXT_KINDS)
_FLAGS_OF_ROW = operator.itemgetter(*_indexes(FLAG))
_FLAG_INDEXES = _indexes(FLAG)
_COUNTS_OF_ROW = operator.itemgetter(*_indexes(UINT32))
_NULLABLE_COUNTS_OF_ROW = operator.itemgetter(*_indexes(NULLABLE_UINT32))
_REQUIRED_OF_ROW = operator.itemgetter(*(EVENT_INDEX[name] for name in REQUIRED_EVENT_FIELDS))
_COORDINATES = tuple((EVENT_INDEX[name], limit) for name, limit in COORDINATE_LIMIT.items())
_TIMES = tuple((EVENT_INDEX[name], name) for name in event_column_names(TIMESTAMP))
_EVENT_TIME_INDEX = EVENT_INDEX["event_time"]
_ERRORS_INDEX = EVENT_INDEX["enrich_errors"]
_NONE_OR_TEXT = {str, type(None)}
_TEXT_TYPES = ({str}, _NONE_OR_TEXT)
_FLAG_TYPES = ({bool},)
_COUNT_TYPES = ({int},)
EVENT_FIXED_SIZE = FIXED_COST * len(EVENT_COLUMNS)  # the rule's estimate for the columns' fixed part


def event_row_fast(event: Mapping, max_string_chars: int) -> tuple[tuple, int] | None:
    """(row, bytes) of a common event, or None: then the rule decides (see the module docstring)."""
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
    if set(map(type, counts)) not in _COUNT_TYPES or min(counts) < 0 or max(counts) > U32_MAX:
        return None
    for value in _NULLABLE_COUNTS_OF_ROW(values):
        if value is not None and (value.__class__ is not int or not 0 <= value <= U32_MAX):
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
            milliseconds = cached_text_epoch_ms(value)
            if milliseconds is None:
                return None
        else:
            try:
                milliseconds = epoch_ms(value, name)
            except RowError:
                return None
        row[index] = milliseconds
    size = len(joined) + 2 * (len(texts) - texts.count(None)) + sum(map(len, errors)) + EVENT_FIXED_SIZE
    return tuple(row), size
