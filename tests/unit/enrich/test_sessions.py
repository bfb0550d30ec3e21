import itertools
import json

import pytest

from pistats.enrich.sessions import (
    SessionConfig, SessionEvent, UserState, assign_batch, assign_session, decode_memo, encode_memo,
    session_id,
)

MIN = 60_000
HOUR = 60 * MIN
GAP, MAX_LEN = 30 * MIN, 24 * HOUR
T0 = 1_790_000_000_000


def ev(t, event_id=None, user="u1", client="c1"):
    return SessionEvent(client, user, event_id or f"e{t}", T0 + t)


def run(times, state=None):
    """Assign events at offsets ``times`` (ms from T0) in order; returns (state, fields list)."""
    out = []
    for t in times:
        state, fields = assign_session(state, ev(t), GAP, MAX_LEN)
        out.append(fields)
    return state, out


def indexes(fields):
    return [(f["session_index"], f["session_event_index"]) for f in fields]


def test_first_event_of_a_user():
    state, fields = assign_session(None, ev(0), GAP, MAX_LEN)
    assert fields == {
        "session_id": session_id(ev(0)), "session_index": 1, "session_event_index": 1,
        "is_new_user": True, "first_seen_at": T0,
    }
    assert state.sessions == 1 and state.first_seen_ms == T0


def test_events_within_the_gap_share_a_session():
    _, fields = run([0, 10 * MIN, 39 * MIN, 68 * MIN])
    assert indexes(fields) == [(1, 1), (1, 2), (1, 3), (1, 4)]
    assert len({f["session_id"] for f in fields}) == 1
    assert [f["is_new_user"] for f in fields] == [True, False, False, False]
    assert {f["first_seen_at"] for f in fields} == {T0}


def test_gap_of_exactly_thirty_minutes_starts_a_new_session():
    _, fields = run([0, GAP - 1, 2 * GAP - 1])
    assert indexes(fields) == [(1, 1), (1, 2), (2, 1)]
    assert fields[2]["session_id"] == session_id(ev(2 * GAP - 1))


def test_session_is_capped_at_24_hours():
    times = list(range(0, MAX_LEN + 21 * MIN, 20 * MIN))  # one event every 20 minutes up to 24h20
    _, fields = run(times)
    first = [f for t, f in zip(times, fields) if t < MAX_LEN]
    after = [f for t, f in zip(times, fields) if t >= MAX_LEN]
    assert {f["session_index"] for f in first} == {1}
    assert [f["session_index"] for f in after] == [2, 2]
    assert after[0]["session_event_index"] == 1


def test_out_of_order_by_less_than_the_gap_stays_in_its_session():
    _, fields = run([0, 10 * MIN, 5 * MIN, -(GAP - 1)])
    assert indexes(fields) == [(1, 1), (1, 2), (1, 3), (1, 4)]
    assert fields[-1]["first_seen_at"] == T0 - (GAP - 1)


def test_late_event_goes_back_to_the_previous_session():
    # session 1 at 0..10 min, session 2 starts at 2 h; an event from 12 min arrives after it.
    _, fields = run([0, 10 * MIN, 2 * HOUR, 12 * MIN, 2 * HOUR + MIN])
    assert indexes(fields) == [(1, 1), (1, 2), (2, 1), (1, 3), (2, 2)]
    assert fields[3]["session_id"] == fields[0]["session_id"]


def test_very_late_event_opens_its_own_session_without_moving_current():
    _, fields = run([10 * HOUR, 20 * HOUR, 0, 20 * HOUR + MIN])
    assert indexes(fields) == [(1, 1), (2, 1), (3, 1), (2, 2)]
    assert fields[2]["first_seen_at"] == T0


def test_late_session_becomes_previous_when_newer_than_it():
    state, fields = run([10 * HOUR, 20 * HOUR, 15 * HOUR, 15 * HOUR + MIN])
    assert indexes(fields) == [(1, 1), (2, 1), (3, 1), (3, 2)]
    assert state.previous.index == 3


def test_late_session_older_than_previous_is_not_kept():
    # Only the current and previous sessions are remembered: very late events older than both
    # each open a session of their own (the documented cost of bounded state).
    state, fields = run([10 * HOUR, 20 * HOUR, 5 * HOUR, 5 * HOUR + MIN])
    assert [f["session_index"] for f in fields] == [1, 2, 3, 4]
    assert (state.current.index, state.previous.index) == (2, 1)


def test_late_event_cannot_stretch_a_session_past_24_hours():
    _, fields = run([0, 23 * HOUR + 50 * MIN, 20 * MIN, -29 * MIN])
    # 0 and 23h50 are in separate sessions (gap); -29 min fits session 1 (length 29 min < 24 h).
    assert [f["session_index"] for f in fields] == [1, 2, 1, 1]


def test_two_users_interleaved_are_independent():
    states = {}
    out = []
    for user, t in [("a", 0), ("b", 0), ("a", 40 * MIN), ("b", 10 * MIN), ("a", 41 * MIN)]:
        states[user], fields = assign_session(states.get(user), ev(t, user=user), GAP, MAX_LEN)
        out.append((user, fields["session_index"], fields["session_event_index"]))
    assert out == [("a", 1, 1), ("b", 1, 1), ("a", 2, 1), ("b", 1, 2), ("a", 2, 2)]


