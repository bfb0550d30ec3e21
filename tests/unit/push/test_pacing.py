"""The sending pace and the retry delays, on a manual clock."""

from pistats.push.pacing import RetryPolicy, SendRate
from tests.support.clock import Clock


def test_slots_are_spaced_by_the_rate():
    clock = Clock()
    rate = SendRate(100, clock)
    waits = [rate.reserve() for _ in range(5)]
    assert [round(wait, 9) for wait in waits] == [0.0, 0.01, 0.02, 0.03, 0.04]


def test_slots_do_not_accumulate_while_idle():
    clock = Clock()
    rate = SendRate(10, clock)
    rate.reserve()
    clock.now = 100.0  # idle for a long time: no burst of saved-up slots
    assert rate.reserve() == 0.0
    assert abs(rate.reserve() - 0.1) < 1e-9


def test_slow_down_halves_once_per_cool_down_and_holds_for_retry_after():
    clock = Clock()
    rate = SendRate(100, clock, cool_down_s=1.0)
    rate.slow_down(retry_after_s=2.0)
    rate.slow_down(retry_after_s=2.0)  # the in-flight sends' answers: the same news, once
    assert rate.rate == 50
    assert rate.slowdowns == 1
    assert rate.reserve() == 2.0  # nothing before Retry-After has passed
    clock.now = 1.5
    rate.slow_down()
    assert rate.rate == 25


def test_successes_bring_the_rate_back_to_the_target_and_not_beyond():
    clock = Clock()
    rate = SendRate(100, clock, recovery_s=1.0, floor=1.0)
    for moment in range(7):
        clock.now = moment * 2.0
        rate.slow_down()
    assert rate.rate == 1.0
    for _ in range(200):
        rate.succeeded()
    assert rate.rate == 100


def test_retry_after_is_honoured_and_capped():
    policy = RetryPolicy(max_attempts=5, cap_s=30.0)
    assert policy.delay(1, 0.0, 7.0, lambda: 0.5) == 7.0
    assert policy.delay(1, 0.0, 3600.0, lambda: 0.5) == 30.0


def test_backoff_is_exponential_with_full_jitter():
    policy = RetryPolicy(max_attempts=10, base_s=0.5, cap_s=8.0, budget_s=1000)
    assert [policy.delay(n, 0.0, None, lambda: 1.0) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.delay(3, 0.0, None, lambda: 0.25) == 0.5


def test_no_retry_past_the_attempts_or_the_budget():
    policy = RetryPolicy(max_attempts=3, budget_s=10.0)
    assert policy.delay(3, 0.0, 1.0, lambda: 0.5) is None
    assert policy.delay(2, 9.5, 1.0, lambda: 0.5) is None
    assert policy.delay(2, 8.0, 1.0, lambda: 0.5) == 1.0
