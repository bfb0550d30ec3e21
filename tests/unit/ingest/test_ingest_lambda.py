"""Lambda adapters with fixture events of API Gateway REST (v1), HTTP API (v2) and ALB."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest

from pistats.ingest import lambda_handler
from pistats.ingest.lambda_handler import ALB, APIGW_V1, APIGW_V2, detect_kind, handle_event

EVENTS = Path(__file__).parent / "events"


def load(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.mark.parametrize(
    "name, kind", [("apigw_v1", APIGW_V1), ("apigw_v2", APIGW_V2), ("alb", ALB), ("alb_multi_value", ALB)]
)
def test_detect_kind(name, kind):
    assert detect_kind(load(name)) == kind


def test_detect_kind_refuses_other_events():
    with pytest.raises(ValueError):
        detect_kind({"Records": [{"kinesis": {}}]})


def test_apigw_v1_event(make_harness):
    h = make_harness()
    result = handle_event(h.service, load("apigw_v1"))
    assert result["statusCode"] == 200
    assert result["headers"]["Content-Type"] == "application/json"
    assert result["isBase64Encoded"] is False
    assert json.loads(result["body"])["accepted"] == 1
    (record,) = h.records()
    assert record["ip"] == "203.0.113.10"  # requestContext.identity.sourceIp
    assert record["user_agent"].startswith("Mozilla/5.0 (Windows NT 10.0")
    assert h.kinesis.stored[0]["PartitionKey"] == "client-1:u-42"


def test_apigw_v2_base64_batch_with_one_invalid_event(make_harness):
    h = make_harness()
    result = handle_event(h.service, load("apigw_v2"))
    assert result["statusCode"] == 207
    body = json.loads(result["body"])
    assert body["errors"] == [{"index": 1, "field": "push_token", "problem": "required for subscribe"}]
    (record,) = h.records()
    assert record["ip"] == "198.51.100.23"
    assert record["user_agent"] == "MyApp/3.1 (iOS 18.1)"  # context.user_agent wins over okhttp


def test_alb_event_takes_the_alb_appended_hop(make_harness):
    h = make_harness()
    result = handle_event(h.service, load("alb"))
    assert result["statusCode"] == 200
    assert result["statusDescription"] == "200 OK"
    assert "headers" in result and "multiValueHeaders" not in result
    (record,) = h.records()
    assert record["ip"] == "192.0.2.44"
    assert record["event"]["notification_id"] == "campaign-9"


def test_alb_trusted_hop_before_the_alb(make_harness):
    h = make_harness(trusted_hops=1)
    handle_event(h.service, load("alb"))
    assert h.records()[0]["ip"] == "10.9.8.7"


def test_alb_multi_value_answer_uses_multi_value_headers(make_harness):
    result = handle_event(make_harness().service, load("alb_multi_value"))
    assert result["statusCode"] == 403
    assert result["statusDescription"] == "403 Forbidden"
    assert result["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert json.loads(result["body"]) == {"error": "write key disabled"}


def test_bad_base64_body_is_400(make_harness):
    event = load("apigw_v2")
    event["body"] = "***not base64***"
    result = handle_event(make_harness().service, event)
    assert (result["statusCode"], json.loads(result["body"])) == (400, {"error": "the body is not valid base64"})


def test_non_utf8_body_is_400(make_harness):
    event = load("apigw_v2")
    event["body"] = base64.b64encode(b'{"event_id": "\xff"}').decode()
    result = handle_event(make_harness().service, event)
    assert (result["statusCode"], json.loads(result["body"])["error"]) == (400, "the body is not UTF-8")


@pytest.mark.parametrize("name", ["apigw_v1", "apigw_v2", "alb"])
def test_missing_key_in_each_format_is_401(make_harness, name):
    event = copy.deepcopy(load(name))
    for headers in (event.get("headers") or {}, event.get("multiValueHeaders") or {}):
        for header in [h for h in headers if h.lower() == "x-pistats-key"]:
            del headers[header]
    result = handle_event(make_harness().service, event)
    assert result["statusCode"] == 401
    assert json.loads(result["body"]) == {"error": "missing write key (X-Pistats-Key header)"}


def test_unexpected_error_is_a_500_logged_without_the_key(caplog):
    class Broken:
        def handle(self, request):
            raise RuntimeError("bug")

    with caplog.at_level("DEBUG"):
        result = handle_event(Broken(), load("apigw_v1"))
    assert (result["statusCode"], json.loads(result["body"])) == (500, {"error": "internal error"})
    assert "RuntimeError: bug" in caplog.text
    assert "pk_good" not in caplog.text


def test_entry_points_build_the_service_once(make_harness):
    h = make_harness()
    built = []
    app = lambda_handler.LambdaApp(lambda: built.append(1) or h.service)
    assert app.apigw_v1(load("apigw_v1"), None)["statusCode"] == 200
    assert app.apigw_v2(load("apigw_v2"), None)["statusCode"] == 207
    assert app.alb(load("alb"), None)["statusCode"] == 200
    assert app.handler(load("alb"), None)["statusCode"] == 200  # a duplicate of the previous one
    assert json.loads(app.handler(load("alb"), None)["body"])["duplicate"] is True
    assert len(h.kinesis.stored) == 3
    assert built == [1]


def test_module_entry_points_share_one_app():
    assert lambda_handler.handler.__self__ is lambda_handler.app
    assert lambda_handler.alb_handler.__self__ is lambda_handler.app
