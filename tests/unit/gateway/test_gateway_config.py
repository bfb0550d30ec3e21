"""The gateway's settings, its rendered nginx configuration and the ingest's one trusted hop."""

from __future__ import annotations

from pathlib import Path

import pytest

from pistats.contract import MAX_BODY_BYTES
from pistats.gateway.app import TRUSTED_HOPS, ingest_config_from_env, with_healthz
from pistats.gateway.config import GatewayConfig
from pistats.gateway.nginx import render_nginx_conf


def test_defaults_and_environment():
    assert GatewayConfig.from_env({}).port == 8088
    assert (GatewayConfig.from_env({}).rate, GatewayConfig.from_env({}).burst_requests) == (100, 100)
    config = GatewayConfig.from_env({"PISTATS_GATEWAY_PORT": "9000", "PISTATS_GATEWAY_RATE": "7",
                                     "PISTATS_GATEWAY_BURST": "0", "PISTATS_GATEWAY_WORKERS": "3"})
    assert (config.port, config.rate, config.burst_requests, config.workers) == (9000, 7, 0, 3)
    assert GatewayConfig.from_env({}).workers >= 2


@pytest.mark.parametrize("env, message", [
    ({"PISTATS_GATEWAY_RATE": "fast"}, "PISTATS_GATEWAY_RATE must be a whole number"),
    ({"PISTATS_GATEWAY_RATE": "0"}, "rate must be >= 1"),
    ({"PISTATS_GATEWAY_PORT": "70000"}, "port must be 1-65535"),
    ({"PISTATS_GATEWAY_CONNECTIONS": "0"}, "connections must be >= 1"),
])
def test_bad_settings_are_refused(env, message):
    with pytest.raises(ValueError, match=message):
        GatewayConfig.from_env(env)


def test_the_rendered_configuration_fills_every_placeholder():
    text = render_nginx_conf(GatewayConfig(port=8123, rate=42, burst=7, connections=99),
                             home=Path("/srv/gw"), socket=Path("/srv/gw/ingest.sock"), user="www-data")
    assert "@" not in text.replace("@HOME@", "")
    for expected in ["listen 127.0.0.1:8123 ", "rate=42r/s", "burst=7 nodelay", "limit_conn gateway_total 99;",
                     f"client_max_body_size {MAX_BODY_BYTES};", "server unix:/srv/gw/ingest.sock ",
                     "user www-data;", "pid /srv/gw/nginx.pid;"]:
        assert expected in text
    # The log format names no header that carries a key, and no body.
    log_format = text[text.index("log_format"):text.index("map $http_x_pistats_key $rate_key")]
    assert "$http_x_pistats_key" not in log_format and "$request_body" not in log_format


def test_a_placeholder_without_a_value_is_an_error():
    with pytest.raises(ValueError, match="NOPE"):
        render_nginx_conf(GatewayConfig(), home=Path("/x"), socket=Path("/x/s"), template="listen @NOPE@;")


def test_the_ingest_behind_the_gateway_trusts_exactly_one_hop():
    env = {"PISTATS_INGEST_STREAM": "events", "PISTATS_INGEST_TRUSTED_HOPS": "3"}
    assert TRUSTED_HOPS == 1 and ingest_config_from_env(env).trusted_hops == 1


def test_healthz_is_answered_without_the_ingest():
    def ingest(environ, start_response):
        raise AssertionError("the ingest was called")

    app = with_healthz(ingest)
    seen = []
    body = app({"PATH_INFO": "/healthz", "REQUEST_METHOD": "GET"}, lambda status, headers: seen.append(status))
    assert (seen, body) == (["200 OK"], [b'{"status":"ok"}'])
    app({"PATH_INFO": "/healthz", "REQUEST_METHOD": "POST"}, lambda status, headers: seen.append(status))
    assert seen[-1] == "405 Method Not Allowed"


def test_group_commit_is_on_by_default_and_configurable():
    from pistats.ingest.group_commit import GroupCommitSettings

    default = GatewayConfig.from_env({})
    assert default.group_commit_settings() == GroupCommitSettings(
        max_queued_entries=10_000, max_wait_s=0.0, admission_timeout_s=default.upstream_timeout_s / 3)
    tuned = GatewayConfig.from_env({"PISTATS_GATEWAY_GROUP_COMMIT_MAX_WAIT_MS": "2",
                                    "PISTATS_GATEWAY_GROUP_COMMIT_MAX_QUEUED": "500"}).group_commit_settings()
    assert (tuned.max_wait_s, tuned.max_queued_entries) == (0.002, 500)
    for off in ("0", "false", "off"):
        assert GatewayConfig.from_env({"PISTATS_GATEWAY_GROUP_COMMIT": off}).group_commit_settings() is None
    with pytest.raises(ValueError, match="PISTATS_GATEWAY_GROUP_COMMIT must be 1 or 0"):
        GatewayConfig.from_env({"PISTATS_GATEWAY_GROUP_COMMIT": "maybe"})
    with pytest.raises(ValueError, match="group_commit_max_queued must be >= 1"):
        GatewayConfig.from_env({"PISTATS_GATEWAY_GROUP_COMMIT_MAX_QUEUED": "0"})


def test_the_gateway_ingest_puts_through_group_commit_and_ingest_server_does_not():
    from pistats.ingest.config import IngestConfig
    from pistats.ingest.group_commit import GroupCommitPutter, GroupCommitSettings
    from pistats.ingest.putter import RecordPutter
    from pistats.ingest.service import build_service

    config = IngestConfig.from_env({"PISTATS_INGEST_STREAM": "events"})
    grouped = build_service(config, kinesis_client=object(), redis=object(), group_commit=GroupCommitSettings())
    plain = build_service(config, kinesis_client=object(), redis=object())
    assert type(grouped._putter) is GroupCommitPutter and type(plain._putter) is RecordPutter
