"""Inserts the store refuses for their data: which failures they are, and which rows caused them.

A *refusal* is an insert the engine turned down because of the rows it carries: a value it
cannot parse or convert, a constraint (``CHECK``, ``throwIf``) the row violates, rows spanning
more partitions than one insert may create. Sending the same rows again fails the same way, so
a refusal is not retried: the sink finds the refused rows (:func:`isolate_refused`), stores
them as rejects and stores the others.

Every other failure is *transient*, or at least not the rows' fault: the network, timeouts,
memory, too many queries or parts (merges behind), a missing table or column, an unknown error.
Those are retried, then the tuples fail and Storm replays them. When in doubt a failure is
transient: a wrong "transient" costs a replay, a wrong "refusal" would turn good rows into
rejects.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# ClickHouse error codes (src/Common/ErrorCodes.cpp) that an insert raises for its rows' values.
DATA_ERROR_CODES: dict[int, str] = {
    6: "CANNOT_PARSE_TEXT",
    26: "CANNOT_PARSE_QUOTED_STRING",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    38: "CANNOT_PARSE_DATE",
    41: "CANNOT_PARSE_DATETIME",
    53: "TYPE_MISMATCH",
    69: "ARGUMENT_OUT_OF_BOUND",
    70: "CANNOT_CONVERT_TYPE",
    72: "CANNOT_PARSE_NUMBER",
    117: "INCORRECT_DATA",
    128: "TOO_LARGE_ARRAY_SIZE",
    131: "TOO_LARGE_STRING_SIZE",
    190: "SIZES_OF_ARRAYS_DOESNT_MATCH",
    321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
    376: "CANNOT_PARSE_UUID",
    395: "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
    407: "DECIMAL_OVERFLOW",
    441: "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
    469: "VIOLATED_CONSTRAINT",
}
# 252 is TOO_MANY_PARTS for two different failures: "Too many parts (N) ... merges are processing
# significantly slower than inserts" (transient: wait for the merges) and "Too many partitions for
# (a) single INSERT block" (the rows span more partitions than max_partitions_per_insert_block).
TOO_MANY_PARTS = 252
_TOO_MANY_PARTITIONS = re.compile(r"too many partitions for (?:a )?single insert block", re.IGNORECASE)
_CODE = re.compile(r"\bCode:\s*(\d+)")


def error_code(message: str) -> int | None:
    """The ClickHouse error code in an error's text (``"Code: 252. DB::Exception: ..."``), if any."""
    match = _CODE.search(message)
    return int(match.group(1)) if match else None


def is_refusal(code: int | None, message: str) -> bool:
    """True when an insert failed for the data it carries (the same rows would fail again);
    False for anything else, including failures without a code (connection refused, socket
    errors) and codes not known to be about data."""
    if code == TOO_MANY_PARTS:
        return bool(_TOO_MANY_PARTITIONS.search(message))
    return code in DATA_ERROR_CODES


@dataclass(frozen=True)
class Refused:
    """Rows ``[start, stop)`` of a batch the store refused with ``message``. ``isolated`` is
    True when the range is a single row; False when the insert budget ran out before the
    range could be split further (the engine refused the range as a whole)."""

    start: int
    stop: int
    message: str

    @property
    def isolated(self) -> bool:
        return self.stop - self.start == 1

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Isolation:
    """What bisection found: rows stored, ranges refused (in row order), inserts it tried."""

    stored: int
    refused: tuple[Refused, ...]
    inserts: int


def isolate_refused(size: int, message: str, insert: Callable[[int, int], str | None],
                    max_inserts: int) -> Isolation:
    """Rows ``[0, size)`` were refused together with ``message``: find the rows at fault.

    ``insert(start, stop)`` stores rows ``[start, stop)`` and returns None, or returns the
    engine's message when it refuses them; any other failure is raised and ends the search.
    A refused range is split in two halves and each half is inserted, breadth first, until the
    refused ranges are single rows: one refused row in ``n`` costs two inserts per level, at
    most ``2 * ceil(log2(n))``. Halves of a refused range are both tried, since a refusal may
    come from the rows together (too many partitions) rather than from one of them.

    At most ``max_inserts`` inserts are made. When every row is refused (a schema mismatch, a
    constraint every row breaks) full bisection would cost ``2n - 1`` inserts per batch, every
    batch; with the budget it costs ``max_inserts`` and the ranges still refused when it is
    spent are returned whole (``isolated`` False). Deterministic: the same rows and the same
    answers give the same inserts in the same order.
    """
    if max_inserts < 0:
        raise ValueError("max_inserts must be >= 0")
    pending = deque([Refused(0, size, message)]) if size else deque()
    refused: list[Refused] = []
    stored = inserts = 0
    while pending:
        whole = pending.popleft()
        if whole.isolated or inserts + 2 > max_inserts:
            refused.append(whole)
            continue
        middle = (whole.start + whole.stop) // 2
        for start, stop in ((whole.start, middle), (middle, whole.stop)):
            inserts += 1
            answer = insert(start, stop)
            if answer is None:
                stored += stop - start
            else:
                pending.append(Refused(start, stop, answer))
    return Isolation(stored, tuple(sorted(refused, key=lambda part: part.start)), inserts)
