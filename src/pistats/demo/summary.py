"""The demo's summary numbers, read back from the store (de-duplicated, as clients see them).

The keys match a generated recording's ``expected.json`` (see docs/recordings.md), so a run can
be compared with what a correct pipeline must produce. Every count is measured in the store;
none is derived from the others or from ``records_in`` (a record the pipeline lost must show as
missing, not as something else):

* ``events_stored``: distinct (client_id, event_id) in ``events``;
* ``rejected``: distinct rejected records (by shard, sequence and sub-sequence number) per reason;
* ``duplicates_dropped``: stored records beyond the first of each (client_id, event_id), counted
  in ``event_records`` (one row per record whose event was stored; a replayed record collapses
  there, a client's re-sent event is another record);
* ``users``, ``sessions``: distinct (client_id, user_id) and session_id;
* ``by_country``, ``by_device_type``: stored events per value, one row per event (FINAL).
"""

from __future__ import annotations

from typing import Any


def summarise(store, records_in: int) -> dict[str, Any]:
    """``records_in`` is what went into the stream (counted there); the rest is read from the store."""

    def scalar(sql: str) -> int:
        return int(store.query(sql)[0][0])

    def grouped(sql: str) -> dict[str, int]:
        return {str(key): int(count) for key, count in sorted(store.query(sql))}

    events = f"{store.database}.events"
    rejects = f"{store.database}.events_rejected"
    records = f"{store.database}.event_records"
    return {
        "records_in": records_in,
        "events_stored": scalar(f"SELECT uniqExact(client_id, event_id) FROM {events}"),
        "rejected": grouped(
            "SELECT reason, uniqExact(kinesis_shard, kinesis_seq, kinesis_subseq) "
            f"FROM {rejects} GROUP BY reason"
        ),
        "duplicates_dropped": scalar(
            "SELECT sum(copies - 1) FROM (SELECT uniqExact(kinesis_shard, kinesis_seq, kinesis_subseq) AS copies "
            f"FROM {records} GROUP BY client_id, event_id)"
        ),
        "users": scalar(f"SELECT uniqExact(client_id, user_id) FROM {events}"),
        "sessions": scalar(f"SELECT uniqExact(session_id) FROM {events}"),
        "by_country": grouped(f"SELECT geo_country, count() FROM {events} FINAL GROUP BY geo_country"),
        "by_device_type": grouped(f"SELECT device_type, count() FROM {events} FINAL GROUP BY device_type"),
    }


def records_accounted(summary: dict[str, Any]) -> int:
    """Records the store accounts for: stored events, rejected records, dropped duplicates. Less
    than ``records_in`` when records were lost (or are still on their way)."""
    return summary["events_stored"] + sum(summary["rejected"].values()) + summary["duplicates_dropped"]
