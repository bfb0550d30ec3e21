"""The fast path for a micro-batch: ``event_row_fast`` for every event at once, column by column.

``event_rows_columnar`` takes a batch of rows (``pistats.wire.pack_rows``: one header and one
list of values per row), ``event_rows_from_columns`` the form the enrich bolt emits
(``pistats.wire.pack_columns``: one list of values per field); both check and convert each
column as a whole, one function per column kind below. They return the rows and byte estimates the row path
(``pistats.store.rows.event_row``) gives, or None when any row is not the plain case; the caller
then converts the batch row by row, with repairs and rejects. A check over a column of a hundred
values costs about what one value's check costs in a loop, which is where the sink spent most of
its time.

That equality is held by the property test ``test_columnar_and_row_paths_agree`` and by
``test_columnar_path_declines_or_equals_the_row_path_for_every_edge_case`` and
``test_columnar_rows_and_sizes_equal_the_row_path`` in tests/unit/store/test_store_rows.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain

from pistats.contract import is_text
from pistats.store.rows.columns import (
    EVENT_COLUMN_NAMES, FLAG, NULLABLE_UINT32, TEXT_KINDS, TIMESTAMP, UINT32, event_column_names,
)
from pistats.store.rows.fast_row import EVENT_FIXED_SIZE, cached_text_epoch_ms, text_epoch_ms
from pistats.store.rows.rule import COORDINATE_LIMIT, REQUIRED_EVENT_FIELDS, U32_MAX

_TEXT_NAMES = event_column_names(*TEXT_KINDS)
_FLAG_NAMES = event_column_names(FLAG)
_COUNT_NAMES = event_column_names(UINT32)
_NULLABLE_COUNT_NAMES = event_column_names(NULLABLE_UINT32)
_TIME_NAMES = event_column_names(TIMESTAMP)
_COORDINATE_LIMITS = tuple(COORDINATE_LIMIT.items())
_NONE_OR_TEXT = {str, type(None)}
_NONE_OR_COUNT = {int, type(None)}
_NONE_OR_NUMBER = {float, int, type(None)}

Columns = dict[str, Sequence]


def event_rows_columnar(fields: Sequence[str], values: Sequence[Sequence], max_string_chars: int
                        ) -> tuple[list[tuple], list[int]] | None:
    """The rows and byte estimates of a packed micro-batch (``fields``, ``values``), or None when
    a row is not the plain case (see the module docstring)."""
    if not values:
        return [], []
    by_name = _by_name(fields, values)
    if by_name is None:
        return None
    return _rows(by_name, max_string_chars)


def event_rows_from_columns(fields: Sequence[str], columns: Sequence[Sequence], max_string_chars: int
                            ) -> tuple[list[tuple], list[int]] | None:
    """``event_rows_columnar`` of a batch given column by column (``pistats.wire.pack_columns``:
    ``columns[i]`` holds every row's value of ``fields[i]``), with no transposing."""
    if not columns or not columns[0]:
        return [], []
    names = set(fields)
    if len(names) != len(fields) or not names.issuperset(EVENT_COLUMN_NAMES) or len(columns) != len(fields) \
            or len(set(map(len, columns))) != 1:
        return None
    return _rows(dict(zip(fields, columns)), max_string_chars)


def _rows(by_name: Columns, max_string_chars: int) -> tuple[list[tuple], list[int]] | None:
    columns: Columns = {}
    sizes = _texts(by_name, columns, max_string_chars)
    if sizes is None or not _required(by_name):
        return None
    if not (_flags(by_name, columns) and _counts(by_name, columns) and _nullable_counts(by_name, columns)
            and _coordinates(by_name, columns)):
        return None
    sizes = _text_lists(by_name, columns, sizes, max_string_chars)
    if sizes is None or not _times(by_name, columns):
        return None
    return list(zip(*(columns[name] for name in EVENT_COLUMN_NAMES))), sizes


def _by_name(fields: Sequence[str], values: Sequence[Sequence]) -> Columns | None:
    """Each field's column, or None unless the header names every event column once and every
    row has a value per field."""
    names = set(fields)
    if len(names) != len(fields) or not names.issuperset(EVENT_COLUMN_NAMES):
        return None
    if len(set(map(len, values))) != 1 or len(values[0]) != len(fields):
        return None
    return dict(zip(fields, zip(*values)))


def _texts(by_name: Columns, columns: Columns, max_string_chars: int) -> list[int] | None:
    """Text columns: text or None (stored as ""), valid UTF-8, within the limit. Returns each
    row's byte estimate so far: its texts plus the fixed part of every column."""
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
    columns.update(zip(_TEXT_NAMES, texts))
    base_size = EVENT_FIXED_SIZE + 2 * len(_TEXT_NAMES)
    return [base_size + size for size in map(sum, zip(*lengths))]


def _required(by_name: Columns) -> bool:
    """The required columns hold a value ("" and None are none) in every row."""
    return all(all(by_name[name]) for name in REQUIRED_EVENT_FIELDS)


def _flags(by_name: Columns, columns: Columns) -> bool:
    """Flag columns: real bools only, stored as 1 or 0."""
    for name in _FLAG_NAMES:
        column = by_name[name]
        if set(map(type, column)) != {bool}:
            return False
        columns[name] = tuple(map(int, column))
    return True


def _counts(by_name: Columns, columns: Columns) -> bool:
    """UInt32 columns: integers (not bools) in 0..2^32-1."""
    for name in _COUNT_NAMES:
        column = by_name[name]
        if set(map(type, column)) != {int} or min(column) < 0 or max(column) > U32_MAX:
            return False
        columns[name] = column
    return True


def _nullable_counts(by_name: Columns, columns: Columns) -> bool:
    """Nullable UInt32 columns: None or integers (not bools) in 0..2^32-1."""
    for name in _NULLABLE_COUNT_NAMES:
        column = by_name[name]
        present = [value for value in column if value is not None]
        if not set(map(type, column)) <= _NONE_OR_COUNT or (present and (min(present) < 0 or max(present) > U32_MAX)):
            return False
        columns[name] = column
    return True


def _coordinates(by_name: Columns, columns: Columns) -> bool:
    """Nullable Float64 columns (the coordinates): None or finite numbers within the column's
    limit, stored as floats."""
    for name, limit in _COORDINATE_LIMITS:
        column = by_name[name]
        kinds = set(map(type, column))
        if not kinds <= _NONE_OR_NUMBER:
            return False
        present = [value for value in column if value is not None]
        # NaN fails every comparison, so check finiteness before the range.
        if present and (not all(map(math.isfinite, present)) or min(present) < -limit or max(present) > limit):
            return False
        columns[name] = column if int not in kinds else tuple(None if value is None else float(value) for value in column)
    return True


def _text_lists(by_name: Columns, columns: Columns, sizes: list[int], max_string_chars: int) -> list[int] | None:
    """The text list column (``enrich_errors``): lists of valid UTF-8 text within the limit.
    Returns ``sizes`` with the lists' text added."""
    errors = by_name["enrich_errors"]
    if set(map(type, errors)) != {list}:
        return None
    if any(errors):
        notes = [note for row_errors in errors for note in row_errors]
        if set(map(type, notes)) != {str} or not is_text("".join(notes)) or max(map(len, notes)) > max_string_chars:
            return None
        sizes = list(map(_plus_lengths, sizes, errors))
    columns["enrich_errors"] = errors
    return sizes


def _plus_lengths(size: int, texts: list[str]) -> int:
    return size + sum(map(len, texts))


def _times(by_name: Columns, columns: Columns) -> bool:
    """Timestamp columns: RFC 3339 text in the DateTime range, None meaning the event time;
    stored as epoch milliseconds. Datetime objects (not what travels over multilang) are left to
    the row path."""
    event_times = by_name["event_time"]
    for name in _TIME_NAMES:
        column = by_name[name]
        if None in column:
            column = tuple(event_time if value is None else value for value, event_time in zip(column, event_times))
        if set(map(type, column)) != {str}:
            return False
        milliseconds = tuple(map(text_epoch_ms if name == "event_time" else cached_text_epoch_ms, column))
        if None in milliseconds:
            return False
        columns[name] = milliseconds
    return True
