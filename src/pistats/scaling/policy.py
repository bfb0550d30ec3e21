"""The autoscaler's rule: from what the pipeline shows, how many enrich executors, workers and
shards it should have.

``decide(state, observation, config) -> (state, Decision)`` is pure: no clock, no Storm, no
Kinesis. The command that runs it (observing, rebalancing, resharding) and the simulation that
tests it against a surge both wrap this one function.

Why it does not flap:
- **hysteresis**: scaling up needs the lag above ``lag_high_ms`` (executors) or the writes above
  ``shard_high`` of the shards' limit (shards) for ``up_after`` observations in a row, so a reading
  taken while a surge is still rising is not the one a step is sized from; scaling down needs
  the lag below ``lag_low_ms`` *and* the load under ``down_utilisation`` of the capacity for
  ``down_after`` observations in a row. Between the two bands nothing happens.
- **cool-downs**: after any change, ``up_cooldown_s`` before another step up (the last one has to
  show its effect first) and ``down_cooldown_s`` (longer) before a step down.
- **sizing, not stepping**: a step up goes straight to the capacity the load and the backlog need,
  so a surge takes one or two steps, not ten; a step down at most halves and still leaves the load
  at ``target_utilisation`` or less, well under the band that would bring it back up.

Capacity per executor starts from ``records_per_executor_s`` and is learned while the topology is
saturated (a backlog that is not shrinking), the only time its throughput measures its capacity.

Kinesis's own rules are kept: ``UpdateShardCount`` at most doubles or halves the open shards in one
call, and a stream takes a bounded number of such calls per rolling 24 hours.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

PREFIX = "pistats.autoscale."
DAY_S = 86_400.0
# Accepted writes at this share of the shards' limit mean producers are being throttled.
THROTTLED = 0.95


@dataclass(frozen=True)
class AutoscaleConfig:
    """Bounds and bands of the autoscaler; validated on construction."""

    min_executors: int = 1
    # Storm can only spread a bolt's tasks over more executors: keep this <= the bolt's num_tasks.
    max_executors: int = 16
    executors_per_worker: int = 4
    min_workers: int = 1
    max_workers: int = 4
    min_shards: int = 1
    max_shards: int = 64
    records_per_executor_s: float = 800.0
    # A shard takes 1,000 records/s of writes (and 1 MiB/s); producers beyond that are throttled.
    shard_records_per_s: float = 1_000.0
    lag_high_ms: int = 30_000
    lag_low_ms: int = 5_000
    target_utilisation: float = 0.7
    down_utilisation: float = 0.35
    shard_high: float = 0.8
    shard_low: float = 0.25
    # A backlog is sized to be drained within this, on top of the incoming rate.
    drain_s: float = 120.0
    up_after: int = 2
    down_after: int = 6
    up_cooldown_s: float = 60.0
    down_cooldown_s: float = 300.0
    # After a reshard: how long before the next one up (a surge may need several doublings) and
    # down (a stream is cheap to keep wide for a while; each call counts against the daily quota).
    shard_up_cooldown_s: float = 120.0
    shard_down_cooldown_s: float = 600.0
    max_shard_updates_per_day: int = 10

    def __post_init__(self):
        pairs = (("min_executors", "max_executors"), ("min_workers", "max_workers"), ("min_shards", "max_shards"))
        for low, high in pairs:
            if getattr(self, low) < 1:
                raise ValueError(f"{low} must be >= 1")
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} must be <= {high}")
        for name in ("executors_per_worker", "up_after", "down_after", "max_shard_updates_per_day"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("records_per_executor_s", "shard_records_per_s", "drain_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("up_cooldown_s", "down_cooldown_s", "shard_up_cooldown_s", "shard_down_cooldown_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not 0 <= self.lag_low_ms < self.lag_high_ms:
            raise ValueError("lag_low_ms must be >= 0 and below lag_high_ms")
        if not 0 < self.down_utilisation < self.target_utilisation <= 1:
            raise ValueError("need 0 < down_utilisation < target_utilisation <= 1")
        if not 0 < self.shard_low < self.shard_high <= 1:
            raise ValueError("need 0 < shard_low < shard_high <= 1")
        if self.shard_low * 2 >= self.shard_high:
            # Halving at shard_low doubles the load per shard: it must land under shard_high.
            raise ValueError("shard_low must be under half of shard_high (or halving would flap)")

    @classmethod
    def from_dict(cls, values: dict) -> "AutoscaleConfig":
        """Plain keys (``max_executors``) or prefixed ones (``pistats.autoscale.max_executors``);
        unknown keys are refused; numbers given as text are converted."""
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        own = {(k[len(PREFIX):] if k.startswith(PREFIX) else k): v for k, v in values.items()}
        unknown = sorted(set(own) - set(fields))
        if unknown:
            raise ValueError(f"unknown autoscale settings: {', '.join(unknown)}")
        converted = {}
        for name, value in own.items():
            kind = int if fields[name] == "int" else float
            try:
                converted[name] = kind(value)
            except (TypeError, ValueError):
                raise ValueError(f"{PREFIX}{name} must be a number, not {value!r}") from None
        return cls(**converted)


@dataclass(frozen=True)
class Observation:
    """What the pipeline shows at ``at`` (seconds, any monotonic origin).

    ``incoming_per_s``: records/s accepted into the stream; ``stored_per_s``: records/s the
    topology finished (stored or rejected, checkpointed); ``backlog_records``: records between the
    checkpoints and the stream's tip, all shards; ``lag_ms``: how far the most-behind shard is.
    """

    at: float
    incoming_per_s: float
    stored_per_s: float
    backlog_records: int
    lag_ms: int
    executors: int
    workers: int
    shards: int


@dataclass(frozen=True)
class ScalerState:
    high_streak: int = 0
    low_streak: int = 0
    shard_high_streak: int = 0
    shard_low_streak: int = 0
    last_change_at: float | None = None
    last_shard_change_at: float | None = None
    shard_updates: tuple[float, ...] = ()
    learned_per_executor_s: float | None = None
    last_backlog: int | None = None


@dataclass(frozen=True)
class Decision:
    """The wanted shape; ``reasons`` says why, one phrase per change (empty: hold)."""

    executors: int
    workers: int
    shards: int
    reasons: tuple[str, ...] = field(default=())

    def changes(self, observation: Observation) -> bool:
        return (self.executors, self.workers, self.shards) != (
            observation.executors, observation.workers, observation.shards)


def workers_for(executors: int, config: AutoscaleConfig) -> int:
    return _clamp(math.ceil(executors / config.executors_per_worker), config.min_workers, config.max_workers)


def decide(state: ScalerState, seen: Observation, config: AutoscaleConfig) -> tuple[ScalerState, Decision]:
    per_executor = _learn(state, seen, config)
    capacity = per_executor * max(seen.executors, 1)
    utilisation = seen.incoming_per_s / capacity

    high = seen.lag_ms > config.lag_high_ms
    low = seen.lag_ms < config.lag_low_ms and utilisation < config.down_utilisation
    high_streak = state.high_streak + 1 if high else 0
    low_streak = state.low_streak + 1 if low else 0
    since_change = math.inf if state.last_change_at is None else seen.at - state.last_change_at

    executors, reasons = seen.executors, []
    if high_streak >= config.up_after and since_change >= config.up_cooldown_s:
        wanted = _executors_needed(seen.incoming_per_s + seen.backlog_records / config.drain_s, per_executor, config)
        executors = _clamp(max(wanted, seen.executors + 1), config.min_executors, config.max_executors)
        if executors != seen.executors:
            reasons.append(f"lag {seen.lag_ms} ms over {config.lag_high_ms} ms: executors {seen.executors} -> {executors}")
    elif low_streak >= config.down_after and since_change >= config.down_cooldown_s:
        wanted = _executors_needed(seen.incoming_per_s, per_executor, config)
        executors = _clamp(max(wanted, math.ceil(seen.executors / 2)), config.min_executors, config.max_executors)
        executors = min(executors, seen.executors)
        if executors != seen.executors:
            reasons.append(f"load {utilisation:.0%} of capacity: executors {seen.executors} -> {executors}")
    # Bring the shape within bounds even when the load asks nothing (e.g. bounds changed).
    executors = _clamp(executors, config.min_executors, config.max_executors)
    workers = workers_for(executors, config)
    if workers != seen.workers and not reasons:
        reasons.append(f"workers {seen.workers} -> {workers} for {executors} executors")
    elif workers != seen.workers:
        reasons[-1] += f", workers {seen.workers} -> {workers}"

    shards, shard_high_streak, shard_low_streak, shard_updates = _shards(state, seen, config, reasons)

    changed = (executors, workers) != (seen.executors, seen.workers)
    new_state = ScalerState(
        high_streak=0 if changed else high_streak,
        low_streak=0 if changed else low_streak,
        shard_high_streak=shard_high_streak,
        shard_low_streak=shard_low_streak,
        last_change_at=seen.at if changed else state.last_change_at,
        last_shard_change_at=seen.at if shards != seen.shards else state.last_shard_change_at,
        shard_updates=shard_updates,
        learned_per_executor_s=per_executor if per_executor != config.records_per_executor_s else state.learned_per_executor_s,
        last_backlog=seen.backlog_records,
    )
    return new_state, Decision(executors, workers, shards, tuple(reasons))


def _learn(state: ScalerState, seen: Observation, config: AutoscaleConfig) -> float:
    """Capacity per executor: the configured guess, replaced by what a saturated topology shows.

    Saturated means a backlog above what the low band allows that did not shrink since the last
    observation: then the topology finished as much as it could. Smoothed (half the new reading),
    and never below a tenth of the guess, so one stalled reading (a rebalance) cannot collapse it.
    """
    known = state.learned_per_executor_s or config.records_per_executor_s
    saturated = (
        state.last_backlog is not None
        and seen.backlog_records > 0
        and seen.backlog_records >= state.last_backlog
        and seen.lag_ms > config.lag_low_ms
        and seen.stored_per_s > 0
        and seen.executors > 0
    )
    if not saturated:
        return known
    reading = seen.stored_per_s / seen.executors
    return max(config.records_per_executor_s / 10, (known + reading) / 2)


def _executors_needed(rate: float, per_executor: float, config: AutoscaleConfig) -> int:
    return max(1, math.ceil(rate / (per_executor * config.target_utilisation)))


def _shards(state: ScalerState, seen: Observation, config: AutoscaleConfig, reasons: list[str]):
    """Open shards wanted, within UpdateShardCount's rules (x2 or /2 at most per call)."""
    recent = tuple(t for t in state.shard_updates if seen.at - t < DAY_S)
    writable = seen.shards * config.shard_records_per_s
    # Quiet writes alone do not make fewer shards enough: a backlog is read shard by shard, and
    # halving the shards while behind (a surge's writes just stopped) halves what drains it.
    high = seen.incoming_per_s > writable * config.shard_high
    low = seen.incoming_per_s < writable * config.shard_low and seen.lag_ms < config.lag_low_ms
    high_streak = state.shard_high_streak + 1 if high else 0
    low_streak = state.shard_low_streak + 1 if low else 0
    since = math.inf if state.last_shard_change_at is None else seen.at - state.last_shard_change_at
    allowed = len(recent) < config.max_shard_updates_per_day

    shards = seen.shards
    wanted = math.ceil(seen.incoming_per_s / (config.shard_records_per_s * config.target_utilisation))
    if allowed and since >= config.shard_up_cooldown_s and high_streak >= config.up_after:
        # Near the write limit the accepted rate hides how much more producers offer: double.
        throttled = seen.incoming_per_s >= writable * THROTTLED
        wanted = seen.shards * 2 if throttled else max(wanted, seen.shards + 1)
        shards = _clamp(min(wanted, seen.shards * 2), config.min_shards, config.max_shards)
    elif allowed and since >= config.shard_down_cooldown_s and low_streak >= config.down_after:
        shards = _clamp(max(wanted, math.ceil(seen.shards / 2)), config.min_shards, config.max_shards)
        shards = min(shards, seen.shards)
    if shards != seen.shards:
        reasons.append(f"incoming {seen.incoming_per_s:.0f} records/s on {seen.shards} shards: shards -> {shards}")
        return shards, 0, 0, recent + (seen.at,)
    return shards, high_streak, low_streak, recent


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))
