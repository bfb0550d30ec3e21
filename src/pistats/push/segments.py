"""Which users a segment expression selects, read from the store's events in pages.

An expression is a comma-separated AND of terms (``country=DE,active_within=7d``); none (``None``,
``""``) selects every user of the property. :func:`parse_segment` turns it into a
:class:`Segment` or raises :class:`SegmentError` naming the term at fault.

What each term means, over the property's events dated at or before ``now`` (the campaign's
reference time: a campaign resumed later selects the same users from the same events, and a
device clock dated in the future does not count):

- ``country=XX`` (two letters, ISO 3166-1 alpha-2, any case): the user's latest known
  ``geo_country`` is XX. "Latest known": of the events whose country is not empty, the one with
  the greatest (event_time, event_id); a user whose country was never known is in no country.
- ``device_type=T`` (one of the enrichment's values: desktop, mobile, tablet, bot, other): the
  user's latest known ``device_type``, chosen the same way.
- ``active_within=D``: the user's last event is at or after ``now - D``.
- ``registered_within=D``: the user's first ``register`` event is at or after ``now - D`` (a user
  who registered earlier and again recently registered earlier; one who never did is not in it).
- ``sessions_at_least=N``: the user has at least N distinct non-empty session ids.

Durations are a whole number of minutes, hours or days (``90m``, ``12h``, ``7d``), from 1m to
3650d. Times compare at the store's precision: milliseconds where the server has DateTime64,
whole seconds on older servers (18.x), where ``now`` and the cut-offs are truncated to the second.

Events are read ``FINAL`` (as the report reads them: the copies of an event collapse to one).
Every aggregate above gives the same answer for one copy or several, so the copies FINAL cannot
collapse (see ``pistats.store.schema.EVENTS_PARTITION_KEY``) do not change who is selected.

Users come in pages of user ids sorted by their bytes (keyset paging). One query first asks the
server for every ``page_size``-th id of the sorted segment (the page bounds: one id per page
reaches the client); then each page is the segment restricted to ``bound_before < user_id <=
bound``. The restriction goes into WHERE, so a page aggregates only its own users' events, and
the sorting key (client, property, day, user, ...) lets the server skip the granules of other
users within each day: without it every page would aggregate every remaining user (measured on
200,000 users: 0.4-0.9 s a page against 0.05 s). The client holds one page and the bounds,
whatever the segment's size, and no user is listed twice. Users whose events arrive while the
pages are read may or may not be listed; a range that gained users meanwhile is read in more
than one page (``user_id > last`` within it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pistats.enrich.event import DEVICE_TYPES
from pistats.errors import PistatsError
from pistats.store.base import Store
from pistats.store.features import ServerFeatures
from pistats.store.schema import EVENTS, quote

MAX_EXPRESSION_CHARS = 1_000
MAX_TERMS = 20
MIN_DURATION = timedelta(minutes=1)
MAX_DURATION = timedelta(days=3650)
MAX_SESSIONS = 1_000_000
MAX_PAGE_SIZE = 1_000_000
TERMS = ("country", "device_type", "active_within", "registered_within", "sessions_at_least")

_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
_DURATION = re.compile(r"^([0-9]{1,7})([mhd])$")
_COUNT = re.compile(r"^[0-9]{1,7}$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")


class SegmentError(PistatsError, ValueError):
    """A segment expression that cannot be used; ``term`` is the term at fault (as written,
    cut to 60 characters), or None when the fault is the expression as a whole."""

    def __init__(self, message: str, term: str | None = None):
        super().__init__(message)
        self.term = term


@dataclass(frozen=True)
class Segment:
    """A parsed segment: each condition, or None where the expression does not restrict it."""

    country: str | None = None
    device_type: str | None = None
    active_within: timedelta | None = None
    registered_within: timedelta | None = None
    sessions_at_least: int | None = None

    @property
    def expression(self) -> str:
        """The segment written back as an expression, terms in ``TERMS`` order ("" for everyone):
        ``parse_segment(segment.expression) == segment``."""
        terms = []
        for name in TERMS:
            value = getattr(self, name)
            if value is None:
                continue
            terms.append(f"{name}={_format_duration(value) if isinstance(value, timedelta) else value}")
        return ",".join(terms)


def parse_segment(expr: str | None) -> Segment:
    """The segment of an expression (see the module docstring); ``None`` or blank: everyone.

    Raises :class:`SegmentError` naming the first unknown, repeated or malformed term; an
    expression longer than 1,000 characters or of more than 20 terms is refused whole.
    """
    if expr is None or not expr.strip():
        return Segment()
    if len(expr) > MAX_EXPRESSION_CHARS:
        raise SegmentError(f"segment expression longer than {MAX_EXPRESSION_CHARS} characters")
    raw_terms = expr.split(",")
    if len(raw_terms) > MAX_TERMS:
        raise SegmentError(f"segment has {len(raw_terms)} terms; at most {MAX_TERMS}")
    values: dict[str, object] = {}
    for raw in raw_terms:
        term = raw.strip()
        shown = _shown(term)
        if not term:
            raise SegmentError("segment has an empty term (two commas, or one at an end)", term="")
        name, equals, value = term.partition("=")
        name, value = name.strip(), value.strip()
        if not equals:
            raise SegmentError(f"segment term {shown!r} is not NAME=VALUE (terms: {', '.join(TERMS)})", term=shown)
        if name not in TERMS:
            raise SegmentError(f"unknown segment term {_shown(name)!r} in {shown!r} (terms: {', '.join(TERMS)})",
                               term=shown)
        if name in values:
            raise SegmentError(f"segment term {shown!r}: {name} given twice", term=shown)
        values[name] = _parse_value(name, value, shown)
    return Segment(**values)


def _parse_value(name: str, value: str, shown: str) -> object:
    if name == "country":
        if not _COUNTRY.match(value):
            raise SegmentError(f"segment term {shown!r}: country must be two letters (ISO 3166-1, e.g. DE)", term=shown)
        return value.upper()
    if name == "device_type":
        if value.lower() not in DEVICE_TYPES:
            raise SegmentError(f"segment term {shown!r}: device_type must be one of {', '.join(DEVICE_TYPES)}",
                               term=shown)
        return value.lower()
    if name == "sessions_at_least":
        if not _COUNT.match(value) or not 1 <= int(value) <= MAX_SESSIONS:
            raise SegmentError(f"segment term {shown!r}: sessions_at_least must be a whole number from 1 to "
                               f"{MAX_SESSIONS:,}", term=shown)
        return int(value)
    match = _DURATION.match(value)
    duration = match and int(match.group(1)) * _UNITS[match.group(2)]
    if not duration or not MIN_DURATION <= duration <= MAX_DURATION:
        raise SegmentError(f"segment term {shown!r}: {name} must be a duration from 1m to 3650d "
                           "(whole minutes m, hours h or days d, e.g. 7d)", term=shown)
    return duration


def _shown(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _format_duration(duration: timedelta) -> str:
    minutes = int(duration.total_seconds()) // 60
    for unit, size in (("d", 24 * 60), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def time_literal(moment: datetime, features: ServerFeatures) -> str:
    """A SQL time of an aware datetime at the store's precision (milliseconds on DateTime64
    servers, whole seconds before)."""
    if moment.tzinfo is None:
        raise ValueError("a segment's reference time must be timezone-aware")
    moment = moment.astimezone(timezone.utc)
    if features.datetime64:
        return f"toDateTime64('{moment.strftime('%Y-%m-%d %H:%M:%S')}.{moment.microsecond // 1000:03d}', 3, 'UTC')"
    return f"toDateTime('{moment.strftime('%Y-%m-%d %H:%M:%S')}', 'UTC')"


def segment_users_sql(database: str, features: ServerFeatures, client_id: str, property_id: str,
                      segment: Segment, now: datetime, after: str | None = None, through: str | None = None) -> str:
    """The SELECT of the segment's user ids (one column, ``user_id``, one row per user, in no
    order), of those greater than ``after`` and at most ``through`` when given: the query the
    bounds, the pages and the count read."""
    now_floor = now if features.datetime64 else now.replace(microsecond=0)

    def since(duration: timedelta) -> str:
        return time_literal(now_floor - duration, features)

    latest = "(event_time, event_id)"
    having = []
    if segment.country is not None:
        having.append(f"argMaxIf(geo_country, {latest}, geo_country != '') = {quote(segment.country)}")
    if segment.device_type is not None:
        having.append(f"argMaxIf(device_type, {latest}, device_type != '') = {quote(segment.device_type)}")
    if segment.active_within is not None:
        having.append(f"max(event_time) >= {since(segment.active_within)}")
    if segment.registered_within is not None:
        having.append("countIf(event_type = 'register') > 0 AND "
                      f"minIf(event_time, event_type = 'register') >= {since(segment.registered_within)}")
    if segment.sessions_at_least is not None:
        having.append(f"uniqExactIf(session_id, session_id != '') >= {int(segment.sessions_at_least)}")
    return (
        f"SELECT user_id FROM {database}.{EVENTS} FINAL "
        f"WHERE client_id = {quote(client_id)} AND property_id = {quote(property_id)} "
        f"AND event_time <= {time_literal(now_floor, features)} AND user_id != '' "
        + ("" if after is None else f"AND user_id > {quote(after)} ")
        + ("" if through is None else f"AND user_id <= {quote(through)} ")
        + "GROUP BY user_id"
        + (f" HAVING {' AND '.join(having)}" if having else "")
    )


def segment_user_pages(store: Store, client_id: str, property_id: str, segment: Segment, now: datetime,
                       page_size: int = 10_000) -> Iterator[list[str]]:
    """The segment's user ids in pages of at most ``page_size``, sorted (by their UTF-8 bytes)
    across pages, each user once; no empty page. One query per page (``user_id > last``), so
    the caller holds one page at a time. StoreError when the store fails (between pages too);
    ValueError at once for a page_size outside 1..1,000,000 or a ``now`` without a time zone."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be from 1 to {MAX_PAGE_SIZE:,}, not {page_size}")
    time_literal(now, store.features)  # a naive now fails here, not at the first page
    return _pages(store, client_id, property_id, segment, now, page_size)