def test_session_ids_are_deterministic_and_distinct():
    a = run([0, 10 * MIN, 3 * HOUR])[1]
    b = run([0, 10 * MIN, 3 * HOUR])[1]
    assert [f["session_id"] for f in a] == [f["session_id"] for f in b]
    other_user = assign_session(None, ev(0, user="u2"), GAP, MAX_LEN)[1]
    other_client = assign_session(None, ev(0, client="c2"), GAP, MAX_LEN)[1]
    ids = {a[0]["session_id"], a[2]["session_id"], other_user["session_id"], other_client["session_id"]}
    assert len(ids) == 4


@pytest.mark.parametrize("order", list(itertools.permutations([0, 1, 2, 3])))
def test_jitter_under_a_minute_never_splits_a_visit(order):
    # Generated data: visits >= 2 h apart, events <= 5 min apart, jitter <= 60 s.
    visit = [0, 4 * MIN, 8 * MIN, 12 * MIN]
    times = [visit[i] for i in order] + [3 * HOUR + visit[i] for i in order]
    _, fields = run(times)
    assert [f["session_index"] for f in fields] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert sorted(f["session_event_index"] for f in fields[:4]) == [1, 2, 3, 4]


def test_state_round_trips_through_json():
    state, _ = run([0, 2 * HOUR, 10 * MIN])
    assert UserState.from_json(state.to_json()) == state
    assert json.loads(state.to_json(version=7))["ver"] == 7
    fresh, _ = run([0])
    assert UserState.from_json(fresh.to_json()) == fresh and fresh.previous is None


def test_memo_entries_round_trip():
    _, fields = run([0, MIN])
    for f in fields:
        assert decode_memo(encode_memo(f)) == f
        assert decode_memo(encode_memo(f).encode()) == f


def test_batch_replays_use_the_memo_and_count_once():
    events = [ev(0, "x"), ev(MIN, "y"), ev(0, "x"), ev(2 * MIN, "z")]
    result = assign_batch(events, {}, {}, GAP, MAX_LEN)
    assert result.fields[2] == result.fields[0]
    assert [f["session_event_index"] for f in result.fields] == [1, 2, 1, 3]
    assert result.replays == 1
    assert set(result.memo[("c1", "u1")]) == {"x", "y", "z"}


def test_batch_with_remembered_event_leaves_state_alone():
    first = assign_batch([ev(0, "x")], {}, {}, GAP, MAX_LEN)
    again = assign_batch([ev(0, "x")], first.states, first.memo, GAP, MAX_LEN)
    assert again.fields == first.fields and again.states == {} and again.replays == 1


def test_config_validation():
    assert SessionConfig.from_dict({"gap_s": 60}).gap_s == 60
    with pytest.raises(ValueError, match="unknown sessions settings"):
        SessionConfig.from_dict({"gap": 1})
    with pytest.raises(ValueError):
        SessionConfig(gap_s=0)
    with pytest.raises(ValueError, match="longer than"):
        SessionConfig(gap_s=100, max_length_s=100)
    with pytest.raises(ValueError, match="state_cache_size"):
        SessionConfig(state_cache_size=-1)
    assert SessionConfig(state_cache_size=0).state_cache_size == 0


from hypothesis import given, settings, strategies as st

OFFSETS = st.lists(st.integers(min_value=-2 * HOUR, max_value=60 * HOUR), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(OFFSETS)
def test_properties_of_any_event_sequence(times):
    events = [ev(t, f"e{n}") for n, t in enumerate(times)]
    first = assign_batch(events, {}, {}, GAP, MAX_LEN)
    # Deterministic: the same events in the same order give the same fields.
    assert assign_batch(events, {}, {}, GAP, MAX_LEN).fields == first.fields
    # Replaying every event through the memo changes nothing and counts nothing.
    again = assign_batch(events, first.states, first.memo, GAP, MAX_LEN)
    assert again.fields == first.fields and again.states == {} and again.replays == len(events)
    by_index = {}
    for event, fields in zip(events, first.fields):
        by_index.setdefault(fields["session_index"], []).append((event.time_ms, fields))
    # One id per session index, opened by the session's first event; events counted 1, 2, 3...
    state = first.states[("c1", "u1")]
    assert sorted(by_index) == list(range(1, state.sessions + 1))
    for members in by_index.values():
        assert len({f["session_id"] for _, f in members}) == 1
        assert [f["session_event_index"] for _, f in members] == list(range(1, len(members) + 1))
        span = [t for t, _ in members]
        assert max(span) - min(span) < MAX_LEN
    assert [f["is_new_user"] for f in first.fields] == [True] + [False] * (len(events) - 1)
    assert first.fields[-1]["first_seen_at"] == T0 + min(times)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40 * MIN), min_size=1, max_size=30))
def test_in_order_events_split_exactly_at_gaps_of_thirty_minutes_or_more(steps):
    # At most 30 steps of 40 minutes: always under the 24 h cap.
    times, t, expected, index = [], 0, [], 1
    for n, step in enumerate(steps):
        t += step
        if n and step >= GAP:
            index += 1
        times.append(t)
        expected.append(index)
    _, fields = run(times)
    assert [f["session_index"] for f in fields] == expected
