"""Enriched events and rejects as the upstream bolts emit them (datetimes as RFC 3339 text)."""


def make_event(index: int = 0, **overrides) -> dict:
    """An enriched event as the enrich bolt emits it over multilang (datetimes as RFC 3339 text)."""
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
