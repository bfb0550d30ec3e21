"""Each rule of the registry on the real PostgreSQL, through Registry.write and mark_invalid."""

from __future__ import annotations

import itertools
import tempfile
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from pistats.registry.config import RegistryConfig
from pistats.registry.connections import SingleConnection
from pistats.registry.store import InvalidMark, Registry, token_hash
from tests.integration.registry.conftest import RECEIVED

T0 = datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(kind, user="u-1", token=None, second=0.0, prop="site-1", n=None, **fields):
    event = {"event_id": n or f"{kind}-{user}-{token}-{second}", "type": kind, "property_id": prop,
             "user_id": user, "timestamp": at(second).isoformat().replace("+00:00", "Z")}
    if token:
        event["push_token"] = token
    event.update(fields)
    return event


def status_of(rows, token, prop="site-1"):
    row = rows()[1][(prop, token)]
    return row["user_id"], row["status"], row["status_changed_at"]


def test_register_upserts_the_subscriber(registry, rows, client_id):
    registry.write(client_id, [ev("register", second=5, context={"locale": "fr-FR", "timezone": "Europe/Paris"})],
                   RECEIVED)
    registry.write(client_id, [ev("register", second=2), ev("register", second=9, context={"locale": "de-DE"})],
                   RECEIVED)
    subscribers, subscriptions = rows()
    assert subscriptions == {}
    assert subscribers == {("site-1", "u-1"): {
        "registered_at": at(2), "first_seen_at": at(2), "last_seen_at": at(9),
        "locale": "de-DE", "timezone": None, "unsubscribed_at": None}}


def test_subscribe_upserts_subscriber_and_active_subscription(registry, rows, client_id):
    registry.write(client_id, [ev("subscribe", token="tok-1", second=1, context={"sdk": {"name": "pistats-ios"}})],
                   RECEIVED)
    subscribers, subscriptions = rows()
    assert subscribers[("site-1", "u-1")]["registered_at"] is None  # no register seen
    assert subscriptions == {("site-1", "tok-1"): {
        "user_id": "u-1", "platform": "ios", "status": "active", "status_changed_at": at(1), "last_error": None}}


def test_a_token_seen_under_another_user_moves_to_that_user(registry, rows, client_id):
    registry.write(client_id, [ev("subscribe", "u-1", "tok", 1)], RECEIVED)
    registry.write(client_id, [ev("subscribe", "u-2", "tok", 2)], RECEIVED)
    assert status_of(rows, "tok") == ("u-2", "active", at(2))
    registry.write(client_id, [ev("subscribe", "u-1", "tok", 1.5)], RECEIVED)  # a late retry of an older move
    assert status_of(rows, "tok") == ("u-2", "active", at(2))


def test_token_rotation(registry, rows, client_id):
    """An SDK rotating its token unsubscribes the old one and subscribes the new one."""
    registry.write(client_id, [ev("subscribe", token="old", second=1)], RECEIVED)
    registry.write(client_id, [ev("unsubscribe", token="old", second=5), ev("subscribe", token="new", second=5)],
                   RECEIVED)
    assert status_of(rows, "old") == ("u-1", "unsubscribed", at(5))
    assert status_of(rows, "new") == ("u-1", "active", at(5))
    assert [(t, user) for _, t, user, _ in registry.active_subscriptions(client_id, "site-1")] == [("new", "u-1")]


def test_unsubscribe_with_a_token_touches_that_token_only(registry, rows, client_id):
    registry.write(client_id, [ev("subscribe", token="a", second=1), ev("subscribe", token="b", second=1)], RECEIVED)
    registry.write(client_id, [ev("unsubscribe", token="a", second=2)], RECEIVED)
    assert status_of(rows, "a")[1:] == ("unsubscribed", at(2))
    assert status_of(rows, "b")[1:] == ("active", at(1))


