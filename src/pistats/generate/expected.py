"""What a correct pipeline must produce from a set of Kinesis records, computed by definition.

- A record is valid when :func:`pistats.contract.decode_record` accepts it; otherwise it counts
  under its reject reason.
- Stored events are the distinct ``(client_id, event_id)`` among valid records (the first one
  seen, in shard order, is kept); the others are ``duplicates_dropped``.
- Sessions per ``(client_id, user_id)``, over the stored events sorted by event time: a new
  session starts after more than 30 minutes without events or once the session reached 24 h.
- ``by_country``: the GeoLite2 City country ISO code of the record's IP ('' for private,
  reserved, unknown or malformed addresses). ``by_device_type``: user-agents' classification of
  the record's user agent: bot if is_bot, tablet if is_tablet, mobile if is_mobile, desktop if
  is_pc, else other.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from pistats.contract import ContractError, decode_record, parse_timestamp

SESSION_GAP = timedelta(minutes=30)
SESSION_MAX = timedelta(hours=24)
DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")


def default_geoip_db() -> Path:
    """The GeoLite2 City database bundled by the ``maxminddb-geolite2`` package."""
    from geolite2 import geolite2_database

    return Path(geolite2_database())


class CountryLookup:
    """IP -> ISO country code ('' when the address has none), cached."""

    def __init__(self, database: str | Path | None = None):
        import geoip2.database

        self._reader = geoip2.database.Reader(str(database or default_geoip_db()))
        self._cache: dict[str, str] = {}

    def __call__(self, ip: str) -> str:
        cached = self._cache.get(ip)
        if cached is None:
            cached = self._cache[ip] = self._lookup(ip)
        return cached

    def _lookup(self, ip: str) -> str:
        import geoip2.errors

        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return ""
        if not address.is_global:
            return ""
        try:
            return self._reader.city(str(address)).country.iso_code or ""
        except (geoip2.errors.AddressNotFoundError, ValueError):
            return ""

    def close(self) -> None:
        self._reader.close()


@lru_cache(maxsize=8192)
def device_type(user_agent: str) -> str:
    import user_agents

    parsed = user_agents.parse(user_agent or "")
    if parsed.is_bot:
        return "bot"
    if parsed.is_tablet:
        return "tablet"
    if parsed.is_mobile:
        return "mobile"
    if parsed.is_pc:
        return "desktop"
    return "other"


def count_sessions(times: Iterable[datetime]) -> int:
    """Sessions among one user's event times (30 min gap, 24 h cap)."""
    count = 0
    start = last = None
    for moment in sorted(times):
        if start is None or moment - last > SESSION_GAP or moment - start >= SESSION_MAX:
            count += 1
            start = moment
        last = moment
    return count


def expected_counts(payloads: Iterable[bytes], countries: CountryLookup | None = None) -> dict:
    """The ``expected.json`` document for these record payloads (in stream order)."""
    own_lookup = countries is None
    countries = countries or CountryLookup()
    records_in = 0
    rejected: Counter[str] = Counter()
    duplicates = 0
    seen: set[tuple[str, str]] = set()
    user_times: dict[tuple[str, str], list[datetime]] = {}
    by_country: Counter[str] = Counter()
    by_device: Counter[str] = Counter()
    try:
        for data in payloads:
            records_in += 1
            try:
                record = decode_record(data)
            except ContractError as error:
                rejected[error.reason] += 1
                continue
            event = record["event"]
            identity = (record["client_id"], event["event_id"])
            if identity in seen:
                duplicates += 1
                continue
            seen.add(identity)
            user = (record["client_id"], event["user_id"])
            user_times.setdefault(user, []).append(parse_timestamp(event["timestamp"]))
            by_country[countries(record["ip"])] += 1
            by_device[device_type(record["user_agent"])] += 1
    finally:
        if own_lookup:
            countries.close()
    return {
        "records_in": records_in,
        "events_stored": len(seen),
        "rejected": dict(sorted(rejected.items())),
        "duplicates_dropped": duplicates,
        "users": len(user_times),
        "sessions": sum(count_sessions(times) for times in user_times.values()),
        "by_country": dict(sorted(by_country.items(), key=lambda item: (-item[1], item[0]))),
        "by_device_type": dict(sorted(by_device.items(), key=lambda item: (-item[1], item[0]))),
    }
