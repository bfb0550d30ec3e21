"""classify(): what each FCM v1 answer means, from the documented bodies; never raises, never echoes a token."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pistats.push.fcm import RETRY_AFTER_MAX_S, SendResult, classify, mask, retry_after

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def body(code, status, message, fcm_code=None, violations=None):
    details = []
    if fcm_code:
        details.append({"@type": FCM_ERROR, "errorCode": fcm_code})
    if violations:
        details.append({"@type": BAD_REQUEST, "fieldViolations": [{"field": f, "description": d} for f, d in violations]})
    return orjson.dumps({"error": {"code": code, "message": message, "status": status, "details": details}})


# The two examples of FCM's error-codes page, byte for byte in shape.
DOCUMENTED_PAYLOAD_FAULT = orjson.dumps({"error": {
    "code": 400, "message": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12", "status": "INVALID_ARGUMENT",
    "details": [{"@type": BAD_REQUEST, "fieldViolations": [
        {"field": "message.data[0].value", "description": "Invalid value at 'message.data[0].value' (TYPE_STRING), 12"}]}]}})
DOCUMENTED_INVALID_TOKEN = orjson.dumps({"error": {
    "code": 400, "message": "The registration token is not a valid FCM registration token", "status": "INVALID_ARGUMENT",
    "details": [{"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}]}})


def test_sent_carries_the_message_name():
    result = classify(200, {}, b'{"name": "projects/p/messages/0:123%abc"}')
    assert result == SendResult("sent", http_status=200, name="projects/p/messages/0:123%abc")
    assert classify(200, {}, b"not json") == SendResult("sent", http_status=200)


def test_documented_invalid_argument_bodies():
    payload = classify(400, {}, DOCUMENTED_PAYLOAD_FAULT)
    assert (payload.kind, payload.code, payload.http_status) == ("payload_error", "INVALID_ARGUMENT", 400)
    assert "message.data[0].value" in payload.detail
    token = classify(400, {}, DOCUMENTED_INVALID_TOKEN)
    assert (token.kind, token.code) == ("invalid_token", "INVALID_ARGUMENT")
    assert token.detail == "The registration token is not a valid FCM registration token"


@pytest.mark.parametrize("status,rpc,fcm_code,kind", [
    (404, "NOT_FOUND", "UNREGISTERED", "invalid_token"),
    (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "invalid_token"),
    (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "retry"),
    (503, "UNAVAILABLE", "UNAVAILABLE", "retry"),
    (500, "INTERNAL", "INTERNAL", "retry"),
    (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "abort"),
])
def test_each_fcm_error_code(status, rpc, fcm_code, kind):
    result = classify(status, {}, body(status, rpc, "m", fcm_code))
    assert (result.kind, result.code, result.http_status, result.detail) == (kind, fcm_code, status, "m")


@pytest.mark.parametrize("status,rpc,kind", [
    (401, "UNAUTHENTICATED", "abort"),  # the client refreshes once before this is final
    (403, "PERMISSION_DENIED", "abort"),  # wrong project or no permission: every send would fail
    (404, "NOT_FOUND", "abort"),  # no FcmError: the endpoint or project is wrong, not the token
    (429, "RESOURCE_EXHAUSTED", "retry"),
    (400, "INVALID_ARGUMENT", "payload_error"),
])
def test_google_rpc_status_without_fcm_error(status, rpc, kind):
    result = classify(status, {}, body(status, rpc, "m"))
    assert (result.kind, result.code) == (kind, rpc)


def test_doubtful_invalid_argument_keeps_the_token():
    # FcmError INVALID_ARGUMENT about something else than the token: a payload error.
    result = classify(400, {}, body(400, "INVALID_ARGUMENT", "Message is too big", "INVALID_ARGUMENT"))
    assert result.kind == "payload_error"
    # Both details: the BadRequest names our field, so it is ours.
    result = classify(400, {}, body(400, "INVALID_ARGUMENT", "registration token?", "INVALID_ARGUMENT",
                                    [("message.notification.title", "bad")]))
    assert result.kind == "payload_error"
    # A BadRequest on the token field itself is the token's fault.
    result = classify(400, {}, body(400, "INVALID_ARGUMENT", "bad", None, [("message.token", "Invalid")]))
    assert result.kind == "invalid_token"


@pytest.mark.parametrize("status,kind", [(500, "retry"), (502, "retry"), (504, "retry"), (408, "retry"),
                                         (400, "payload_error"), (401, "abort"), (418, "abort")])
def test_bodies_that_are_not_google_errors_go_by_status(status, kind):
    result = classify(status, {}, b"<html>Bad Gateway</html>")
    assert (result.kind, result.code) == (kind, f"HTTP_{status}")
    assert result.detail == "<html>Bad Gateway</html>"


def test_an_error_body_on_2xx_is_never_sent():
    assert classify(200, {}, body(200, "OK", "m")).kind == "sent"  # no error object: sent
    weird = classify(207, {}, orjson.dumps({"error": {"status": "SOMETHING"}}))
    assert weird.kind == "sent"


def test_retry_after_seconds_date_and_bounds():
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"retry-after": " 0.25 "}) == 0.25
    assert retry_after({"Retry-After": "-3"}) == 0.0
    assert retry_after({"Retry-After": "99999"}) == RETRY_AFTER_MAX_S
    assert retry_after({"Retry-After": "nan"}) is None
    assert retry_after({"Retry-After": "inf"}) is None
    assert retry_after({"Retry-After": "soon"}) is None
    assert retry_after({}) is None
    date = {"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT", "Date": "Wed, 21 Oct 2026 07:28:00 GMT"}
    assert retry_after(date) == 30.0
    no_date = {"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT"}
    assert retry_after(no_date) is None
    assert retry_after(no_date, now=1_792_567_700.0) == 10.0  # 07:28:20 GMT
    assert retry_after({"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT", "Date": "garbage"}, now=1_792_567_710.0) == 0.0


def test_retry_after_reaches_the_result():
    result = classify(429, {"Retry-After": "2"}, body(429, "RESOURCE_EXHAUSTED", "q", "QUOTA_EXCEEDED"))
    assert (result.kind, result.retry_after_s) == ("retry", 2.0)
    assert classify(200, {"Retry-After": "2"}, b"{}").retry_after_s is None


def test_details_are_masked_and_cut():
    token = "fcm-token-" + "x" * 150
    result = classify(400, {}, body(400, "INVALID_ARGUMENT", f"bad token {token} here"), token=token)
    assert token not in result.detail and "***" in result.detail
    access = "ya29." + "a" * 200
    assert access[5:] not in classify(401, {}, body(401, "UNAUTHENTICATED", f"token {access}")).detail
    assert len(classify(500, {}, body(500, "INTERNAL", "x " * 1000)).detail) == 300
    assert mask("short tok-1 stays") == "short tok-1 stays"


TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:"
tokens = st.text(alphabet=TOKEN_ALPHABET, min_size=8, max_size=300)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)


@st.composite
def error_bodies(draw, token):
    """Google-shaped errors with the token planted where FCM might echo it, or arbitrary bytes."""
    planted = draw(st.sampled_from(["{t}", "token {t}.", "{t}{t}", "x{t}y", "nothing"])).format(t=token)
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=600)) + token.encode()
    if choice == 1:
        return json.dumps(draw(json_values)).encode()
    details = draw(st.lists(st.one_of(
        st.fixed_dictionaries({"@type": st.just(FCM_ERROR), "errorCode": st.one_of(st.text(max_size=20), st.just(planted), json_values)}),
        st.fixed_dictionaries({"@type": st.just(BAD_REQUEST), "fieldViolations": st.one_of(json_values, st.lists(
            st.fixed_dictionaries({"field": st.one_of(st.just("message.token"), st.just(planted), json_values),
                                   "description": st.one_of(st.just(planted), json_values)}), max_size=3))}),
        json_values), max_size=3))
    error = {"code": draw(json_values), "message": draw(st.one_of(st.just(planted), json_values)),
             "status": draw(st.one_of(st.sampled_from(["INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED"]), json_values)),
             "details": details}
    return json.dumps({"error": error} if choice == 2 else {"error": draw(json_values), "x": error}).encode()


@settings(max_examples=300, deadline=None)
@given(status=st.integers(-1000, 1000), token=tokens, data=st.data(),
       headers=st.dictionaries(st.sampled_from(["Retry-After", "retry-after", "Date", "X"]), st.text(max_size=40), max_size=3))
def test_never_raises_never_echoes_the_token(status, token, data, headers):
    raw = data.draw(error_bodies(token))
    result = classify(status, headers, raw, token=token, now=1_800_000_000.0)
    assert result.kind in ("sent", "invalid_token", "payload_error", "retry", "abort")
    assert token not in result.detail
    assert token not in (result.code or "")
    assert len(result.detail) <= 300
    assert result.retry_after_s is None or 0 <= result.retry_after_s <= RETRY_AFTER_MAX_S
