"""The rejects the store makes itself: for an event it cannot hold, and for a row the engine refused."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime

from pistats.store.rows.columns import FLAG, TIMESTAMP, Column
from pistats.store.rows.rule import RowError, from_epoch_ms

STORE_REFUSED = "store_refused"
STORE_STAGE = "store"
_MAX_REFUSAL_CHARS = 1000  # the engine's message, as the detail of a reject


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


def _row_as_record(columns: tuple[Column, ...], row: tuple) -> dict:
    """A stored row back in the form the sink receives (times as RFC 3339 text, flags as bools)."""
    record = {}
    for column, value in zip(columns, row):
        if column.kind == TIMESTAMP and isinstance(value, int):
            value = from_epoch_ms(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        elif column.kind == FLAG:
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
