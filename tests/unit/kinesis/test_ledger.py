"""The checkpoint rule (`committable`), the retry policy and the incremental shard ledger."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pistats.kinesis.ledger import (
    DeadLetter,
    Position,
    Retry,
    RetryPolicy,
    ShardLedger,
    ShardRecord,
    committable,
    parse_message_id,
)

P = Position


def record(seq, subseq=0, last=True, shard="shardId-000000000000"):
    return ShardRecord(shard, seq, subseq, f"pk{seq}", 0, b"x", last)


# --- committable: the pure rule -------------------------------------------------------------


def test_nothing_emitted_nothing_committable():
    assert committable([], set()) is None


def test_lowest_in_flight_blocks_everything():
    assert committable([P(1), P(2), P(3)], {P(2), P(3)}) is None


def test_highest_contiguous_acked_prefix():
    assert committable([P(1), P(2), P(3), P(4)], {P(1), P(2), P(4)}) == P(2)


def test_all_acked_commits_the_last():
    assert committable([P(5), P(9)], {P(5), P(9)}) == P(9)


def test_failed_blocks_even_if_acked_before():
    assert committable([P(1), P(2), P(3)], {P(1), P(2), P(3)}, failed={P(2)}) == P(1)


def test_emitted_order_does_not_matter():
    assert committable([P(3), P(1), P(2)], {P(1), P(2)}) == P(2)


def test_sequence_numbers_compare_as_integers_not_strings():
    small, big = 9 * 10**55, 10**56  # "9..." > "1..." as strings, not as ints
    assert committable([P(big), P(small)], {P(small)}) == P(small)
    assert committable([P(big), P(small)], {P(big)}) is None


def test_sub_sequence_numbers_order_within_an_aggregate():
    emitted = [P(7, 0), P(7, 1), P(7, 2), P(8, 0)]
    assert committable(emitted, {P(7, 0), P(7, 1)}) == P(7, 1)
    assert committable(emitted, {P(7, 0), P(7, 2), P(8, 0)}) == P(7, 0)


def test_acked_but_never_emitted_is_ignored():
    assert committable([P(1)], {P(1), P(0)}) == P(1)


@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3)), unique=True, max_size=30),
    st.data(),
)
def test_committable_is_a_maximal_fully_acked_prefix(raw, data):
    emitted = [P(*t) for t in raw]
    acked = set(data.draw(st.lists(st.sampled_from(emitted), unique=True))) if emitted else set()
    result = committable(emitted, acked)
    ordered = sorted(emitted)
    if result is None:
        assert not ordered or ordered[0] not in acked
    else:
        assert all(p in acked for p in ordered if p <= result)
        following = [p for p in ordered if p > result]
        assert not following or following[0] not in acked


# --- retry policy -----------------------------------------------------------------------------


def test_backoff_grows_exponentially_and_caps():
    policy = RetryPolicy(max_retries=10, base_delay_ms=100, max_delay_ms=1000, multiplier=2)
    assert [policy.delay_ms(n) for n in range(1, 7)] == [100, 200, 400, 800, 1000, 1000]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retries": -1}, {"base_delay_ms": -1}, {"base_delay_ms": 10, "max_delay_ms": 5}, {"multiplier": 0.5}],
)
def test_invalid_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_delay_for_zero_failures_is_an_error():
    with pytest.raises(ValueError):
        RetryPolicy().delay_ms(0)


# --- message ids ------------------------------------------------------------------------------


def test_message_id_round_trips_big_sequence_numbers():
    seq = int("49680574275476335198516986152488964919401508045282344962")
    text = ShardRecord("shardId-000000000001", seq, 3, "k", 0, b"").message_id
    assert text == f"shardId-000000000001|{seq}|3"
    assert parse_message_id(text) == ("shardId-000000000001", P(seq, 3))


@pytest.mark.parametrize("text", ["", "a|1", "a|x|0", "a|1|2|3"])
def test_malformed_message_ids_are_refused(text):
    with pytest.raises(ValueError):
        parse_message_id(text)


# --- ShardLedger ------------------------------------------------------------------------------


def test_ack_in_order_advances_and_drops_entries():
    ledger = ShardLedger("s", RetryPolicy())
    for seq in (10, 20, 30):
        ledger.emit(record(seq))
    assert ledger.committable() is None
    assert ledger.ack(P(20)) == 0
    assert ledger.committable() is None
    assert ledger.ack(P(10)) == 2
    assert ledger.committable() == (P(20), True)
    assert len(ledger) == 1


def test_emit_must_increase():
    ledger = ShardLedger("s", RetryPolicy())
    ledger.emit(record(10))
    with pytest.raises(ValueError):
        ledger.emit(record(10))
    with pytest.raises(ValueError):
        ledger.emit(record(9))


def test_unknown_and_duplicate_acks_are_ignored():
    ledger = ShardLedger("s", RetryPolicy())
    ledger.emit(record(1))
    ledger.emit(record(2))
    assert ledger.ack(P(99)) == 0
    assert ledger.ack(P(1)) == 1
    assert ledger.ack(P(1)) == 0
    assert ledger.committable() == (P(1), True)


def test_fail_retries_with_backoff_then_replays_when_due():
    ledger = ShardLedger("s", RetryPolicy(max_retries=2, base_delay_ms=100, max_delay_ms=1000))
    ledger.emit(record(1))
    ledger.emit(record(2))
    outcome = ledger.fail(P(1), now_ms=1000)
    assert isinstance(outcome, Retry) and outcome.at_ms == 1100
    assert ledger.due(1099) == []
    assert ledger.next_retry_ms() == 1100
    assert [r.seq for r in ledger.due(1100)] == [1]
    assert ledger.due(5000) == []
    assert ledger.fail(P(1), now_ms=2000).at_ms == 2200
    ledger.ack(P(2))
    assert ledger.committable() is None


def test_retry_pending_record_cannot_be_acked_until_replayed():
    ledger = ShardLedger("s", RetryPolicy(base_delay_ms=10))
    ledger.emit(record(1))
    ledger.fail(P(1), 0)
    assert ledger.ack(P(1)) == 0
    ledger.due(10)
    assert ledger.ack(P(1)) == 1


def test_after_max_retries_a_dead_letter_and_only_its_ack_passes_the_checkpoint():
    ledger = ShardLedger("s", RetryPolicy(max_retries=1, base_delay_ms=10, max_delay_ms=50))
    ledger.emit(record(1))
    ledger.emit(record(2))
    ledger.ack(P(2))
    assert isinstance(ledger.fail(P(1), 0), Retry)
    ledger.due(10)
    dead = ledger.fail(P(1), 20)
    assert isinstance(dead, DeadLetter)
    assert dead.reason == "max_retries"
    assert dead.message_id.endswith("|1|0|dead")
    assert ledger.committable() is None
    # the dead letter itself fails: it is offered again later, never dropped
    assert ledger.fail(P(1), 30).at_ms == 80
    again = ledger.due(80)
    assert len(again) == 1 and isinstance(again[0], DeadLetter)
    assert ledger.ack(P(1)) == 2
    assert ledger.committable() == (P(2), True)
    assert len(ledger) == 0


def test_zero_retries_dead_letters_on_first_failure():
    ledger = ShardLedger("s", RetryPolicy(max_retries=0))
    ledger.emit(record(1))
    assert isinstance(ledger.fail(P(1), 0), DeadLetter)


def test_kpl_partial_aggregate_is_committable_but_not_complete():
    ledger = ShardLedger("s", RetryPolicy())
    ledger.emit(record(5, 0, last=False))
    ledger.emit(record(5, 1, last=True))
    ledger.ack(P(5, 0))
    assert ledger.committable() == (P(5, 0), False)
    ledger.ack(P(5, 1))
    assert ledger.committable() == (P(5, 1), True)


def test_counts_by_state():
    ledger = ShardLedger("s", RetryPolicy(max_retries=0))
    for seq in range(1, 5):
        ledger.emit(record(seq))
    ledger.ack(P(2))
    ledger.fail(P(3), 0)
    assert ledger.counts() == {"in_flight": 2, "retry_pending": 0, "dead_pending": 1, "done": 1}


OPS = st.lists(st.tuples(st.sampled_from(["ack", "fail", "due"]), st.integers(0, 19)), max_size=80)


@settings(max_examples=200)
@given(OPS)
def test_incremental_ledger_agrees_with_the_pure_rule(ops):
    """A model of each record's state (in flight, awaiting replay, dead letter, done) drives the
    ledger; after every step its commit point equals `committable` over the model."""
    policy = RetryPolicy(max_retries=2, base_delay_ms=1, max_delay_ms=4)
    ledger = ShardLedger("s", policy)
    emitted = [P(seq * 3, seq % 2) for seq in range(20)]
    for p in emitted:
        ledger.emit(record(p.seq, p.subseq))
    state = {p: "in" for p in emitted}
    failures = {p: 0 for p in emitted}
    now = 0
    for op, i in ops:
        now += 1
        position = emitted[i]
        if op == "ack":
            ledger.ack(position)
            if state[position] in ("in", "dead"):
                state[position] = "done"
        elif op == "fail":
            ledger.fail(position, now)
            if state[position] == "in":
                failures[position] += 1
                state[position] = "dead" if failures[position] > policy.max_retries else "retry"
        else:
            ledger.due(now + policy.max_delay_ms)
            for p, s in state.items():
                if s == "retry":
                    state[p] = "in"
        acked = {p for p, s in state.items() if s == "done"}
        failed = {p for p, s in state.items() if s == "retry"}
        got = ledger.committable()
        assert (got[0] if got else None) == committable(emitted, acked, failed)
        assert len(ledger) == len([p for p in emitted if got is None or p > got[0]])


def test_due_replays_respect_a_limit_and_keep_the_rest_due():
    ledger = ShardLedger("s", RetryPolicy(base_delay_ms=10))
    for seq in range(1, 6):
        ledger.emit(record(seq))
        ledger.fail(P(seq), now_ms=seq)
    first = ledger.due(1000, limit=2)
    assert [r.seq for r in first] == [1, 2]
    assert [r.seq for r in ledger.due(1000)] == [3, 4, 5]
