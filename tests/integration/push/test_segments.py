"""Segment membership on both backends against an independent computation over the generated events."""

import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from pistats.push.segments import count_segment_users, parse_segment, segment_user_pages
from pistats.store.schema import migrate
from tests.support import stores

pytestmark = pytest.mark.integration

server_store_url, chdb_store_url, store_url, store = (
    stores.server_store_url, stores.chdb_store_url, stores.store_url, stores.store)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
CLIENT, PROPERTY = "client-a", "prop-1"
TYPES = ("register", "subscribe", "page_view", "page_view", "notification_click")
COUNTRIES = ("DE", "FR", "US", "")
DEVICES = ("desktop", "mobile", "tablet", "")
EXPRESSIONS = (
    "",
    "country=DE",
    "country=fr",
    "device_type=mobile",
    "active_within=7d",
    "active_within=90m",
    "registered_within=30d",
    "sessions_at_least=3",
    "country=FR,device_type=desktop,sessions_at_least=2",
    "active_within=14d,registered_within=10d",
    "country=US,active_within=60d,registered_within=3650d,sessions_at_least=1,device_type=tablet",
)


def ms(moment):
    return int(moment.timestamp() * 1000)


def generate(seed=16, users=300):
    """Events as dicts (whole seconds, so both servers' precisions agree): users of the property
    with varied countries, devices, sessions and registrations, some dated after NOW, some at the
    7-day boundary, ties in time; events of the same users in another property and client; and
    copies of some events (a replay), stored again later."""
    rng = random.Random(seed)
    events = []
    for number in range(users):
        user = f"u{number:04d}"
        when = NOW - timedelta(seconds=rng.randrange(0, 60 * 86400))
        for index in range(rng.randint(1, 8)):
            pick = rng.random()
            if pick < 0.15:
                pass  # the same second as the previous event: the latest is chosen by event_id
            elif pick < 0.2:
                when = NOW - timedelta(days=7)
            elif pick < 0.25:
                when = NOW + timedelta(seconds=rng.randrange(1, 86400))  # after the reference time
            else:
                when = NOW - timedelta(seconds=rng.randrange(0, 60 * 86400))
            events.append({
                "client_id": CLIENT, "property_id": PROPERTY, "user_id": user, "event_id": f"{user}-{index}",
                "event_type": rng.choice(TYPES), "event_time": when, "geo_country": rng.choice(COUNTRIES),
                "device_type": rng.choice(DEVICES),
                "session_id": rng.choice([f"{user}-s{session}" for session in range(5)] + [""]),
            })
        for client, prop in (("client-a", "prop-2"), ("client-z", PROPERTY)):
            events.append({
                "client_id": client, "property_id": prop, "user_id": user, "event_id": f"{user}-{client}-{prop}",
                "event_type": "register", "event_time": NOW - timedelta(hours=1), "geo_country": "DE",
                "device_type": "mobile", "session_id": f"{user}-other",
            })
    return events


def expected_users(events, segment, now):
    """Who the segment selects, computed from the events as the module docstring defines it."""
    seen, by_user = set(), defaultdict(list)
    for event in events:
        if (event["client_id"], event["property_id"]) != (CLIENT, PROPERTY) or event["event_time"] > now:
            continue
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            by_user[event["user_id"]].append(event)
    selected = set()
    for user, mine in by_user.items():
        def latest(field):
            known = [(event["event_time"], event["event_id"], event[field]) for event in mine if event[field]]
            return max(known)[2] if known else None

        registers = [event["event_time"] for event in mine if event["event_type"] == "register"]
        if segment.country is not None and latest("geo_country") != segment.country:
            continue
        if segment.device_type is not None and latest("device_type") != segment.device_type:
            continue
        if segment.active_within is not None and max(e["event_time"] for e in mine) < now - segment.active_within:
            continue
        if segment.registered_within is not None and (not registers
                                                      or min(registers) < now - segment.registered_within):
            continue
        if segment.sessions_at_least is not None and \
                len({e["session_id"] for e in mine if e["session_id"]}) < segment.sessions_at_least:
            continue
        selected.add(user)
    return sorted(selected)


def store_events(store, events):
    template = stores.event_row_template()
    rows = [stores.with_fields(template, event_time=ms(e["event_time"]), received_at=ms(e["event_time"]) + 1000,
                               processed_at=ms(NOW), **{k: v for k, v in e.items() if k != "event_time"})
            for e in events]
    store.prepare_insert("events", rows)(None)
    # A replay of every tenth event, processed later: FINAL collapses it.
    later = ms(NOW + timedelta(hours=1))
    store.prepare_insert("events", [stores.with_fields(row, processed_at=later) for row in rows[::10]])(None)


@pytest.fixture
def generated(store):
    migrate(store)
    events = generate()
    store_events(store, events)
    return store, events


def test_membership_matches_the_events(generated):
    store, events = generated
    everyone = expected_users(events, parse_segment(""), NOW)
    assert 290 < len(everyone) < 300  # a user whose only events are dated after NOW is in no segment
    for now in (NOW, NOW - timedelta(days=10)):
        for expr in EXPRESSIONS:
            segment = parse_segment(expr)
            want = expected_users(events, segment, now)
            if now == NOW and expr not in ("", EXPRESSIONS[-1]):
                assert 0 < len(want) < len(everyone), expr  # each term selects some, not all
            pages = list(segment_user_pages(store, CLIENT, PROPERTY, segment, now, page_size=37))
            got = [user for page in pages for user in page]
            assert got == want, (expr, now)
            assert all(0 < len(page) <= 37 for page in pages)
            assert count_segment_users(store, CLIENT, PROPERTY, segment, now) == len(want)


def test_latest_country_ties_and_unknown_values(store):
    """The latest known value: an empty country does not replace a known one; two events in the
    same second are ordered by event_id; a country known only after ``now`` does not count."""
    migrate(store)
    t = NOW - timedelta(days=1)
    events = [
        dict(user_id="a", event_id="a-1", event_time=t, geo_country="FR"),
        dict(user_id="a", event_id="a-2", event_time=t + timedelta(hours=1), geo_country=""),
        dict(user_id="b", event_id="b-2", event_time=t, geo_country="FR"),
        dict(user_id="b", event_id="b-1", event_time=t, geo_country="DE"),
        dict(user_id="c", event_id="c-1", event_time=t, geo_country="DE"),
        dict(user_id="c", event_id="c-2", event_time=NOW + timedelta(minutes=1), geo_country="FR"),
        dict(user_id="d", event_id="d-1", event_time=t, geo_country=""),
    ]
    for event in events:
        event.update(client_id=CLIENT, property_id=PROPERTY, event_type="page_view", device_type="desktop",
                     session_id="s")
    store_events(store, events)
    assert [u for p in segment_user_pages(store, CLIENT, PROPERTY, parse_segment("country=FR"), NOW) for u in p] \
        == ["a", "b"]
    assert [u for p in segment_user_pages(store, CLIENT, PROPERTY, parse_segment("country=DE"), NOW) for u in p] \
        == ["c"]
    assert count_segment_users(store, CLIENT, PROPERTY, parse_segment(""), NOW) == 4
