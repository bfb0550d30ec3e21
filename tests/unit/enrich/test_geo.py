import ipaddress

import pytest

from pistats.enrich.event import EMPTY_GEO
from pistats.enrich.geo import GeoConfig, GeoEnrichment, anonymise_ip


@pytest.fixture(scope="module")
def geo():
    return GeoEnrichment(GeoConfig())


@pytest.mark.parametrize(
    "ip, country, region, city, continent, timezone",
    [
        ("81.2.69.160", "GB", "ENG", "Willesden", "EU", "Europe/London"),
        ("89.160.20.112", "SE", "AB", "Stockholm", "EU", "Europe/Stockholm"),
        ("175.16.199.1", "CN", "JL", "Changchun", "AS", "Asia/Shanghai"),
        ("41.203.64.1", "NG", "LA", "Lagos", "AF", "Africa/Lagos"),
        ("8.8.8.8", "US", "", "", "NA", ""),
        ("2001:218::1", "JP", "", "", "AS", "Asia/Tokyo"),
        ("2a02:2770::21a:4aff:fe1e:8c46", "NL", "", "", "EU", "Europe/Amsterdam"),
    ],
)
def test_known_addresses_of_several_countries(geo, ip, country, region, city, continent, timezone):
    fields = geo.enrich({"ip": ip})
    assert (fields["geo_country"], fields["geo_region"], fields["geo_city"]) == (country, region, city)
    assert (fields["geo_continent"], fields["geo_timezone"]) == (continent, timezone)
    assert isinstance(fields["geo_lat"], float) and isinstance(fields["geo_accuracy_km"], int)
    assert "enrich_errors" not in fields


def test_country_name_and_postal(geo):
    fields = geo.enrich({"ip": "81.2.69.160"})
    assert fields["geo_country_name"] == "United Kingdom"
    assert fields["geo_postal"] == "NW10"


@pytest.mark.parametrize(
    "ip", ["10.1.2.3", "192.168.0.9", "172.16.5.5", "127.0.0.1", "169.254.1.1", "240.0.0.1", "0.0.0.0",
           "::1", "fe80::1", "fc00::5", "2001:db8::1", "100.64.0.1"],
)
def test_non_public_addresses_give_empty_fields_without_error(geo, ip):
    fields = geo.enrich({"ip": ip})
    assert {key: fields[key] for key in EMPTY_GEO} == EMPTY_GEO
    assert "enrich_errors" not in fields


@pytest.mark.parametrize("ip", ["", None, "   "])
def test_missing_ip_is_not_an_error(geo, ip):
    fields = geo.enrich({"ip": ip})
    assert fields["ip"] == "" and "enrich_errors" not in fields


@pytest.mark.parametrize("ip", ["nope", "300.1.1.1", "1.2.3", "::g", "1.2.3.4/24"])
def test_malformed_ip_is_a_field_problem(geo, ip):
    fields = geo.enrich({"ip": ip})
    assert fields["enrich_errors"] == ["ip: malformed"]
    assert fields["ip"] == "" and fields["geo_country"] == ""


def test_anonymisation_modes():
    v4, v6 = ipaddress.ip_address("81.2.69.160"), ipaddress.ip_address("2a02:2770:1234:5678::1")
    assert anonymise_ip(v4, "anonymised") == "81.2.69.0"
    assert anonymise_ip(v6, "anonymised") == "2a02:2770:1234::"
    assert anonymise_ip(v4, "full") == "81.2.69.160"
    assert anonymise_ip(v6, "none") == ""


def test_lookup_happens_before_anonymisation():
    # 81.2.69.160 and 81.2.69.0 could resolve differently; the stored IP is reduced, the geo is not.
    geo = GeoEnrichment(GeoConfig(ip_mode="anonymised"))
    full = GeoEnrichment(GeoConfig(ip_mode="full")).enrich({"ip": "81.2.69.160"})
    reduced = geo.enrich({"ip": "81.2.69.160"})
    assert reduced["ip"] == "81.2.69.0" and full["ip"] == "81.2.69.160"
    assert {k: reduced[k] for k in EMPTY_GEO} == {k: full[k] for k in EMPTY_GEO}


def test_config_validation(tmp_path):
    with pytest.raises(ValueError, match="ip_mode"):
        GeoConfig(ip_mode="half")
    with pytest.raises(ValueError, match="unknown geo settings"):
        GeoConfig.from_dict({"city": "x"})
    with pytest.raises(ValueError, match="cannot open GeoIP database"):
        GeoEnrichment(GeoConfig(city_db=tmp_path / "missing.mmdb"))
    assert GeoConfig.from_dict({"city_db": "/x.mmdb"}).city_db.name == "x.mmdb"


def test_asn_database_fills_asn_fields(asn_db):
    geo = GeoEnrichment(GeoConfig(asn_db=asn_db))
    fields = geo.enrich({"ip": "8.8.8.8"})
    assert (fields["geo_country"], fields["geo_asn"], fields["geo_org"]) == ("US", 15169, "GOOGLE")
    assert geo.enrich({"ip": "81.2.69.160"})["geo_org"] == "Andrews & Arnold Ltd"
    unknown = geo.enrich({"ip": "1.1.1.1"})
    assert (unknown["geo_asn"], unknown["geo_org"]) == (None, "")


def test_ipv6_against_an_ipv4_only_database_is_unknown_not_an_error(asn_db):
    fields = GeoEnrichment(GeoConfig(asn_db=asn_db)).enrich({"ip": "2001:218::1"})
    assert (fields["geo_country"], fields["geo_asn"]) == ("JP", None) and "enrich_errors" not in fields


def test_ip_cache_gives_fresh_copies_and_reports_hits():
    geo = GeoEnrichment(GeoConfig(cache_size=10))
    first = geo.enrich({"ip": "nope"})
    first["enrich_errors"].append("mutated by a caller")
    first["ip"] = "mutated too"
    again = geo.enrich({"ip": "nope"})
    assert again["enrich_errors"] == ["ip: malformed"] and again["ip"] == ""
    geo.enrich({"ip": "8.8.8.8"})
    assert geo.cache_stats() == {"hits": 1, "misses": 2, "size": 2, "hit_rate": 0.3333}
    uncached = GeoEnrichment(GeoConfig(cache_size=0))
    assert uncached.enrich({"ip": "81.2.69.160"}) == geo.enrich({"ip": "81.2.69.160"})
    assert uncached.cache_stats() == {"hits": 0, "misses": 0, "size": 0, "hit_rate": 0.0}
    with pytest.raises(ValueError, match="cache_size"):
        GeoConfig(cache_size=-1)
