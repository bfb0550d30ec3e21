"""Enriched events and rejects -> table rows: one column list per table, deliberate handling of bad values.

One rule, and fast paths that follow it:

- ``columns``: the column schema, each table's columns in row order with their kinds
  (``TEXT``, ``TIMESTAMP``, ``FLAG``, ...: import them from there);
- ``rule``: the rule, field by field: what each value of each kind becomes, which odd values
  are repaired (and noted in the row) and which make an event unstorable (:class:`RowError`);
  ``reject_row`` for rejects;
- ``fast_row``: the rule's row for a common event, in bulk checks, or None (then the rule);
- ``fast_columnar``: the same for a whole micro-batch, column by column, or None (then the
  batch goes row by row);
- ``rejects``: the rejects the store makes itself (an unstorable event, a refused row);
- ``keys``: the identity of a row and the deduplication token of a batch.

The fast paths accept only values whose row they can give without a repair, and property tests
(named in their docstrings) hold their rows equal to the rule's.
"""

from __future__ import annotations

from collections.abc import Mapping

from pistats.store.rows.columns import EVENT_COLUMN_NAMES, EVENT_COLUMNS, REJECT_COLUMN_NAMES, REJECT_COLUMNS, Column
from pistats.store.rows.fast_columnar import event_rows_columnar, event_rows_from_columns
from pistats.store.rows.fast_row import event_row_fast
from pistats.store.rows.keys import dedup_token, event_key, reject_key
from pistats.store.rows.rejects import STORE_REFUSED, STORE_STAGE, reject_for_event, reject_for_refused_row
from pistats.store.rows.rule import RowError, epoch_ms, event_row_by_field, from_epoch_ms, reject_row, row_time

__all__ = [
    "EVENT_COLUMNS", "EVENT_COLUMN_NAMES", "REJECT_COLUMNS", "REJECT_COLUMN_NAMES", "Column",
    "RowError", "row_time", "epoch_ms", "from_epoch_ms",
    "event_row", "event_rows_columnar", "event_rows_from_columns", "reject_row",
    "STORE_REFUSED", "STORE_STAGE", "reject_for_event", "reject_for_refused_row",
    "event_key", "reject_key", "dedup_token",
]


def event_row(event: Mapping, max_string_chars: int) -> tuple[tuple, int]:
    """One enriched event (the brief's contract; datetimes as objects or RFC 3339 text) -> (row, bytes).

    Timestamps become epoch milliseconds (``from_epoch_ms`` turns them back). Raises
    :class:`RowError` when the event cannot be stored; repairs are noted in ``enrich_errors``.
    The fast path gives the row of a common event; the rule converts every other one.
    """
    fast = event_row_fast(event, max_string_chars)
    return fast if fast is not None else event_row_by_field(event, max_string_chars)
