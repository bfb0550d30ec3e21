import pytest

from pistats.store.features import ServerFeatures, parse_version
from pistats.store.rows import EVENT_COLUMNS
from pistats.store.schema import create_events_sql, create_rejects_sql


def test_parse_version():
    assert parse_version("18.16.1") == (18, 16, 1)
    assert parse_version("26.9.2.1") == (26, 9, 2)
    assert parse_version("21.8") == (21, 8, 0)
    with pytest.raises(ValueError):
        parse_version("unknown")


def test_debian_server_gets_plain_types_and_no_token():
    features = ServerFeatures.for_version((18, 16, 1))
    assert not features.low_cardinality and not features.datetime64 and not features.insert_deduplication_token
    ddl = create_events_sql("db", features)
    assert "LowCardinality" not in ddl and "DateTime64" not in ddl and "SETTINGS" not in ddl
    assert "DateTime('UTC')" in ddl


def test_chdb_version_gets_low_cardinality_and_dedup_window():
    features = ServerFeatures.for_version((26, 9, 2))
    ddl = create_events_sql("db", features)
    assert "client_id LowCardinality(String)" in ddl
    assert "event_time DateTime64(3, 'UTC')" in ddl
    assert "non_replicated_deduplication_window" in ddl
    assert "non_replicated_deduplication_window" in create_rejects_sql("db", features)


def test_events_table_has_every_column_once_and_the_key():
    ddl = create_events_sql("db", ServerFeatures.for_version((26, 9, 2)))
    for column in EVENT_COLUMNS:
        assert ddl.count(f"\n    {column.name} ") == 1
    assert "ReplacingMergeTree(processed_at)" in ddl
    assert "PARTITION BY toYYYYMM(if(event_time < received_at - toIntervalDay(30) OR event_time > received_at + " \
        "toIntervalDay(1), received_at, event_time))" in ddl
    assert "ORDER BY (client_id, property_id, toDate(event_time), user_id, event_id)" in ddl


def test_insert_settings_by_version():
    assert ServerFeatures.for_version((18, 16, 1)).insert_settings("tok") == {}
    assert ServerFeatures.for_version((21, 8, 0)).insert_settings("tok") == {"optimize_on_insert": 0}
    assert ServerFeatures.for_version((26, 9, 2)).insert_settings("tok") == {
        "optimize_on_insert": 0, "insert_deduplication_token": "tok"}
    assert ServerFeatures.for_version((26, 9, 2)).insert_settings(None) == {"optimize_on_insert": 0}
