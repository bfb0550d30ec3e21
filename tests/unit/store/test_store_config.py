import pytest

from pistats.errors import ConfigError
from pistats.store.config import DEFAULT_STORE_URL, PASSWORD_ENV, SinkConfig, StoreURL, store_url_from


def test_clickhouse_url_parts():
    url = StoreURL.parse("clickhouse://alice:s3cr%40t@db.example:9001/analytics?send_receive_timeout=4")
    assert (url.scheme, url.host, url.port, url.user, url.password, url.database) == (
        "clickhouse", "db.example", 9001, "alice", "s3cr@t", "analytics")
    assert url.send_receive_timeout == 4.0


def test_tls_url_defaults_to_port_9440():
    assert StoreURL.parse("clickhouses://bob@host/db").port == 9440


def test_password_from_environment_when_url_has_none():
    url = StoreURL.parse("clickhouse://bob@host/db", env={PASSWORD_ENV: "from-env"})
    assert url.password == "from-env"


def test_password_never_in_repr_or_str():
    url = StoreURL.parse("clickhouse://alice:hunter2@host:9000/db")
    assert "hunter2" not in repr(url)
    assert "hunter2" not in str(url)
    assert url.redacted == "clickhouse://alice:***@host:9000/db"


def test_bad_url_message_hides_password():
    with pytest.raises(ConfigError) as caught:  # the command line exits 2 (tests/unit/cli)
        StoreURL.parse("mysql://alice:hunter2@host/db")
    assert "hunter2" not in str(caught.value)


def test_chdb_url_path_and_database():
    url = StoreURL.parse("chdb:///var/lib/pistats?database=demo")
    assert (url.scheme, url.path, url.database) == ("chdb", "/var/lib/pistats", "demo")
    assert StoreURL.parse("chdb://./data/x").path == "./data/x"
    assert StoreURL.parse("chdb:///x").database == "pistats"


@pytest.mark.parametrize("url", ["chdb:///x?database=a-b", "clickhouse://h/db;DROP", "chdb://"])
def test_rejects_bad_database_or_path(url):
    with pytest.raises(ConfigError):
        StoreURL.parse(url)


def test_store_url_precedence():
    assert store_url_from("chdb:///a", {"PISTATS_STORE_URL": "chdb:///b"}) == "chdb:///a"
    assert store_url_from(None, {"PISTATS_STORE_URL": "chdb:///b"}) == "chdb:///b"
    assert store_url_from(None, {}) == DEFAULT_STORE_URL


def test_sink_config_defaults_and_from_dict():
    assert SinkConfig.from_dict(None) == SinkConfig()
    assert SinkConfig().max_rows == 5000 and SinkConfig().max_age_s == 1.0
    config = SinkConfig.from_dict({"max_rows": 10, "max_age_s": 2})
    assert (config.max_rows, config.max_age_s) == (10, 2.0)
    assert SinkConfig().max_bisect_inserts == 64 and SinkConfig.from_dict({"max_bisect_inserts": 0}).max_bisect_inserts == 0


@pytest.mark.parametrize(
    "data", [{"max_rows": 0}, {"max_rows": 1.5}, {"nope": 1}, {"max_age_s": "1"}, {"backoff_initial_s": 5},
             {"max_bisect_inserts": -1}, {"max_bisect_inserts": 10_001}, {"max_bisect_inserts": 2.5}]
)
def test_sink_config_validation(data):
    with pytest.raises(ConfigError):
        SinkConfig.from_dict(data)


def test_default_store_is_chdb_under_the_working_directory():
    url = StoreURL.parse(DEFAULT_STORE_URL)
    assert (url.scheme, url.path) == ("chdb", "./.pistats/chdb")
    assert url.redacted == "chdb://./.pistats/chdb?database=pistats"
    assert StoreURL.parse("chdb:///data/x").redacted == "chdb:///data/x?database=pistats"
