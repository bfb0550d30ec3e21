"""The SDK traffic of `pistats demo --full`: deterministic, valid, one session per request, and
an oracle that agrees with the registry's own rules."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from pistats.contract import MAX_BATCH_EVENTS, MAX_BODY_BYTES, parse_timestamp, validate_event
from pistats.errors import ConfigError
from pistats.generate.expected import count_sessions
from pistats.generate.sdk import DEAD_FATES, FCM_ANSWERS, SdkTrafficConfig, expected_outcome, sdk_traffic
from pistats.registry.changes import registry_problems
from pistats.testing.fcm import Script
from tests.support import registry as registry_model

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
CONFIG = SdkTrafficConfig(users=250, seed=5)


@pytest.fixture(scope="module")
def traffic():
    return sdk_traffic(CONFIG, "acme", NOW)


def without_times(traffic) -> list:
    return [(r.user_id, r.user_agent, r.resend,
             [{k: v for k, v in e.items() if k != "timestamp"} for e in r.events]) for r in traffic.requests]


def test_a_seed_gives_the_same_traffic_whenever_it_runs(traffic):
    later = sdk_traffic(CONFIG, "acme", NOW + timedelta(days=40, seconds=0.123))
    assert without_times(later) == without_times(traffic)
    assert without_times(sdk_traffic(SdkTrafficConfig(users=250, seed=6), "acme", NOW)) != without_times(traffic)
    shift = timedelta(days=40, seconds=0.123)
    assert [parse_timestamp(e["timestamp"]) for r in later.requests for e in r.events] == \
        [parse_timestamp(e["timestamp"]) + shift for r in traffic.requests for e in r.events]


def test_every_request_is_valid_for_the_ingest_and_the_registry(traffic):
    for request in traffic.requests:
        assert 1 <= len(request.events) <= MAX_BATCH_EVENTS and len(request.body()) <= MAX_BODY_BYTES
        assert request.user_agent.isascii()
        for event in request.events:
            assert validate_event(event) == [] and registry_problems("acme", event) == []
            assert event["user_id"] == request.user_id


def test_each_request_is_one_session_dated_within_the_window(traffic):
    times = defaultdict(list)
    requests = defaultdict(int)
    for request in traffic.requests:
        requests[request.user_id] += 1
        moments = [parse_timestamp(e["timestamp"]) for e in request.events]
        assert moments == sorted(moments)
        times[request.user_id].extend(moments)
    for user_id, moments in times.items():
        assert moments == sorted(moments)  # a user's requests are in the user's order
        assert count_sessions(moments) == requests[user_id]
        assert NOW - timedelta(days=CONFIG.days) <= moments[0] and moments[-1] <= NOW - timedelta(hours=1)
    assert set(times) == set(traffic.users)


def test_active_subscriptions_agree_with_the_registry_rules(traffic):
    events = [e for r in traffic.requests for e in r.events]
    _, subscriptions = registry_model.expected("acme", events, NOW)
    active = sum(1 for view in subscriptions.values() if view["status"] == "active")
    figures = expected_outcome(traffic, property_id=traffic.campaign_property, min_sessions=2)
    assert figures["subscriptions"] == active
    assert any(e["type"] == "unsubscribe" for e in events)  # the rules were exercised


def test_the_oracle_adds_up_and_the_clicks_follow_the_deliveries(traffic):
    figures = expected_outcome(traffic, property_id=traffic.campaign_property, min_sessions=2)
    assert figures["targeted"] == figures["sent"] + figures["invalidated"] > 0
    assert 0 < figures["clicked"] <= figures["sent"]
    script = Script.from_json(traffic.fcm_script()).compiled()
    for subscription in traffic.subscriptions.values():
        assert script(subscription.token).kind == FCM_ANSWERS[subscription.fate].split(":")[0]

    # Delivered: the targeted tokens FCM accepts (the oracle's own sent set, rebuilt here).
    events = [e for r in traffic.requests for e in r.events]
    _, subscriptions = registry_model.expected("acme", events, NOW)
    times = defaultdict(list)
    for event in events:
        times[event["user_id"]].append(parse_timestamp(event["timestamp"]))
    delivered = {hashlib.sha256(token.encode()).hexdigest()
                 for (property_id, token), view in subscriptions.items()
                 if view["status"] == "active" and property_id == traffic.campaign_property
                 and count_sessions(times[view["user_id"]]) >= 2
                 and traffic.subscriptions[token].fate not in DEAD_FATES}
    assert len(delivered) == figures["sent"]
    clicks = traffic.click_requests("c_0123456789abcdef0123", delivered, NOW)
    assert len(clicks) == figures["clicked"]
    for request in clicks:
        click, page_view = request.events
        assert (click["type"], click["notification_id"], page_view["type"]) == \
            ("notification_click", "c_0123456789abcdef0123", "page_view")
        assert validate_event(click) == [] and validate_event(page_view) == []
        assert traffic.users[request.user_id].clicks
    assert figures["events"] == len({e["event_id"] for e in events}) + 2 * len(clicks)


@pytest.mark.parametrize("changes", [{"users": 0}, {"days": 30}, {"dead_share": 0.8, "flaky_share": 0.3}])
def test_settings_out_of_range_are_refused(changes):
    with pytest.raises(ConfigError):
        SdkTrafficConfig(**changes)
