"""What identifies a row, and a batch of rows, when the store collapses copies."""

from __future__ import annotations

import hashlib

from pistats.store.rows.columns import EVENT_INDEX, REJECT_INDEX

_CLIENT_ID_INDEX, _EVENT_ID_INDEX = EVENT_INDEX["client_id"], EVENT_INDEX["event_id"]


def event_key(row: tuple) -> str:
    """The identity ReplacingMergeTree collapses on: (client_id, event_id)."""
    return f"{row[_CLIENT_ID_INDEX]}\x1f{row[_EVENT_ID_INDEX]}"


def reject_key(row: tuple) -> str:
    """A reject is identified by the record it came from and where it failed."""
    return "\x1f".join(
        str(row[REJECT_INDEX[name]])
        for name in ("client_id", "reason", "stage", "kinesis_shard", "kinesis_seq", "kinesis_subseq", "raw_b64")
    )


def dedup_token(table: str, keys: list[str]) -> str:
    """Deterministic token of a batch: the same rows in the same order give the same token on retry."""
    digest = hashlib.sha256(table.encode("utf-8"))
    for key in keys:
        digest.update(b"\x1e")
        digest.update(key.encode("utf-8", "replace"))
    return digest.hexdigest()[:40]
