"""What a running task tells ``pistats status``: its figures, published to Redis at a low rate.

Each task (a spout or sink task of one topology) owns one key,
``pistats:status:<app>:<stream>:<component>:<task>``, a JSON object written with one ``SET ... PX``
every ``interval_s`` and expiring after three intervals, so a task that died drops out of the
view by itself. Counters are cumulative since the task started; the publisher adds their rate
per second since its previous publish, so one read of the key answers "how fast, now".

Publishing is best effort and never in the data's way: it runs on a thread or a tick that does
no record work, and a Redis error is logged (once a minute at most) and skipped. Status is for
operators; no record waits for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

log = logging.getLogger(__name__)

KEY_PREFIX = "pistats:status:"
DEFAULT_INTERVAL_S = 5.0
ERROR_LOG_EVERY_S = 60.0


def status_prefix(app: str, stream: str) -> str:
    return f"{KEY_PREFIX}{app}:{stream}:"


def status_key(app: str, stream: str, component: str, task: int) -> str:
    return f"{status_prefix(app, stream)}{component}:{task}"


def rates(current: Mapping[str, int | float], previous: Mapping[str, int | float] | None,
          seconds: float) -> dict[str, float]:
    """Per-second change of each counter present in both snapshots (none for the first one)."""
    if not previous or seconds <= 0:
        return {}
    return {name: round((value - previous[name]) / seconds, 3)
            for name, value in current.items() if name in previous}


class StatusPublisher:
    """Publishes one task's figures; ``now`` is monotonic seconds, ``wall`` epoch seconds."""

    def __init__(self, redis_client, app: str, stream: str, component: str, task: int, *,
                 interval_s: float = DEFAULT_INTERVAL_S, now: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self._redis = redis_client
        self.key = status_key(app, stream, component, task)
        self._component, self._task = component, task
        self._interval_s = interval_s
        self._now, self._wall = now, wall
        self._next_at = now()
        self._started_at = wall()
        self._previous: dict[str, dict[str, int | float]] = {}
        self._previous_at: float | None = None
        self._next_error_log_at = 0.0
        self.publishes = 0
        self.seconds_spent = 0.0  # what publishing cost this process, for the <1 % budget

    def due(self) -> bool:
        return self._now() >= self._next_at

    def publish(self, counters: Mapping[str, Mapping[str, int | float]], gauges: Mapping[str, Any]) -> bool:
        """Write the figures now. ``counters`` are named groups of cumulative counters (e.g. one per
        shard); ``gauges`` are values as they stand. Returns whether Redis took them."""
        started = time.thread_time()
        now = self._now()
        self._next_at = now + self._interval_s
        seconds = now - self._previous_at if self._previous_at is not None else 0.0
        document = {
            "component": self._component,
            "task": self._task,
            "published_at": self._wall(),
            "started_at": self._started_at,
            "interval_s": self._interval_s,
            "counters": {group: dict(values) for group, values in counters.items()},
            "per_s": {group: rates(values, self._previous.get(group), seconds) for group, values in counters.items()},
            "gauges": dict(gauges),
            # What publishing cost against the whole process, so the <1 % budget is checked live.
            "status_cpu_s": round(self.seconds_spent, 6),
            "process_cpu_s": round(time.process_time(), 6),
        }
        self._previous = {group: dict(values) for group, values in counters.items()}
        self._previous_at = now
        try:
            self._redis.set(self.key, orjson.dumps(document), px=int(self._interval_s * 3000))
            self.publishes += 1
            return True
        except Exception as error:  # noqa: BLE001 - status is best effort; the data path never waits on it
            if now >= self._next_error_log_at:
                self._next_error_log_at = now + ERROR_LOG_EVERY_S
                log.warning("status not published to Redis (%s); the pipeline goes on", type(error).__name__)
            return False
        finally:
            self.seconds_spent += time.thread_time() - started
