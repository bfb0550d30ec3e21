import json
from pathlib import Path

import pytest

from pistats.enrich.bots import BotsConfig, BotsEnrichment
from pistats.enrich.device import DEVICE_KEYS, DeviceConfig, DeviceEnrichment
from pistats.enrich.event import DEVICE_TYPES

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "user_agents" / "corpus.jsonl"
CASES = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def device():
    return DeviceEnrichment(DeviceConfig(cache_size=100))


@pytest.mark.parametrize("case", CASES, ids=[c["ua"][:40] or "empty" for c in CASES])
def test_corpus_classification(device, case):
    bots = BotsEnrichment(BotsConfig())
    fields = device.enrich({"user_agent": case["ua"]})
    fields.update(bots.enrich({**fields, "user_agent": case["ua"]}))
    assert fields["device_type"] == case["device_type"]
    assert fields["ua_browser"] == case["browser"]
    assert fields["ua_os"] == case["os"]
    assert fields["is_touch"] is case["is_touch"]
    assert fields["is_bot"] is (case["device_type"] == "bot")


@pytest.mark.parametrize("ua", [None, "", "   ", "\x00\x01", "a" * 100_000, 12345])
def test_empty_or_garbage_is_other_never_an_error(device, ua):
    fields = device.enrich({"user_agent": ua})
    assert set(fields) == set(DEVICE_KEYS)
    assert fields["device_type"] in DEVICE_TYPES
    if ua in (None, "", "   "):
        assert fields["device_type"] == "other" and fields["ua_browser"] == ""


def test_versions_and_device_details(device):
    fields = device.enrich({"user_agent": CASES[5]["ua"]})  # Samsung Galaxy S23, Chrome Mobile 120
    assert fields["ua_browser_version"] == "120.0.6099"
    assert fields["ua_os_version"] == "13"
    assert fields["ua_device_brand"] == "Samsung" and fields["ua_device_model"] == "SM-S918B"


def test_cache_reports_hit_rate():
    device = DeviceEnrichment(DeviceConfig(cache_size=2))
    for ua in ["a/1", "a/1", "a/1", "b/2"]:
        device.enrich({"user_agent": ua})
    assert device.cache_stats() == {"hits": 2, "misses": 2, "size": 2, "hit_rate": 0.5}
    for ua in ["c/3", "a/1"]:  # the LRU is bounded: a/1 was evicted by c/3
        device.enrich({"user_agent": ua})
    assert device.cache_stats()["misses"] == 4 and device.cache_stats()["size"] == 2


def test_cache_disabled_gives_same_fields():
    uncached = DeviceEnrichment(DeviceConfig(cache_size=0))
    cached = DeviceEnrichment(DeviceConfig())
    for case in CASES:
        assert uncached.enrich({"user_agent": case["ua"]}) == cached.enrich({"user_agent": case["ua"]})
    assert uncached.cache_stats()["hit_rate"] == 0.0


def test_config_validation():
    with pytest.raises(ValueError):
        DeviceConfig(cache_size=-1)
    with pytest.raises(ValueError, match="unknown device settings"):
        DeviceConfig.from_dict({"size": 3})
    assert DeviceConfig.from_dict({"cache_size": 7}).cache_size == 7


def test_rs_and_legacy_parsers_classify_alike():
    rs = DeviceEnrichment(DeviceConfig(parser="rs", cache_size=0))
    legacy = DeviceEnrichment(DeviceConfig(parser="legacy", cache_size=0))
    assert (rs.parser_name, legacy.parser_name) == ("rs", "legacy")
    generated = (CORPUS.parent / "generated.txt").read_text().splitlines()
    for ua in [case["ua"] for case in CASES] + generated:
        assert rs.enrich({"user_agent": ua}) == legacy.enrich({"user_agent": ua}), ua


def test_auto_prefers_rs_when_installed():
    assert DeviceEnrichment(DeviceConfig()).parser_name == "rs"
    with pytest.raises(ValueError, match="device.parser"):
        DeviceConfig(parser="fast")


def test_cached_fields_are_fresh_copies():
    device = DeviceEnrichment(DeviceConfig(cache_size=10))
    first = device.enrich({"user_agent": CASES[0]["ua"]})
    first["device_type"] = "mutated by a caller"
    assert device.enrich({"user_agent": CASES[0]["ua"]})["device_type"] == CASES[0]["device_type"]
