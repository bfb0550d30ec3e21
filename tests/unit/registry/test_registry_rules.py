"""The pure rules: which change wins (exhaustively), and that the registers reach what the
issue's rules say whatever the arrival order."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pistats.registry.rules import (
    ACTIVE,
    INVALID,
    STATUSES,
    UNSUBSCRIBED,
    Owner,
    TokenState,
    applies,
    effective_status,
    newest,
    owner_applies,
    state_key,
)
from tests.support.registry import expected, replay_in_time_order

T0 = datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc)
EARLIER, LATER = T0 - timedelta(microseconds=1), T0 + timedelta(microseconds=1)
RECEIVED = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def test_nothing_yet_always_applies():
    for status in STATUSES:
        assert applies(None, TokenState(status, T0))


@pytest.mark.parametrize("current", STATUSES)
@pytest.mark.parametrize("change", STATUSES)
def test_a_newer_event_time_applies_an_older_never(current, change):
    """Event time decides first, whatever the statuses: a late retry of an old subscribe does
    not resurrect, a newer subscribe does reactivate."""
    assert applies(TokenState(current, T0), TokenState(change, LATER))
    assert not applies(TokenState(current, T0), TokenState(change, EARLIER))


@pytest.mark.parametrize("current, change, wins", [
    (ACTIVE, ACTIVE, False),             # a replay: nothing to write
    (ACTIVE, INVALID, True),
    (ACTIVE, UNSUBSCRIBED, True),
    (INVALID, ACTIVE, False),
    (INVALID, INVALID, False),
    (INVALID, UNSUBSCRIBED, True),
    (UNSUBSCRIBED, ACTIVE, False),       # an opt-out at the same instant is not overridden
    (UNSUBSCRIBED, INVALID, False),
    (UNSUBSCRIBED, UNSUBSCRIBED, False),
])
def test_at_the_same_time_the_status_rank_decides(current, change, wins):
    assert applies(TokenState(current, T0, "e" if current == INVALID else None),
                   TokenState(change, T0, "e" if change == INVALID else None)) is wins


def test_invalid_marks_at_the_same_time_are_ordered_by_error_text():
    a, b = TokenState(INVALID, T0, "A"), TokenState(INVALID, T0, "B")
    assert applies(a, b) and not applies(b, a)
    # Code point order (SQL COLLATE "C"), not a locale's: 'Z' < 'a' < 'é' < '😀'.
    ordered = [TokenState(INVALID, T0, text) for text in ("Z", "a", "é", "😀")]
    assert all(applies(x, y) for x, y in zip(ordered, ordered[1:]))


@given(st.lists(st.tuples(st.sampled_from([EARLIER, T0, LATER]), st.sampled_from(STATUSES),
                          st.sampled_from([None, "x", "y"])), min_size=1, max_size=8))
def test_applying_in_any_order_keeps_the_same_greatest_change(raw):
    """applies() is a strict total order: folding the changes in any order ends on the same one."""
    changes = [TokenState(status, at, error if status == INVALID else None) for at, status, error in raw]
    results = set()
    for _ in range(5):
        random.shuffle(changes)
        current = None
        for change in changes:
            if applies(current, change):
                current = change
        results.add(current)
    assert len(results) == 1
    assert state_key(results.pop()) == max(state_key(c) for c in changes)


def test_owner_a_subscribe_beats_an_unsubscribe_then_time_then_ids():
    provisional = Owner("zz", "web", None)
    assert owner_applies(provisional, Owner("aa", "web", EARLIER))
    assert not owner_applies(Owner("aa", "web", EARLIER), provisional)
    assert owner_applies(Owner("zz", "web", T0), Owner("aa", "web", LATER))
    assert owner_applies(Owner("aa", "web", T0), Owner("ab", "web", T0))
    assert owner_applies(Owner("aa", "android", T0), Owner("aa", "web", T0))
    assert not owner_applies(Owner("aa", "web", T0), Owner("aa", "web", T0))
    assert owner_applies(Owner("a", "web", None), Owner("b", "web", None))


@pytest.mark.parametrize("state, unsubscribed_at, result", [
    (TokenState(ACTIVE, T0), None, (ACTIVE, T0)),
    (TokenState(ACTIVE, T0), EARLIER, (ACTIVE, T0)),          # subscribed again after the unsubscribe-all
    (TokenState(ACTIVE, T0), T0, (UNSUBSCRIBED, T0)),         # a tie goes to the unsubscribe
    (TokenState(ACTIVE, T0), LATER, (UNSUBSCRIBED, LATER)),
    (TokenState(INVALID, T0, "e"), LATER, (UNSUBSCRIBED, LATER)),
    (TokenState(INVALID, T0, "e"), EARLIER, (INVALID, T0)),
    (TokenState(UNSUBSCRIBED, T0), LATER, (UNSUBSCRIBED, LATER)),
    (TokenState(UNSUBSCRIBED, T0), EARLIER, (UNSUBSCRIBED, T0)),
])
def test_effective_status(state, unsubscribed_at, result):
    assert effective_status(state, unsubscribed_at) == result


def test_newest_treats_none_as_least():
    a, b = TokenState(ACTIVE, T0), TokenState(ACTIVE, LATER)
    assert newest(None, a, state_key) is a and newest(a, None, state_key) is a and newest(a, b, state_key) is b


# --- the registers against the issue's rules, on random histories ------------------------------

USERS = ("u1", "u2", "ü3")
TOKENS = ("tok-a", "tok-b", "tok-c")
SDKS = ({"name": "pistats-js"}, {"name": "pistats-android"}, {"name": "pistats-ios"}, None)


@st.composite
def histories(draw, distinct_times: bool):
    count = draw(st.integers(1, 14))
    if distinct_times:
        seconds = draw(st.lists(st.integers(0, 10_000), min_size=count, max_size=count, unique=True))
    else:
        seconds = draw(st.lists(st.integers(0, 3), min_size=count, max_size=count))
    events = []
    for n, second in enumerate(seconds):
        kind = draw(st.sampled_from(["register", "subscribe", "subscribe", "unsubscribe", "unsubscribe", "page_view"]))
        event = {"event_id": f"e{n}", "type": kind, "property_id": draw(st.sampled_from(["p1", "p2"])),
                 "user_id": draw(st.sampled_from(USERS)),
                 "timestamp": (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")}
        if kind == "subscribe" or (kind == "unsubscribe" and draw(st.booleans())):
            event["push_token"] = draw(st.sampled_from(TOKENS))
        context = {}
        if draw(st.booleans()):
            context["locale"] = draw(st.sampled_from(["fr-FR", "de-DE", ""]))
        if draw(st.booleans()):
            context["timezone"] = draw(st.sampled_from(["Europe/Paris", "UTC"]))
        sdk = draw(st.sampled_from(SDKS))
        if sdk:
            context["sdk"] = sdk
        if context:
            event["context"] = context
        events.append(event)
    return events


@st.composite
def marks_for(draw, events, distinct_from=()):
    """Invalid marks of tokens after their first event (the push sender marks tokens it read)."""
    marks = []
    used = set(distinct_from)
    for n in range(draw(st.integers(0, 3))):
        named = [e for e in events if e.get("push_token")]
        if not named:
            break
        event = draw(st.sampled_from(named))
        first = min(datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in named
                    if (e["property_id"], e["push_token"]) == (event["property_id"], event["push_token"]))
        at = first + timedelta(milliseconds=draw(st.integers(1, 10_000_000)))
        if at in used:
            continue
        used.add(at)
        marks.append((event["property_id"], event["push_token"], draw(st.sampled_from(["UNREGISTERED", "SENDER_ID"])), at))
    return marks


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_registers_say_what_the_issue_says(data):
    events = data.draw(histories(distinct_times=True))
    times = {datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in events}
    marks = data.draw(marks_for(events, distinct_from=times))
    assert expected("c", events, RECEIVED, marks) == replay_in_time_order(events, marks)


@settings(max_examples=200, deadline=None)
@given(histories(distinct_times=False), st.randoms())
def test_arrival_order_and_batching_do_not_matter_even_with_ties(events, rnd):
    reference = expected("c", events, RECEIVED)
    for _ in range(3):
        shuffled = events[:]
        rnd.shuffle(shuffled)
        assert expected("c", shuffled, RECEIVED) == reference


def test_a_late_subscribe_after_an_unsubscribe_all_stays_unsubscribed():
    subscribe = {"event_id": "1", "type": "subscribe", "property_id": "p", "user_id": "u", "push_token": "t",
                 "timestamp": "2026-11-26T11:00:00Z"}
    unsubscribe_all = {"event_id": "2", "type": "unsubscribe", "property_id": "p", "user_id": "u",
                       "timestamp": "2026-11-26T11:00:05Z"}
    for order in itertools.permutations([subscribe, unsubscribe_all]):
        _, subscriptions = expected("c", list(order), RECEIVED)
        assert subscriptions[("p", "t")]["status"] == UNSUBSCRIBED
