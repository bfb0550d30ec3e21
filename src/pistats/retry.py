"""Waiting out a dependency's outage: retry an operation with backoff within a time budget.

Shared by the sink (ClickHouse inserts) and the session store (Redis): both block their bolt
while they wait, so the budget, not a count of attempts, is what must stay below Storm's
timeouts. Clocks are injected, so tests run without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry_within(
    operation: Callable[[], T],
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    budget_s: float,
    initial_delay_s: float,
    max_delay_s: float,
    monotonic: Callable[[], float],
    sleep: Callable[[float], None],
    on_retry: Callable[[BaseException, int, float], None] = lambda error, attempt, wait: None,
) -> T:
    """``operation()``'s result. An error of ``retry_on`` is retried after a wait that doubles
    from ``initial_delay_s`` up to ``max_delay_s`` and never reaches past the budget;
    ``on_retry(error, attempt, wait)`` is told before each wait. Once the budget is spent the
    last error propagates; any other error propagates at once."""
    deadline = monotonic() + budget_s
    delay = initial_delay_s
    attempt = 0
    while True:
        attempt += 1
        try:
            return operation()
        except retry_on as error:
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise
            wait = min(delay, remaining)
            on_retry(error, attempt, wait)
            sleep(wait)
            delay = min(delay * 2, max_delay_s)
