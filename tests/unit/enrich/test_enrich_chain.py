import json
from datetime import datetime, timezone

import pytest

from pistats import contract
from pistats.enrich.chain import Chain, EnrichConfig
from pistats.enrich.event import EVENT_FIELDS, from_wire, to_wire
from pistats.enrich.geo import GeoConfig
from pistats.enrich.parse import RawRecord
from pistats.wire import format_time

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")


def record(event_id, ip="81.2.69.160", ua=IPHONE, seq=1):
    ev = {"event_id": event_id, "type": "register", "property_id": "p", "user_id": "u1",
          "timestamp": "2026-11-26T05:00:00Z"}
    data = contract.encode_record(contract.build_record(
        client_id="c1", event=ev, received_at=NOW, ip=ip, user_agent=ua, now=NOW))
    return RawRecord("shardId-0", str(seq), 0, "c1:u1", None, data)


@pytest.fixture(scope="module")
def chain():
    return Chain.build(EnrichConfig(), now=lambda: NOW, timed=True)


def test_chain_without_sessions_enriches_every_field(chain):
    events, rejects = chain.run([record("a"), RawRecord("shardId-0", "2", 0, "pk", None, b"{"), record("b", ip="bad")])
    assert [r["reason"] for r in rejects] == ["bad_json"]
    first, second = events
    assert set(first) == set(EVENT_FIELDS)
    assert (first["geo_country"], first["ip"], first["device_type"], first["is_touch"]) == ("GB", "81.2.69.0", "mobile", True)
    assert first["session_id"] is None and first["enrich_errors"] == []
    assert second["enrich_errors"] == ["ip: malformed"] and second["geo_country"] == ""
    summary = chain.summary()
    assert (summary["records"], summary["events"], summary["rejects"]) == (3, 2, 1)
    assert summary["ua_cache"]["hits"] >= 1
    assert set(summary["seconds"]) == {"parse", "geo", "device", "bots", "sessions"}


def test_wire_form_round_trips(chain):
    (event,), _ = chain.run([record("c")])
    wire = json.loads(json.dumps(to_wire(event)))
    assert wire["event_time"] == "2026-11-26T05:00:00.000000Z"
    assert from_wire(wire) == event


def test_config_from_dict():
    config = EnrichConfig.from_dict({"geo": {"ip_mode": "full"}, "device": {"cache_size": 5},
                                     "sessions": {"gap_s": 600, "key_prefix": "x"}})
    assert (config.geo.ip_mode, config.device.cache_size, config.sessions.gap_s) == ("full", 5, 600)
    with pytest.raises(ValueError, match="unknown enrich settings"):
        EnrichConfig.from_dict({"session": {}})


def test_chain_from_topology_options():
    chain = Chain.from_topology_conf({"pistats.enrich": '{"device": {"cache_size": 3}}'}, {}, sessions=False)
    assert chain.stage("device").config.cache_size == 3 and chain.sessions is None
    chain = Chain.from_topology_conf({"pistats.enrich": {"geo": {"ip_mode": "none"}}}, {}, sessions=False)
    assert chain.stage("geo").config.ip_mode == "none"
    with pytest.raises(ValueError, match="PISTATS_REDIS_URL"):
        Chain.from_topology_conf({}, {}, sessions=True, with_stages=False)


def test_data_centre_address_flags_a_browser_as_bot(asn_db):
    chain = Chain.build(EnrichConfig(geo=GeoConfig(asn_db=asn_db)), now=lambda: NOW)
    chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    (cloud, home), _ = chain.run([record("a", ip="3.5.10.20", ua=chrome), record("b", ip="81.2.69.160", ua=chrome)])
    assert (cloud["geo_asn"], cloud["is_bot"], cloud["device_type"]) == (16509, True, "bot")
    assert (home["geo_asn"], home["is_bot"], home["device_type"]) == (20712, False, "desktop")


from hypothesis import given, settings, strategies as st

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(ip=TEXT | st.ip_addresses().map(str), ua=TEXT, user=TEXT.filter(lambda u: 0 < len(u) <= 128))
def test_any_valid_record_is_enriched_without_error(chain, ip, ua, user):
    ev = {"event_id": "e", "type": "page_view", "property_id": "p", "user_id": user,
          "timestamp": "2026-11-26T05:00:00Z"}
    data = contract.encode_record(contract.build_record(
        client_id="c1", event=ev, received_at=NOW, ip=ip, user_agent=ua, now=NOW))
    events, rejects = chain.run([RawRecord("shardId-0", "1", 0, "pk", None, data)])
    assert rejects == [] and len(events) == 1
    event = events[0]
    assert set(event) == set(EVENT_FIELDS) and event["device_type"] in ("desktop", "mobile", "tablet", "bot", "other")
    assert event["enrich_errors"] in ([], ["ip: malformed"])
    json.dumps(to_wire(event))


def test_wire_times_are_utc_whatever_zone_a_time_was_cached_in():
    from datetime import timedelta

    utc = datetime(2026, 11, 26, 5, 0, 0, 250000, tzinfo=timezone.utc)
    paris = utc.astimezone(timezone(timedelta(hours=1)))
    assert format_time(paris) == format_time(utc) == "2026-11-26T05:00:00.250000Z"
    assert format_time(utc.replace(microsecond=0)) == "2026-11-26T05:00:00.000000Z"
