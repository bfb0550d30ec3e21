"""The autoscaler against a surge in a capacity model, in compressed time (pistats.scaling.simulation).

The surge: 1,000 records/s, then 10x for 15 minutes, then back, each second +-20 % noise. The
pipeline starts sized for the base (2 executors of 800 records/s, 2 shards of 1,000 writes/s):
without the autoscaler it falls hours behind; with it, the lag stays bounded, returns to normal
within a bounded time (before the surge ends) and stays there, and the shape goes up once and down again without flapping.
"""

from __future__ import annotations

import pytest

from pistats.scaling.policy import AutoscaleConfig
from pistats.scaling.simulation import CapacityModel, Shape, simulate, surge

CONFIG = AutoscaleConfig(records_per_executor_s=800, max_executors=16, executors_per_worker=4, max_workers=4,
                         max_shards=64)
MODEL = CapacityModel(records_per_executor_s=800, shard_records_per_s=1_000, rebalance_pause_s=20, reshard_s=60)
START = Shape(executors=2, workers=1, shards=2)
CALM_S, SURGE_S = 600, 900
SURGE_END = CALM_S + SURGE_S
# The bounds the policy is held to for this surge (docs/scaling.md explains them).
MAX_LAG_S = 240
RECOVERED_WITHIN_S = 900  # from the surge's start: the pipeline catches up while the surge lasts
NORMAL_LAG_S = 30  # a rebalance pauses the topology for 20 s; that much lag is normal


@pytest.fixture(scope="module", params=[1, 2, 3])
def surged(request):
    return simulate(surge(1_000, 10, CALM_S, SURGE_S, noise=0.2, seed=request.param), 4_800, START, CONFIG, MODEL)


def test_without_the_autoscaler_the_surge_leaves_it_far_behind():
    trace = simulate(surge(1_000, 10, CALM_S, SURGE_S, noise=0.2, seed=1), 4_800, START, CONFIG, MODEL,
                     autoscale=False)
    assert trace.max_lag_s() > 10 * MAX_LAG_S
    assert trace.actions == []


def test_lag_stays_under_its_bound(surged):
    assert surged.max_lag_s() <= MAX_LAG_S


def test_lag_returns_to_normal_within_a_bounded_time_and_stays_there(surged):
    calm_at = surged.first_calm_after(CALM_S, NORMAL_LAG_S)
    assert calm_at is not None and calm_at - CALM_S <= RECOVERED_WITHIN_S
    assert surged.max_lag_s(start=SURGE_END) <= NORMAL_LAG_S


def test_it_scales_up_during_the_surge_and_down_after_without_flapping(surged):
    # A policy without hysteresis or cool-downs reverses direction dozens of times on this surge.
    assert surged.reversals() == 1  # up, then down: never back and forth
    peak = max(step.shape.executors for step in surged.steps)
    assert peak >= 12
    assert surged.steps[-1].shape.executors <= 4
    assert surged.steps[-1].shape.shards <= 4
    assert len(surged.actions) <= 14


def test_bounds_hold_at_every_step(surged):
    for step in surged.steps:
        assert CONFIG.min_executors <= step.shape.executors <= CONFIG.max_executors
        assert CONFIG.min_workers <= step.shape.workers <= CONFIG.max_workers
        assert CONFIG.min_shards <= step.shape.shards <= CONFIG.max_shards


def test_reshards_keep_kinesis_rules(surged):
    reshards = [a for a in surged.actions if a.decision.shards != a.before.shards]
    assert len(reshards) <= CONFIG.max_shard_updates_per_day
    for action in reshards:
        assert action.before.shards / 2 <= action.decision.shards <= action.before.shards * 2


def test_a_noisy_steady_load_changes_nothing():
    trace = simulate(surge(1_000, 1, 0, 0, noise=0.3, seed=7), 7_200, START, CONFIG, MODEL)
    assert trace.actions == []
    assert trace.max_lag_s() <= 5


def test_a_surge_beyond_the_bounds_holds_at_the_maximum_and_recovers():
    capped = AutoscaleConfig(records_per_executor_s=800, max_executors=8, executors_per_worker=4, max_workers=2)
    trace = simulate(surge(1_000, 10, CALM_S, SURGE_S, noise=0.2, seed=4), 9_000, START, capped, MODEL)
    assert max(step.shape.executors for step in trace.steps) == 8
    assert trace.reversals() == 1
    assert trace.first_calm_after(SURGE_END, NORMAL_LAG_S) is not None
