"""The campaign's FCM message: its shape, the checks before sending, and the size bound."""

from __future__ import annotations

import doctest

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

import pistats.push.message as message_module
from pistats.push.message import (
    MESSAGE_MAX_BYTES,
    Content,
    build_message,
    content_problems,
    message_size,
    request_body,
)

FINE = Content("Sale", "Everything -20 %", "https://shop.example/sale?x=1", "c_0123456789abcdef0123", "c_0123")


def test_docstring_examples_run():
    assert doctest.testmod(message_module).failed == 0


def test_the_message_shape():
    message = build_message(FINE, "tok-1")
    assert message == {
        "token": "tok-1",
        "notification": {"title": "Sale", "body": "Everything -20 %"},
        "data": {"notification_id": "c_0123456789abcdef0123"},
        "webpush": {"fcm_options": {"link": "https://shop.example/sale?x=1"}},
        "fcm_options": {"analytics_label": "c_0123"},
    }
    assert orjson.loads(request_body(message)) == {"message": message}


def test_no_url_no_webpush():
    message = build_message(Content("t", "b", None, "c_1", "l"), "tok")
    assert "webpush" not in message
    assert content_problems(Content("t", "b", None, "c_1", "l")) == []


def test_the_size_leaves_the_target_out():
    message = build_message(FINE, "x" * 4096)
    assert message_size(message) == message_size(build_message(FINE, "")) < 300
    assert message_size(message) == len(orjson.dumps({k: v for k, v in message.items() if k != "token"}))


def test_each_problem_is_named():
    assert content_problems(FINE) == []
    assert content_problems(Content(" ", "b", None, "c", "l")) == ["title is empty"]
    assert content_problems(Content("t", "", None, "c", "l")) == ["body is empty"]
    assert content_problems(Content("t", "b", None, "", "l")) == ["campaign_id is empty"]
    for url in ("http://shop.example", "ftp://x", "https://", "shop.example", "", "https://a b.example"):
        assert content_problems(Content("t", "b", url, "c", "l")) == [
            "url must be an https:// URL with a host (FCM requires HTTPS links)"], url
    for label in ("", "a" * 51, "with space", "ümlaut", "a/b"):
        assert content_problems(Content("t", "b", None, "c", label)) == [
            "analytics_label must match ^[a-zA-Z0-9-_.~%]{1,50}$"], label
    assert content_problems(Content("t", "b", None, "c", "aZ09-_.~%" + "x" * 41)) == []
    assert content_problems(Content("t\ud800", "b", None, "c", "l")) == [
        "title is not valid Unicode text (lone surrogates)"]
    assert content_problems(Content(3, "b", None, "c", "l")) == ["title must be text"]


def test_too_big_is_refused_at_the_exact_byte():
    empty = message_size(build_message(Content("t", "", None, "c", "l"), "tok"))
    room = MESSAGE_MAX_BYTES - empty
    at_limit = Content("t", "é" * (room // 2) + "b" * (room % 2), None, "c", "l")
    assert message_size(build_message(at_limit, "tok")) == MESSAGE_MAX_BYTES
    assert content_problems(at_limit) == []
    over = Content("t", at_limit.body + "b", None, "c", "l")
    problems = content_problems(over)
    assert problems == [f"the message is {MESSAGE_MAX_BYTES + 1:,} bytes, over FCM's 4,096: shorten the title or body"]


def test_escapes_count():
    # A quote or a control character takes two or six bytes in JSON: counted as sent.
    empty = message_size(build_message(Content("t", "", None, "c", "l"), "tok"))
    assert message_size(build_message(Content("t", '"\x01', None, "c", "l"), "tok")) == empty + 2 + 6


labels = st.from_regex(r"\A[a-zA-Z0-9\-_.~%]{1,50}\Z")
text = st.text(min_size=0, max_size=3000)


@settings(max_examples=300, deadline=None)
@given(title=text, body=text, url=st.one_of(st.none(), st.text(max_size=2000), st.just("https://a.example/")),
       campaign_id=st.text(max_size=100), label=st.one_of(labels, st.text(max_size=60)))
def test_any_content_that_passes_fits_with_the_longest_token(title, body, url, campaign_id, label):
    content = Content(title, body, url, campaign_id, label)
    if content_problems(content):
        return
    message = build_message(content, "T" * 4096)
    assert message_size(message) <= MESSAGE_MAX_BYTES
    assert all(isinstance(value, str) for value in message["data"].values())
    assert orjson.loads(request_body(message))["message"] == message


@settings(max_examples=200, deadline=None)
@given(title=st.text(max_size=5000), body=st.text(max_size=5000))
def test_the_check_agrees_with_the_measure(title, body):
    content = Content(title, body, "https://a.example/", "c_1", "c_1")
    problems = content_problems(content)
    try:
        size = message_size(build_message(content, "tok"))
    except orjson.JSONEncodeError:
        assert any("lone surrogates" in problem for problem in problems)
        return
    too_big = any("over FCM" in problem for problem in problems)
    assert too_big == (size > MESSAGE_MAX_BYTES)
