"""A capacity model of the pipeline to test the autoscaler's rule against a surge, in compressed time.

The model, one step per simulated second:
- producers offer ``rate(t)`` records; the stream accepts at most ``shards * shard_records_per_s``
  of them and the rest wait at the producers (the SDKs retry throttled puts), oldest first;
- the topology finishes at most ``executors * records_per_executor_s`` records a second, oldest
  first, and nothing while a rebalance is under way (``rebalance_pause_s``: Storm kills and
  restarts the workers);
- a reshard takes ``reshard_s`` before the new shards take writes.

Lag is the age of the oldest record not yet finished, counted from when a producer first offered
it, so throttling at the stream is part of it, not hidden. The autoscaler observes every
``observe_every_s`` what the real command would see: rates over the interval, the backlog in the
stream, the lag of the stream (not the producers' queue, which the pipeline cannot see).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pistats.scaling.policy import AutoscaleConfig, Decision, Observation, ScalerState, decide


@dataclass(frozen=True)
class CapacityModel:
    records_per_executor_s: float = 800.0
    shard_records_per_s: float = 1_000.0
    rebalance_pause_s: float = 20.0
    reshard_s: float = 60.0
    observe_every_s: float = 10.0


@dataclass(frozen=True)
class Shape:
    executors: int
    workers: int
    shards: int


@dataclass
class Step:
    at: float
    offered: float
    lag_s: float
    backlog: float
    shape: Shape


@dataclass(frozen=True)
class Action:
    at: float
    before: Shape
    decision: Decision


@dataclass
class Trace:
    steps: list[Step] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)

    def max_lag_s(self, start: float = 0.0, end: float = math.inf) -> float:
        return max((s.lag_s for s in self.steps if start <= s.at < end), default=0.0)

    def first_calm_after(self, at: float, lag_s: float) -> float | None:
        """The first second from ``at`` on where the lag is at most ``lag_s`` and stays so."""
        calm_since = None
        for step in self.steps:
            if step.at < at:
                continue
            if step.lag_s <= lag_s:
                calm_since = step.at if calm_since is None else calm_since
            else:
                calm_since = None
        return calm_since

    def reversals(self) -> int:
        """How often the executors' direction of change flipped (up then down, or down then up)."""
        ups = [a.decision.executors > a.before.executors for a in self.actions
               if a.decision.executors != a.before.executors]
        return sum(1 for a, b in zip(ups, ups[1:]) if a != b)


def surge(base: float, factor: float, calm_s: float, surge_s: float,
          noise: float = 0.0, seed: int = 0) -> Callable[[float], float]:
    """Records/s offered at second t: ``base``, ``base * factor`` in [calm_s, calm_s + surge_s),
    each second multiplied by a uniform factor in [1 - noise, 1 + noise]."""
    rng = random.Random(seed)

    def rate(t: float) -> float:
        level = base * factor if calm_s <= t < calm_s + surge_s else base
        return level * (1 + rng.uniform(-noise, noise)) if noise else level

    return rate


def simulate(rate: Callable[[float], float], duration_s: int, start: Shape, config: AutoscaleConfig,
             model: CapacityModel, autoscale: bool = True) -> Trace:
    trace = Trace()
    shape = start
    state = ScalerState()
    producers: deque[list[float]] = deque()  # [offered_at, records] waiting to be accepted
    stream: deque[list[float]] = deque()  # [offered_at, records] accepted, not finished
    paused_until = -1.0
    pending_shards: tuple[float, int] | None = None
    accepted_since = finished_since = 0.0
    last_observed = 0.0

    for second in range(duration_s):
        now = float(second)
        if pending_shards and now >= pending_shards[0]:
            shape = Shape(shape.executors, shape.workers, pending_shards[1])
            pending_shards = None
        offered = rate(now)
        producers.append([now, offered])
        accepted_since += _move(producers, stream, shape.shards * model.shard_records_per_s)
        capacity = 0.0 if now < paused_until else shape.executors * model.records_per_executor_s
        finished_since += _move(stream, None, capacity)
        oldest = producers[0][0] if producers else (stream[0][0] if stream else None)
        lag_s = 0.0 if oldest is None else now - oldest
        backlog = sum(records for _, records in stream)
        trace.steps.append(Step(now, offered, lag_s, backlog, shape))

        if autoscale and now - last_observed >= model.observe_every_s:
            interval = now - last_observed
            stream_lag_ms = int(1000 * (now - stream[0][0])) if stream else 0
            seen = Observation(now, accepted_since / interval, finished_since / interval, int(backlog),
                               stream_lag_ms, shape.executors, shape.workers,
                               pending_shards[1] if pending_shards else shape.shards)
            state, decision = decide(state, seen, config)
            if decision.changes(seen):
                trace.actions.append(Action(now, shape, decision))
                if (decision.executors, decision.workers) != (shape.executors, shape.workers):
                    paused_until = now + model.rebalance_pause_s
                    shape = Shape(decision.executors, decision.workers, shape.shards)
                if decision.shards != seen.shards:
                    pending_shards = (now + model.reshard_s, decision.shards)
            accepted_since = finished_since = 0.0
            last_observed = now
    return trace


def _move(source: deque, target: deque | None, budget: float) -> float:
    """Take up to ``budget`` records from the front of ``source`` (into ``target``, if any)."""
    moved = 0.0
    while source and budget > 0:
        chunk = source[0]
        take = min(chunk[1], budget)
        if target is not None:
            target.append([chunk[0], take])
        chunk[1] -= take
        budget -= take
        moved += take
        if chunk[1] <= 1e-9:
            source.popleft()
    return moved
