"""Memory stays flat while a 200,000-user segment is paged: the client holds one page at a time."""

import time
import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest

from pistats.push.segments import count_segment_users, parse_segment, segment_user_pages
from pistats.store.schema import migrate
from tests.support import stores

pytestmark = pytest.mark.integration

server_store_url, chdb_store_url, store_url, store = (
    stores.server_store_url, stores.chdb_store_url, stores.store_url, stores.store)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
USERS = 200_000
SMALL_SHARE = 10  # every tenth user is in France: a 20,000-user segment of the same events
PAGE = 5_000
# The ids of the whole segment alone take about 14 MB in Python (a 70-character id is ~120 bytes
# with its list slot); a page of 5,000 about 0.6 MB.
BOUND = 4 * 1024 * 1024


def store_users(store):
    """One event per user, made by the server itself (``numbers()``) in one insert through the
    store: 200,000 events in about a second where rows from Python take ten. The other columns
    keep their defaults; ids as long as SDK-made ones."""
    base = int((NOW - timedelta(days=1)).timestamp())
    when = f"toDateTime({base} + intDiv(number, 10), 'UTC')"
    store.execute(
        f"INSERT INTO {store.database}.events (client_id, property_id, event_id, event_type, user_id, "
        "event_time, received_at, processed_at, session_id, geo_country, device_type) "
        "SELECT 'client-m', 'prop-m', concat('e-', toString(number)), 'page_view', "
        f"concat('user-', toString(number + 10000000), '-', '{'x' * 50}'), {when}, {when}, {when}, "
        f"concat('s-', toString(number)), if(number % {SMALL_SHARE} = 0, 'FR', 'DE'), 'desktop' "
        f"FROM system.numbers LIMIT {USERS}"
    )


def peak_while_paging(store, expr):
    """(users listed, peak bytes Python allocated while listing them)."""
    segment = parse_segment(expr)
    count, last = 0, ""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for page in segment_user_pages(store, "client-m", "prop-m", segment, NOW, page_size=PAGE):
            assert page[0] > last  # sorted across pages, each user once
            count += len(page)
            last = page[-1]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak


def test_memory_is_bounded_by_the_page_not_the_segment(store):
    migrate(store)
    started = time.monotonic()
    store_users(store)
    stored_in = time.monotonic() - started
    small, small_peak = peak_while_paging(store, "country=FR,active_within=7d")
    large, large_peak = peak_while_paging(store, "active_within=7d")
    assert small == USERS // SMALL_SHARE and large == USERS
    assert count_segment_users(store, "client-m", "prop-m", parse_segment("country=DE"), NOW) == USERS - small
    # Ten times the users, about the same peak: what grows with the segment is the number of pages.
    assert large_peak < BOUND, f"peak {large_peak:,} bytes for {USERS:,} users"
    assert large_peak < small_peak * 1.5 + 512 * 1024, (small_peak, large_peak)
    assert stored_in < 30
