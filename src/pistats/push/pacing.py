"""How fast a campaign sends, and how long a send waits before it is tried again. Pure: the
clock and the random source are injected.

- :class:`SendRate`: a pacer of slots, ``rate`` sends per second at most. FCM's answers that say
  "slower" (429 QUOTA_EXCEEDED, 503 UNAVAILABLE) halve the rate, at most once per ``cool_down_s``
  (the answers of the sends already in flight say the same thing once), and a ``Retry-After``
  holds every slot until it has passed: the quota is the project's, not one token's. Each
  success after that adds back a share of the configured rate (additive increase).
- :class:`RetryPolicy`: which attempt waits how long: ``Retry-After`` when FCM gave one, else
  exponential backoff with full jitter, within a number of attempts and a total budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class SendRate:
    """Slots for sends: :meth:`reserve` returns how long to wait before using the slot it took."""

    def __init__(self, rate: float, clock: Callable[[], float], *, floor: float = 1.0,
                 cool_down_s: float = 1.0, recovery_s: float = 10.0):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.target = float(rate)
        self.rate = float(rate)
        self._floor = min(floor, self.target)
        self._clock = clock
        self._cool_down_s = cool_down_s
        # Back from the floor to the target in about recovery_s of successes at the target rate.
        self._step = self.target / max(1.0, self.target * recovery_s)
        self._next_at = float("-inf")
        self._held_until = float("-inf")
        self._slowed_at = float("-inf")
        self.slowdowns = 0

    def reserve(self) -> float:
        """Take the next slot; the seconds to wait before sending in it (0 when it is now)."""
        now = self._clock()
        at = max(now, self._next_at, self._held_until)
        self._next_at = at + 1.0 / self.rate
        return at - now

    def slow_down(self, retry_after_s: float | None = None) -> None:
        """FCM said "slower" (and maybe when to come back)."""
        now = self._clock()
        if retry_after_s:
            self._held_until = max(self._held_until, now + retry_after_s)
        if now - self._slowed_at >= self._cool_down_s:
            self._slowed_at = now
            self.rate = max(self._floor, self.rate / 2)
            self.slowdowns += 1

    def succeeded(self) -> None:
        if self.rate < self.target:
            self.rate = min(self.target, self.rate + self._step)


@dataclass(frozen=True)
class RetryPolicy:
    """A send answered "try again" (kind ``retry``) is tried again at most ``max_attempts`` times
    in all, within ``budget_s`` of waiting; each wait is FCM's ``Retry-After`` when given (capped
    by ``cap_s``), else a random share of ``base_s * 2**(attempt - 1)`` (full jitter), capped."""

    max_attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 60.0
    budget_s: float = 300.0

    def delay(self, attempt: int, waited_s: float, retry_after_s: float | None,
              random: Callable[[], float]) -> float | None:
        """The wait before attempt ``attempt + 1`` after ``attempt`` attempts that waited
        ``waited_s`` in all; None when no attempt is left."""
        if attempt >= self.max_attempts:
            return None
        if retry_after_s is not None:
            wait = min(self.cap_s, max(0.0, retry_after_s))
        else:
            wait = random() * min(self.cap_s, self.base_s * 2 ** (attempt - 1))
        if waited_s + wait > self.budget_s:
            return None
        return wait
