"""Events to merged registry changes: which events write, platforms, the time cap, NUL refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pistats.contract import CLOCK_SKEW_FUTURE, validate_event
from pistats.registry.changes import (
    changes_of,
    event_time,
    plan,
    platform_of,
    registry_problems,
    token_digest,
)
from pistats.registry.rules import ACTIVE, UNSUBSCRIBED, Context, Owner, TokenState

RECEIVED = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
T = datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc)


def event(kind="register", user="u-1", token=None, ts="2026-11-26T11:00:00Z", n=1, **fields):
    base = {"event_id": f"e-{n}", "type": kind, "property_id": "site-1", "user_id": user, "timestamp": ts}
    if token is not None:
        base["push_token"] = token
    base.update(fields)
    assert validate_event(base) == []
    return base


@pytest.mark.parametrize("kind, extra", [("page_view", {}), ("notification_click", {"notification_id": "n-1"})])
def test_page_views_and_clicks_write_nothing(kind, extra):
    assert changes_of("c", event(kind, **extra), RECEIVED) == (None, None)
    assert not plan("c", [event(kind, **extra)], RECEIVED)


def test_register_is_a_subscriber_with_its_registration_time():
    subscriber, subscription = changes_of("c", event(context={"locale": "fr-FR", "timezone": ""}), RECEIVED)
    assert subscription is None
    assert (subscriber.key, subscriber.registered_at, subscriber.first_seen_at, subscriber.last_seen_at) == (
        ("c", "site-1", "u-1"), T, T, T)
    assert subscriber.context == Context(T, "fr-FR", None)  # '' counts as absent


def test_subscribe_names_owner_and_active_state():
    _, subscription = changes_of("c", event("subscribe", token="tok", context={"sdk": {"name": "pistats-android"}}),
                                 RECEIVED)
    assert subscription.owner == Owner("u-1", "android", T)
    assert subscription.state == TokenState(ACTIVE, T)


def test_unsubscribe_with_a_token_is_provisional_ownership_without_is_unsubscribe_all():
    subscriber, subscription = changes_of("c", event("unsubscribe", token="tok"), RECEIVED)
    assert subscription.owner == Owner("u-1", "unknown", None)
    assert subscription.state == TokenState(UNSUBSCRIBED, T)
    assert subscriber.unsubscribed_at is None
    subscriber, subscription = changes_of("c", event("unsubscribe"), RECEIVED)
    assert subscription is None and subscriber.unsubscribed_at == T
    assert subscriber.registered_at is None


@pytest.mark.parametrize("name, platform", [
    ("pistats-js", "web"), ("pistats-android", "android"), ("pistats-ios", "ios"), ("MyWebSDK", "web"),
    ("pistats-flutter", "unknown"), (None, "unknown"),
])
def test_platform_from_the_sdk_name(name, platform):
    context = {"sdk": {"name": name, "version": "1.0"}} if name else {}
    assert platform_of(event("subscribe", token="t", context=context)) == platform
    assert platform_of({"context": "not an object"}) == "unknown"


def test_event_time_is_capped_at_the_clock_skew_bound_after_receipt():
    assert event_time(event(ts="2026-11-26T11:00:00Z"), RECEIVED) == T
    far = event(ts="2031-01-01T00:00:00Z")
    assert event_time(far, RECEIVED) == RECEIVED + CLOCK_SKEW_FUTURE
    assert event_time(event(ts="2026-11-26T13:00:00+02:00"), RECEIVED) == T  # offsets are UTC'd


def test_a_batch_merges_to_one_change_per_row_sorted_by_key():
    events = [
        event("subscribe", user="u-2", token="tok", ts="2026-11-26T11:00:02Z", n=1),
        event("subscribe", user="u-1", token="tok", ts="2026-11-26T11:00:01Z", n=2),
        event("register", user="u-1", ts="2026-11-26T11:00:03Z", n=3),
        event("register", user="u-1", ts="2026-11-26T11:00:00Z", n=4),
        event("unsubscribe", user="u-2", token="tok", ts="2026-11-26T11:00:04Z", n=5),
        event("page_view", user="u-3", n=6),
    ]
    merged = plan("c", events, RECEIVED)
    assert [s.user_id for s in merged.subscribers] == ["u-1", "u-2"]
    u1 = merged.subscribers[0]
    assert (u1.registered_at, u1.first_seen_at, u1.last_seen_at) == (T, T, T + timedelta(seconds=3))
    (token,) = merged.subscriptions
    assert token.owner == Owner("u-2", "unknown", T + timedelta(seconds=2))
    assert token.state == TokenState(UNSUBSCRIBED, T + timedelta(seconds=4))
    assert merged.unsubscribed_users == ()
    assert token.key == ("c", "site-1", token_digest("tok"))


def test_plans_of_any_order_are_equal():
    events = [event("subscribe", user=f"u-{n % 3}", token=f"t{n % 2}", ts=f"2026-11-26T11:00:0{n}Z", n=n)
              for n in range(6)]
    assert plan("c", events, RECEIVED) == plan("c", events[::-1], RECEIVED)


@pytest.mark.parametrize("field, value", [
    ("user_id", "a\x00b"), ("property_id", "\x00"), ("push_token", "tok\x00"),
])
def test_nul_in_a_stored_field_is_refused_by_name(field, value):
    candidate = event("subscribe", token="tok", **{field: value})
    problems = registry_problems("c", candidate)
    assert [(p.field, "U+0000" in p.problem) for p in problems] == [(field, True)]


def test_nul_in_locale_or_timezone_or_client_is_refused_and_page_views_are_not_checked():
    candidate = event(context={"locale": "fr\x00", "timezone": "\x00"})
    assert [p.field for p in registry_problems("c", candidate)] == ["context.locale", "context.timezone"]
    assert [p.field for p in registry_problems("c\x00", event())] == [""]
    assert registry_problems("c", event("page_view", user="a\x00")) == []


def test_the_contract_does_allow_nul_which_is_why_the_registry_checks():
    assert validate_event(event(user="a\x00b")) == []
