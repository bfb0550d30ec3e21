"""Segment expressions: parsing, bounds, the SQL's literals, and keyset paging over a fake store."""

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pistats.errors import PistatsError
from pistats.push.segments import (
    MAX_TERMS,
    Segment,
    SegmentError,
    count_segment_users,
    parse_segment,
    segment_user_pages,
    segment_users_sql,
    time_literal,
)
from pistats.store.features import ServerFeatures

OLD = ServerFeatures.for_version((18, 16, 1))
NEW = ServerFeatures.for_version((26, 9, 2))
NOW = datetime(2026, 11, 26, 12, 30, 15, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize("expr", [None, "", "   "])
def test_no_expression_is_everyone(expr):
    assert parse_segment(expr) == Segment()
    assert Segment().expression == ""


def test_every_term_parsed_and_normalised():
    segment = parse_segment(" country = de , device_type=Mobile,active_within=90m,registered_within=12h,"
                            "sessions_at_least=3")
    assert segment == Segment(country="DE", device_type="mobile", active_within=timedelta(minutes=90),
                              registered_within=timedelta(hours=12), sessions_at_least=3)
    assert segment.expression == ("country=DE,device_type=mobile,active_within=90m,registered_within=12h,"
                                  "sessions_at_least=3")


@pytest.mark.parametrize("value, duration", [
    ("1m", timedelta(minutes=1)), ("60m", timedelta(hours=1)), ("7d", timedelta(days=7)),
    ("3650d", timedelta(days=3650)), ("87600h", timedelta(days=3650)),
])
def test_durations_within_bounds(value, duration):
    assert parse_segment(f"active_within={value}").active_within == duration


@pytest.mark.parametrize("expr, term, says", [
    ("city=Berlin", "city=Berlin", "unknown segment term 'city'"),
    ("country=DE,colour=red", "colour=red", "unknown segment term 'colour'"),
    ("country", "country", "not NAME=VALUE"),
    ("country=DE,,active_within=7d", "", "empty term"),
    ("country=DE,", "", "empty term"),
    ("country=DE,country=FR", "country=FR", "given twice"),
    ("country=DEU", "country=DEU", "two letters"),
    ("country=D1", "country=D1", "two letters"),
    ("country=", "country=", "two letters"),
    ("device_type=phone", "device_type=phone", "desktop, mobile, tablet, bot, other"),
    ("active_within=0m", "active_within=0m", "from 1m to 3650d"),
    ("active_within=3651d", "active_within=3651d", "from 1m to 3650d"),
    ("active_within=87601h", "active_within=87601h", "from 1m to 3650d"),
    ("registered_within=7w", "registered_within=7w", "from 1m to 3650d"),
    ("registered_within=7", "registered_within=7", "from 1m to 3650d"),
    ("registered_within=-1d", "registered_within=-1d", "from 1m to 3650d"),
    ("registered_within=1.5d", "registered_within=1.5d", "from 1m to 3650d"),
    ("registered_within=99999999d", "registered_within=99999999d", "from 1m to 3650d"),
    ("sessions_at_least=0", "sessions_at_least=0", "from 1 to 1,000,000"),
    ("sessions_at_least=1000001", "sessions_at_least=1000001", "from 1 to 1,000,000"),
    ("sessions_at_least=three", "sessions_at_least=three", "from 1 to 1,000,000"),
    ("sessions_at_least=+3", "sessions_at_least=+3", "from 1 to 1,000,000"),
])
def test_bad_terms_are_named(expr, term, says):
    with pytest.raises(SegmentError) as caught:
        parse_segment(expr)
    assert caught.value.term == term
    assert says in str(caught.value)
    assert isinstance(caught.value, PistatsError)
    if term:
        assert repr(term) in str(caught.value)


def test_the_expression_is_bounded():
    with pytest.raises(SegmentError, match="at most 20"):
        parse_segment(",".join(["country=DE"] * (MAX_TERMS + 1)))
    with pytest.raises(SegmentError, match="longer than 1000"):
        parse_segment("country=DE," + "x" * 1000)
    with pytest.raises(SegmentError) as caught:
        parse_segment("a" * 200 + "=1")
    assert len(caught.value.term) == 60 and len(str(caught.value)) < 300


segments = st.builds(
    Segment,
    country=st.none() | st.sampled_from(["DE", "FR", "US"]),
    device_type=st.none() | st.sampled_from(["desktop", "mobile", "tablet", "bot", "other"]),
    active_within=st.none() | st.integers(1, 3650 * 24 * 60).map(lambda minutes: timedelta(minutes=minutes)),
    registered_within=st.none() | st.integers(1, 3650).map(lambda days: timedelta(days=days)),
    sessions_at_least=st.none() | st.integers(1, 10**6),
)


@given(segments)
def test_expression_round_trips(segment):
    assert parse_segment(segment.expression) == segment


@given(st.text(max_size=120) | st.lists(st.sampled_from(["country=", "DE", ",", "=", "7d", "active_within",
                                                         "sessions_at_least", " ", "0", "m"]), max_size=12)
       .map("".join))
def test_any_text_is_a_segment_or_a_segment_error(text):
    try:
        segment = parse_segment(text)
    except SegmentError as error:
        assert str(error)
    else:
        assert parse_segment(segment.expression) == segment


def test_time_literals_at_the_servers_precision():
    assert time_literal(NOW, NEW) == "toDateTime64('2026-11-26 12:30:15.123', 3, 'UTC')"
    assert time_literal(NOW, OLD) == "toDateTime('2026-11-26 12:30:15', 'UTC')"
    berlin = timezone(timedelta(hours=1))
    assert time_literal(NOW.astimezone(berlin), OLD) == "toDateTime('2026-11-26 12:30:15', 'UTC')"
    with pytest.raises(ValueError, match="timezone-aware"):
        time_literal(NOW.replace(tzinfo=None), NEW)


def test_sql_quotes_ids_and_cuts_at_now():
    segment = parse_segment("active_within=1d,registered_within=1h")
    sql = segment_users_sql("db", OLD, "o'brien", "p\\1", segment, NOW, after="u'9")
    assert "client_id = 'o\\'brien'" in sql and "property_id = 'p\\\\1'" in sql and "user_id > 'u\\'9'" in sql
    assert "event_time <= toDateTime('2026-11-26 12:30:15', 'UTC')" in sql
    assert "max(event_time) >= toDateTime('2026-11-25 12:30:15', 'UTC')" in sql
    assert "minIf(event_time, event_type = 'register') >= toDateTime('2026-11-26 11:30:15', 'UTC')" in sql
    assert "HAVING" not in segment_users_sql("db", NEW, "c", "p", Segment(), NOW)


class PagingStore:
    """Answers the segment queries from a list of user ids: the page bounds, the keyset range and
    LIMIT are read back from the SQL, so the paging loop is tested without a server.
    ``after_bounds`` are users who appear once the bounds have been read."""

    features = NEW
    database = "db"

    def __init__(self, users, after_bounds=()):
        self.users = sorted(users)
        self.after_bounds = list(after_bounds)
        self.queries = []

    def query(self, sql):
        self.queries.append(sql)
        if sql.startswith("SELECT count() FROM ("):
            return [(len(self.users),)]
        if sql.startswith("SELECT arrayFilter("):
            size = int(re.search(r"i % (\d+) = 0", sql).group(1))
            bounds = self.users[size - 1::size]
            self.users = sorted(self.users + self.after_bounds)
            return [(bounds,)]
        after = re.search(r"user_id > '([^']*)'", sql)
        through = re.search(r"user_id <= '([^']*)'", sql)
        limit = int(re.search(r"LIMIT (\d+)$", sql).group(1))
        kept = [user for user in self.users
                if (after is None or user > after.group(1)) and (through is None or user <= through.group(1))]
        return [(user,) for user in kept[:limit]]


@pytest.mark.parametrize("users, page_size, pages, queries", [
    (0, 3, [], 2),  # the bounds, then the one open range
    (2, 3, [2], 2),
    (3, 3, [3], 3),  # a full page: the range after its bound finds nothing, and no empty page is given
    (7, 3, [3, 3, 1], 4),
    (9, 3, [3, 3, 3], 5),
    (5, 1, [1, 1, 1, 1, 1], 7),
])
def test_pages_cover_every_user_once(users, page_size, pages, queries):
    store = PagingStore([f"user-{index:03d}" for index in range(users)])
    got = list(segment_user_pages(store, "c", "p", Segment(), NOW, page_size=page_size))
    assert [len(page) for page in got] == pages
    assert [user for page in got for user in page] == store.users
    assert len(store.queries) == queries
    assert count_segment_users(store, "c", "p", Segment(), NOW) == users


def test_users_arriving_after_the_bounds_are_listed_once_in_order():
    old = [f"user-{index:03d}" for index in range(0, 40, 2)]
    new = [f"user-{index:03d}" for index in range(1, 40, 6)] + ["a-first", "z-last"]
    store = PagingStore(old, after_bounds=new)
    got = list(segment_user_pages(store, "c", "p", Segment(), NOW, page_size=4))
    listed = [user for page in got for user in page]
    assert listed == sorted(old + new)
    assert all(0 < len(page) <= 4 for page in got)


@pytest.mark.parametrize("page_size", [0, -1, 1_000_001])
def test_page_size_and_now_checked_before_any_query(page_size):
    store = PagingStore(["a"])
    with pytest.raises(ValueError, match="page_size"):
        segment_user_pages(store, "c", "p", Segment(), NOW, page_size=page_size)
    with pytest.raises(ValueError, match="timezone-aware"):
        segment_user_pages(store, "c", "p", Segment(), NOW.replace(tzinfo=None))
    assert store.queries == []
