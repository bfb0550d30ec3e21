import pytest

from pistats.retry import retry_within
from tests.support.clock import Clock


def flaky(failures, error=ConnectionError("down")):
    calls = []

    def operation():
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "done"

    return operation, calls


def run(operation, clock, **kwargs):
    options = dict(retry_on=ConnectionError, budget_s=2.0, initial_delay_s=0.1, max_delay_s=0.5,
                   monotonic=lambda: clock.now, sleep=clock.sleep)
    options.update(kwargs)
    return retry_within(operation, **options)


def test_returns_once_the_operation_succeeds_after_doubling_capped_waits():
    clock, seen = Clock(), []
    operation, calls = flaky(4)
    assert run(operation, clock, on_retry=lambda error, attempt, wait: seen.append((attempt, wait))) == "done"
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.5] and len(calls) == 5
    assert seen == [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5)]


def test_the_last_error_propagates_once_the_budget_is_spent_and_no_wait_passes_it():
    clock = Clock()
    operation, _ = flaky(100)
    with pytest.raises(ConnectionError):
        run(operation, clock)
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5, 0.3])
    assert sum(clock.sleeps) == pytest.approx(2.0)


def test_other_errors_propagate_at_once():
    clock = Clock()
    operation, calls = flaky(1, ValueError("bad"))
    with pytest.raises(ValueError):
        run(operation, clock)
    assert clock.sleeps == [] and len(calls) == 1