def test_unsubscribe_without_a_token_is_every_subscription_of_the_user_on_that_property(registry, rows, client_id):
    registry.write(client_id, [
        ev("subscribe", "u-1", "a", 1), ev("subscribe", "u-1", "b", 1), ev("subscribe", "u-2", "c", 1),
        ev("subscribe", "u-1", "d", 1, prop="site-2"),
    ], RECEIVED)
    registry.write(client_id, [ev("unsubscribe", "u-1", second=3)], RECEIVED)
    assert [status_of(rows, t)[1] for t in "abc"] == ["unsubscribed", "unsubscribed", "active"]
    assert status_of(rows, "d", "site-2")[1] == "active"
    assert rows()[0][("site-1", "u-1")]["unsubscribed_at"] == at(3)
    registry.write(client_id, [ev("subscribe", "u-1", "a", 4)], RECEIVED)  # subscribing again, later
    assert status_of(rows, "a") == ("u-1", "active", at(4))


def test_page_views_and_clicks_do_not_write_the_registry(registry, rows, client_id):
    written = registry.write(client_id, [ev("page_view"), ev("notification_click", notification_id="n-1")], RECEIVED)
    assert not written
    assert rows() == ({}, {})


@pytest.mark.parametrize("order", ["subscribe first", "unsubscribe first"])
def test_late_retry_of_an_old_subscribe_does_not_resurrect(registry, rows, client_id, order):
    old_subscribe, unsubscribe = ev("subscribe", token="tok", second=1), ev("unsubscribe", token="tok", second=2)
    for event in ([old_subscribe, unsubscribe] if order == "subscribe first" else [unsubscribe, old_subscribe]):
        registry.write(client_id, [event], RECEIVED)
    assert status_of(rows, "tok") == ("u-1", "unsubscribed", at(2))
    registry.write(client_id, [old_subscribe], RECEIVED)  # and once more, for good measure
    assert status_of(rows, "tok") == ("u-1", "unsubscribed", at(2))


@pytest.mark.parametrize("order", ["subscribe first", "unsubscribe first"])
def test_late_retry_of_an_old_unsubscribe_does_not_deactivate(registry, rows, client_id, order):
    unsubscribe, subscribe = ev("unsubscribe", token="tok", second=1), ev("subscribe", token="tok", second=2)
    for event in ([subscribe, unsubscribe] if order == "subscribe first" else [unsubscribe, subscribe]):
        registry.write(client_id, [event], RECEIVED)
    assert status_of(rows, "tok") == ("u-1", "active", at(2))


def test_late_retry_of_an_old_subscribe_after_an_unsubscribe_all(registry, rows, client_id):
    registry.write(client_id, [ev("unsubscribe", second=5)], RECEIVED)
    registry.write(client_id, [ev("subscribe", token="tok", second=1)], RECEIVED)
    assert status_of(rows, "tok") == ("u-1", "unsubscribed", at(5))


@pytest.mark.parametrize("permutation", list(itertools.permutations(range(3))))
def test_ties_at_one_event_time_resolve_the_same_whatever_the_order(registry, rows, client_id, permutation):
    events = [ev("subscribe", "u-1", "tok", 1), ev("subscribe", "u-2", "tok", 1), ev("unsubscribe", "u-1", "tok", 1)]
    for index in permutation:
        registry.write(client_id, [events[index]], RECEIVED)
    # The greater user id owns it (both subscribed at the same instant); the opt-out wins the tie.
    assert status_of(rows, "tok") == ("u-2", "unsubscribed", at(1))


