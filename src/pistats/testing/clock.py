"""A clock the test moves: one source for the millisecond clock, the wall clock and sleeps."""

from __future__ import annotations

from datetime import datetime, timezone


class ManualClock:
    """Milliseconds since an epoch, moved by the test (and by the sink's retry waits)."""

    def __init__(self, start_ms: int = 1_790_000_000_000):
        self.now_ms = start_ms

    def ms(self) -> int:
        return self.now_ms

    def seconds(self) -> float:
        return self.now_ms / 1000

    def wall(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms / 1000, timezone.utc)

    def advance(self, ms: int) -> None:
        self.now_ms += ms

    def sleep(self, seconds: float) -> None:
        self.advance(max(1, int(seconds * 1000)))
