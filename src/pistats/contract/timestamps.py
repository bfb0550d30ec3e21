"""Times in the contract: RFC 3339 text in and out, and the clock-skew flag of a record."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from pistats.contract.schema import CLOCK_SKEW_FUTURE, CLOCK_SKEW_PAST

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,  # \d would otherwise match any Unicode digit
)


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 date-time into an aware UTC datetime.

    Accepts ``T``/``t``, ``Z``/``z`` or a ``±HH:MM`` offset and any number of fraction digits
    (truncated to microseconds). Raises ValueError for anything else, including leap seconds
    and dates that leave the datetime range once converted to UTC.
    """
    if not isinstance(text, str):
        raise ValueError("not a string")
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"not RFC 3339: {text[:40]!r}")
    if text[-1] == "Z" and text[10] == "T":
        # The usual shape (the SDKs and the ingest write it): datetime.fromisoformat is C, and
        # once the pattern matched it reads a Z time exactly as the general path below does.
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass  # e.g. hour 24 or second 60: the general path says why
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        if zulu:
            tz = timezone.utc
        else:
            if int(off_h) > 23 or int(off_m) > 59:
                raise ValueError("offset out of range")
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            tz = timezone(-offset if sign == "-" else offset)
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tz)
        return local.astimezone(timezone.utc)
    except (ValueError, OverflowError) as error:
        raise ValueError(f"not RFC 3339: {error}") from None


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. ``2026-11-26T05:36:35.123Z`` (aware input only)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def is_clock_skewed(event_time: datetime, now: datetime) -> bool:
    """True when the client time is more than 24 h ahead of or 30 days behind ``now``."""
    return event_time > now + CLOCK_SKEW_FUTURE or event_time < now - CLOCK_SKEW_PAST


def record_clock_skew(record: dict) -> bool:
    """A valid record's ``clock_skew`` as the ingest sets it: its event's time against its
    ``received_at`` (the ingest's ``now``, written to the millisecond)."""
    return is_clock_skewed(parse_timestamp(record["event"]["timestamp"]), parse_timestamp(record["received_at"]))