def test_invalid_marks_and_reactivation_only_if_newer(registry, rows, client_id):
    registry.write(client_id, [ev("subscribe", token="fcm:tok-1", second=1)], RECEIVED)
    mark = InvalidMark(client_id, "site-1", "fcm:tok-1", "UNREGISTERED: fcm:tok-1 is gone", at(10))
    assert registry.mark_invalid([mark]) == 1
    assert registry.mark_invalid([mark]) == 0  # idempotent
    row = rows()[1][("site-1", "fcm:tok-1")]
    assert (row["status"], row["status_changed_at"], row["last_error"]) == (
        "invalid", at(10), "UNREGISTERED: <token> is gone")
    registry.write(client_id, [ev("subscribe", token="fcm:tok-1", second=5)], RECEIVED)  # an older subscribe: no
    assert status_of(rows, "fcm:tok-1")[1] == "invalid"
    registry.write(client_id, [ev("subscribe", token="fcm:tok-1", second=11)], RECEIVED)  # a newer one: yes
    row = rows()[1][("site-1", "fcm:tok-1")]
    assert (row["status"], row["last_error"]) == ("active", None)
    # A mark older than the token's state changes nothing; a mark of an unknown token is ignored.
    assert registry.mark_invalid([InvalidMark(client_id, "site-1", "fcm:tok-1", "late", at(3)),
                                  InvalidMark(client_id, "site-1", "nobody", "x", at(30))]) == 0
    assert "nobody" not in str(rows()[1])


def test_one_round_trip_per_batch_of_100_events(registry_url, client_id):
    """The whole batch goes in one pipeline: one Sync, i.e. one wait for the server."""
    opened = []

    def connect(*args, **kwargs):
        opened.append(psycopg.connect(*args, **kwargs))
        return opened[-1]

    registry = Registry(SingleConnection(RegistryConfig(registry_url), connect=connect))
    events = [ev("subscribe", f"u-{n}", f"tok-{n}", n % 7, n=f"e-{n}") for n in range(60)]
    events += [ev("unsubscribe", f"u-{n}", second=n % 5, n=f"x-{n}") for n in range(20)]
    events += [ev("register", f"u-{n}", second=3, n=f"r-{n}") for n in range(20)]
    registry.write(client_id, events[:1], RECEIVED)  # connects
    with tempfile.TemporaryFile("w+") as trace:
        opened[0].pgconn.trace(trace.fileno())
        registry.write(client_id, events, RECEIVED)
        opened[0].pgconn.untrace()
        trace.seek(0)
        messages = [line.rstrip("\n").split("\t")[1:4:2] for line in trace]
    registry.close()
    assert messages.count(["F", "Sync"]) == 1
    assert len(opened) == 1


def test_show_reads_a_user_without_tokens(registry, client_id):
    registry.write(client_id, [ev("register", second=0), ev("subscribe", token="secret-token-1", second=1)], RECEIVED)
    subscribers, subscriptions = registry.subscriber(client_id, "u-1")
    assert [s.property_id for s in subscribers] == ["site-1"]
    (subscription,) = subscriptions
    assert subscription.token_hash == token_hash("secret-token-1")
    assert "secret-token-1" not in repr(subscription)
    assert registry.subscriber(client_id, "u-1", property_id="other") == ([], [])


def test_a_write_the_server_refuses_changes_nothing_and_the_next_one_goes_through(registry_url, client_id, rows):
    """An error inside the pipeline (here a CHECK the plan breaks, built by hand: the ingest
    never sends an unknown platform) rolls the whole write back, is raised as unavailable with
    its SQLSTATE only, and leaves the connection usable: the next write uses the same one."""
    from dataclasses import replace

    from pistats.registry.changes import plan
    from pistats.registry.errors import RegistryUnavailable

    opened = []

    def connect(*args, **kwargs):
        opened.append(psycopg.connect(*args, **kwargs))
        return opened[-1]

    registry = Registry(SingleConnection(RegistryConfig(registry_url), connect=connect))
    good = plan(client_id, [ev("register", "u-2", second=1), ev("subscribe", "u-2", "tok-2", 2)], RECEIVED)
    bad = replace(good, subscriptions=tuple(replace(s, owner=replace(s.owner, platform="pager"))
                                            for s in good.subscriptions))
    with pytest.raises(RegistryUnavailable) as refused:
        registry.apply(bad)
    assert "23514" in str(refused.value) and "tok-2" not in str(refused.value)
    assert rows() == ({}, {})  # the subscriber upsert before the failing statement is rolled back too
    assert registry.apply(good) == ((("site-1", good.subscriptions[0].digest),), ())
    registry.close()
    assert len(opened) == 1
    assert rows()[1][("site-1", "tok-2")]["status"] == "active"
