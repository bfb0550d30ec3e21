"""Test doubles for pure sink logic: an in-memory store with fault injection, a manual clock."""

from __future__ import annotations

from pistats.store.backends import StoreError
from pistats.store.features import ServerFeatures


class ManualClock:
    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class MemoryStore:
    """Records inserts; ``fail_next`` inserts raise StoreError before (or after) storing."""

    database = "memory"
    features = ServerFeatures.for_version((26, 9, 2))

    def __init__(self, fail_next: int = 0, fail_after_storing: bool = False):
        self.fail_next = fail_next
        self.fail_after_storing = fail_after_storing
        self.inserts: list[tuple[str, tuple, str | None]] = []

    def _insert(self, table, rows, token):
        if self.fail_next and not self.fail_after_storing:
            self.fail_next -= 1
            raise StoreError("injected failure")
        self.inserts.append((table, tuple(rows), token))
        if self.fail_next:
            self.fail_next -= 1
            raise StoreError("injected timeout after the insert landed")

    def insert_events(self, rows, token):
        self._insert("events", rows, token)

    def insert_rejects(self, rows, token):
        self._insert("events_rejected", rows, token)

    def rows(self, table):
        return [row for name, rows, _ in self.inserts if name == table for row in rows]


def make_event(index: int = 0, **overrides) -> dict:
    """An enriched event as the sessions bolt emits it over multilang (datetimes as RFC 3339 text)."""
    event = {
        "client_id": "client-a", "property_id": "prop-1", "event_id": f"ev-{index}", "event_type": "page_view",
        "user_id": f"user-{index % 5}", "event_time": "2026-11-25T10:00:00.250Z",
        "received_at": "2026-11-25T10:00:01Z", "ip": "203.0.113.0", "user_agent": "Mozilla/5.0",
        "push_token": None, "notification_id": None, "page_url": "https://example.com/", "referrer": "",
        "locale": "de-DE", "sdk_name": "pistats-js", "sdk_version": "1.0.0", "context_json": "{}",
        "properties_json": "{}", "clock_skew": False, "geo_country": "DE", "geo_country_name": "Germany",
        "geo_region": "BE", "geo_city": "Berlin", "geo_postal": "10115", "geo_lat": 52.5, "geo_lon": 13.4,
        "geo_accuracy_km": 20, "geo_timezone": "Europe/Berlin", "geo_continent": "EU", "geo_asn": 3320,
        "geo_org": "DTAG", "ua_browser": "Firefox", "ua_browser_version": "120", "ua_os": "Linux",
        "ua_os_version": "", "ua_device_family": "Other", "ua_device_brand": "", "ua_device_model": "",
        "device_type": "desktop", "is_touch": False, "is_bot": False, "session_id": "sess-1",
        "session_index": 1, "session_event_index": index, "is_new_user": index == 0,
        "first_seen_at": "2026-11-25T10:00:00Z", "enrich_errors": [], "kinesis_shard": "shardId-000000000000",
        "kinesis_seq": f"4959{index:020d}", "kinesis_subseq": 0, "processed_at": "2026-11-25T10:00:02Z",
    }
    event.update(overrides)
    return event


def make_reject(index: int = 0, **overrides) -> dict:
    reject = {
        "reason": "bad_json", "stage": "parse", "field": None, "detail": "Expecting value", "raw_b64": "e30K",
        "kinesis_shard": "shardId-000000000000", "kinesis_seq": f"4960{index:020d}", "kinesis_subseq": 0,
        "client_id": "", "rejected_at": "2026-11-25T10:00:03Z",
    }
    reject.update(overrides)
    return reject
