"""The autoscaler's rule, one behaviour at a time (pistats.scaling.policy)."""

from __future__ import annotations

import pytest

from pistats.scaling.policy import AutoscaleConfig, Observation, ScalerState, decide

CONFIG = AutoscaleConfig(records_per_executor_s=1_000, up_after=2, down_after=3, up_cooldown_s=60,
                         down_cooldown_s=300, shard_up_cooldown_s=120, shard_down_cooldown_s=600)


def seen(at, *, incoming=1_000, stored=None, backlog=0, lag_ms=0, executors=2, workers=1, shards=2):
    return Observation(at, incoming, incoming if stored is None else stored, backlog, lag_ms,
                       executors, workers, shards)


def run(observations, config=CONFIG, state=None):
    state = state or ScalerState()
    decisions = []
    for observation in observations:
        state, decision = decide(state, observation, config)
        decisions.append(decision)
    return state, decisions


def test_a_calm_pipeline_keeps_its_shape():
    _, decisions = run([seen(10 * i) for i in range(100)])
    assert all((d.executors, d.workers, d.shards) == (2, 1, 2) and not d.reasons for d in decisions)


def test_one_high_reading_is_not_enough_to_scale_up():
    _, decisions = run([seen(0), seen(10, lag_ms=60_000, backlog=50_000), seen(20)])
    assert [d.executors for d in decisions] == [2, 2, 2]


def test_lag_above_the_band_twice_in_a_row_sizes_for_load_and_backlog():
    # A shrinking backlog: the topology is not saturated, so the configured capacity stands.
    _, decisions = run([seen(0, lag_ms=60_000, backlog=130_000), seen(10, lag_ms=70_000, backlog=120_000)])
    # incoming 1,000/s + 120,000 records drained within 120 s = 2,000/s, at 70 % of 1,000/s each
    assert decisions[-1].executors == 3
    assert decisions[-1].workers == 1
    assert "lag 70000 ms" in decisions[-1].reasons[0]


def test_scaling_up_respects_the_upper_bounds():
    config = AutoscaleConfig(records_per_executor_s=1_000, max_executors=6, executors_per_worker=2, max_workers=2)
    _, decisions = run([seen(0, lag_ms=90_000, backlog=10**7), seen(10, lag_ms=90_000, backlog=10**7)], config)
    assert (decisions[-1].executors, decisions[-1].workers) == (6, 2)


def test_no_second_step_up_within_the_cooldown():
    high = dict(lag_ms=60_000, backlog=120_000, stored=2_000)
    state, decisions = run([seen(0, lag_ms=60_000, backlog=130_000), seen(10, **high)])
    assert decisions[-1].executors == 3
    later = [seen(20 + 10 * i, executors=3, **high) for i in range(4)]  # up to 50 s after the step
    _, decisions = run(later, state=state)
    assert all(d.executors == 3 for d in decisions)
    _, decisions = run([seen(70, executors=3, **high)], state=state.__class__(
        high_streak=5, last_change_at=10.0, last_backlog=120_000))
    assert decisions[-1].executors > 3


def test_scaling_down_needs_a_long_quiet_and_the_longer_cooldown():
    quiet = dict(incoming=500, executors=8, workers=2)
    state = ScalerState(last_change_at=0.0)
    _, decisions = run([seen(10 * i, **quiet) for i in range(1, 40)], state=state)
    first_change = next(i for i, d in enumerate(decisions) if d.executors != 8)
    assert 10 * (first_change + 1) >= CONFIG.down_cooldown_s
    # at most halved, and the load lands at or under the target utilisation
    assert decisions[first_change].executors == 4
    assert 500 / (4 * 1_000) <= CONFIG.target_utilisation


def test_down_band_is_broken_by_one_busy_reading():
    state = ScalerState(last_change_at=-1_000.0)
    readings = [seen(0, incoming=300), seen(10, incoming=300), seen(20, incoming=900), seen(30, incoming=300),
                seen(40, incoming=300)]
    _, decisions = run(readings, state=state)
    assert all(d.executors == 2 for d in decisions)


def test_never_below_the_lower_bounds():
    state = ScalerState(last_change_at=-1_000.0, shard_low_streak=0)
    _, decisions = run([seen(10 * i, incoming=1, executors=1, workers=1, shards=1) for i in range(50)], state=state)
    assert all((d.executors, d.workers, d.shards) == (1, 1, 1) for d in decisions)