def _pages(store: Store, client_id: str, property_id: str, segment: Segment, now: datetime,
           page_size: int) -> Iterator[list[str]]:
    def users(after: str | None, through: str | None) -> list[str]:
        sql = segment_users_sql(store.database, store.features, client_id, property_id, segment, now,
                                after=after, through=through)
        return [str(row[0]) for row in store.query(f"{sql} ORDER BY user_id LIMIT {int(page_size)}")]

    sql = segment_users_sql(store.database, store.features, client_id, property_id, segment, now)
    (row,) = store.query(f"SELECT arrayFilter((user, i) -> i % {int(page_size)} = 0, users, arrayEnumerate(users)) "
                         f"FROM (SELECT arraySort(groupArray(user_id)) AS users FROM ({sql}))")
    bounds: list[str | None] = [str(bound) for bound in row[0]]
    bounds.append(None)
    after: str | None = None
    for through in bounds:
        while True:
            page = users(after, through)
            if page:
                yield page
                after = page[-1]
            if len(page) < page_size or after == through:
                break
        after = through


def count_segment_users(store: Store, client_id: str, property_id: str, segment: Segment, now: datetime) -> int:
    """How many users the segment selects (what the pages would list together)."""
    sql = segment_users_sql(store.database, store.features, client_id, property_id, segment, now)
    return int(store.query(f"SELECT count() FROM ({sql})")[0][0])
