import pytest

from pistats.enrich.bots import BotsConfig, BotsEnrichment


@pytest.fixture(scope="module")
def bots():
    return BotsEnrichment(BotsConfig())


def test_ua_classification_flag_is_kept(bots):
    assert bots.enrich({"is_bot": True, "user_agent": "x"}) == {"is_bot": True, "device_type": "bot"}


@pytest.mark.parametrize(
    "ua",
    ["curl/8.4.0", "Wget/1.21", "python-requests/2.31", "Go-http-client/1.1", "Scrapy/2.11",
     "Mozilla/5.0 (X11) HeadlessChrome/120", "SomeNewBot/1.0", "Mozilla/5.0 (compatible; crawler)"],
)
def test_crawler_patterns(bots, ua):
    assert bots.enrich({"is_bot": False, "user_agent": ua})["is_bot"] is True


@pytest.mark.parametrize(
    "ua",
    ["Mozilla/5.0 (Linux; Android 10; CUBOT X19) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36", ""],
)
def test_people_are_not_bots(bots, ua):
    assert bots.enrich({"is_bot": False, "user_agent": ua}) == {"is_bot": False}


def test_data_centre_asn(bots):
    assert bots.enrich({"is_bot": False, "user_agent": "Mozilla/5.0", "geo_asn": 16509})["is_bot"] is True
    assert bots.enrich({"is_bot": False, "user_agent": "Mozilla/5.0", "geo_asn": 3320})["is_bot"] is False
    assert bots.enrich({"is_bot": False, "user_agent": "Mozilla/5.0", "geo_asn": None})["is_bot"] is False


def test_config():
    custom = BotsEnrichment(BotsConfig.from_dict({"crawler_patterns": ["acme"], "data_centre_asns": [1]}))
    assert custom.enrich({"user_agent": "ACME/1"})["is_bot"] is True
    assert custom.enrich({"user_agent": "curl/8"})["is_bot"] is False
    with pytest.raises(ValueError, match="bad pattern"):
        BotsConfig(crawler_patterns=("(",))
    with pytest.raises(ValueError, match="unknown bots settings"):
        BotsConfig.from_dict({"asns": []})
