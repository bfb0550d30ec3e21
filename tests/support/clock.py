"""A manual monotonic clock in seconds, for code that takes a ``now``/``clock``/``monotonic``
callable and a ``sleep``: the test moves time, so waits, budgets and expiries do not depend on
how long the real calls take on a loaded machine.

Pass the clock itself as the callable and its ``sleep`` as the sleep: a sleep advances ``now`` and
is recorded in ``sleeps``; ``advance`` (or setting ``now``) moves time without recording a sleep."""


class Clock:
    def __init__(self, now: float = 0.0):
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