def test_throttled_writes_double_the_shards_and_no_more():
    # Accepted at the limit of 2 shards: producers are being throttled, the real demand is unknown.
    _, decisions = run([seen(0, incoming=2_000, shards=2), seen(10, incoming=2_000, shards=2)])
    assert [d.shards for d in decisions] == [2, 4]


def test_shards_are_sized_from_the_second_high_reading_not_the_rising_first():
    # The first reading straddles the start of a surge (half of it); the next shows all of it.
    # Sized from the first, the stream would get 3 shards and keep them through the cooldown.
    _, decisions = run([seen(0, incoming=1_700, shards=2), seen(10, incoming=3_000, shards=2)])
    assert [d.shards for d in decisions] == [2, 4]


def test_one_high_write_reading_between_calm_ones_does_not_reshard():
    readings = [1_000, 1_900, 1_000, 1_900, 1_000]
    _, decisions = run([seen(10 * i, incoming=rate, shards=2) for i, rate in enumerate(readings)])
    assert all(d.shards == 2 for d in decisions)


def test_shards_halve_at_most_and_only_after_a_quiet_streak():
    state = ScalerState(last_shard_change_at=-10_000.0)
    _, decisions = run([seen(10 * i, incoming=100, shards=16) for i in range(3)], state=state)
    assert [d.shards for d in decisions] == [16, 16, 8]


def test_shards_are_not_halved_while_a_backlog_is_read():
    # The writes fell back, but the stream is still far behind: every shard's readers are needed.
    state = ScalerState(last_shard_change_at=-10_000.0)
    behind = [seen(10 * i, incoming=100, shards=16, lag_ms=90_000, backlog=20_000) for i in range(6)]
    state, decisions = run(behind, state=state)
    assert all(d.shards == 16 for d in decisions)
    # Caught up, the quiet streak starts from nothing.
    _, decisions = run([seen(60 + 10 * i, incoming=100, shards=16) for i in range(3)], state=state)
    assert [d.shards for d in decisions] == [16, 16, 8]


def test_reshards_are_bounded_per_day():
    config = AutoscaleConfig(max_shard_updates_per_day=2, shard_up_cooldown_s=0, max_shards=1_000)
    state, shards = ScalerState(), 1
    history = []
    for i in range(6):
        state, decision = decide(state, seen(100 * i, incoming=shards * 1_000, shards=shards), config)
        shards = decision.shards
        history.append(shards)
    # Two readings over the band to step up, the first call after the second; then the quota.
    assert history == [1, 2, 2, 4, 4, 4]
    # a day after the first update (at 100 s), one more is allowed
    state, decision = decide(state, seen(86_400 + 99, incoming=4_000, shards=4), config)
    assert decision.shards == 4
    state, decision = decide(state, seen(86_400 + 101, incoming=4_000, shards=4), config)
    assert decision.shards == 8


def test_capacity_is_learned_only_while_saturated():
    state = ScalerState(last_backlog=100_000)
    saturated = seen(0, incoming=3_000, stored=1_000, backlog=120_000, lag_ms=40_000, executors=2)
    state, _ = decide(state, saturated, CONFIG)
    assert state.learned_per_executor_s == pytest.approx((1_000 + 500) / 2)
    calm = seen(10, incoming=200, stored=200, executors=2)
    assert decide(state, calm, CONFIG)[0].learned_per_executor_s == state.learned_per_executor_s


@pytest.mark.parametrize("values, message", [
    ({"min_executors": 5, "max_executors": 4}, "min_executors must be <= max_executors"),
    ({"lag_low_ms": 40_000}, "lag_low_ms"),
    ({"down_utilisation": 0.8}, "down_utilisation"),
    ({"shard_low": 0.5}, "shard_low"),
    ({"bogus": 1}, "unknown autoscale settings: bogus"),
    ({"max_executors": "many"}, "pistats.autoscale.max_executors must be a number"),
])
def test_bad_settings_are_refused_by_name(values, message):
    with pytest.raises(ValueError, match=message):
        AutoscaleConfig.from_dict(values)


def test_settings_from_prefixed_text():
    config = AutoscaleConfig.from_dict({"pistats.autoscale.max_executors": "8", "pistats.autoscale.drain_s": "60"})
    assert (config.max_executors, config.drain_s) == (8, 60.0)
