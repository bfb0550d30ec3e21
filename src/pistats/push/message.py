"""The FCM HTTP v1 message of a campaign, and the checks it passes before anything is sent (pure).

What the size limit counts: FCM documents a 4,096-byte limit on a message's *payload*; the
registration token is the address, not the payload (a token alone may be up to 4,096 bytes, so a
limit counting it could never be met). :func:`message_size` is deliberately conservative: the
UTF-8 bytes of the whole serialized ``message`` object (JSON keys, quotes, escapes,
``notification``, ``data``, ``webpush`` and ``fcm_options`` included) *without* its target
(``token``, ``topic`` or ``condition``). FCM's own count (notification and data only) is never
larger, so a message within :data:`MESSAGE_MAX_BYTES` here is within FCM's limit; the local FCM
(:mod:`pistats.testing.fcm`) refuses by the same measure.

>>> content = Content("Hello", "Come back", "https://example.com/x", "c_0123", "c_0123")
>>> content_problems(content)
[]
>>> message = build_message(content, "token-1")
>>> sorted(message)
['data', 'fcm_options', 'notification', 'token', 'webpush']
>>> message["data"], message["webpush"]
({'notification_id': 'c_0123'}, {'fcm_options': {'link': 'https://example.com/x'}})
>>> content_problems(Content("", "b", "http://example.com", "c_1", "bad label"))
['title is empty', 'url must be an https:// URL with a host (FCM requires HTTPS links)', 'analytics_label must match ^[a-zA-Z0-9-_.~%]{1,50}$']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

MESSAGE_MAX_BYTES = 4096
TARGETS = ("token", "topic", "condition")
# FCM's documented pattern for fcm_options.analytics_label.
ANALYTICS_LABEL = re.compile(r"[a-zA-Z0-9\-_.~%]{1,50}")
ANALYTICS_LABEL_PATTERN = "^[a-zA-Z0-9-_.~%]{1,50}$"


@dataclass(frozen=True)
class Content:
    """What a campaign says. ``campaign_id`` travels as ``data.notification_id``: the web SDK
    echoes it in its ``notification_click`` event, which is how clicks find their campaign."""

    title: str
    body: str
    url: str | None
    campaign_id: str
    analytics_label: str


def build_message(content: Content, token: str) -> dict:
    """The v1 ``message`` object addressed to ``token`` (data values are strings, as FCM requires)."""
    message: dict = {
        "token": token,
        "notification": {"title": content.title, "body": content.body},
        "data": {"notification_id": str(content.campaign_id)},
    }
    if content.url:
        message["webpush"] = {"fcm_options": {"link": content.url}}
    message["fcm_options"] = {"analytics_label": content.analytics_label}
    return message


def message_size(message: dict) -> int:
    """The bytes :data:`MESSAGE_MAX_BYTES` limits: the serialized message without its target.

    Raises ``orjson.JSONEncodeError`` for text JSON cannot carry (lone surrogates)."""
    return len(orjson.dumps({key: value for key, value in message.items() if key not in TARGETS}))


def request_body(message: dict) -> bytes:
    """The body of ``POST .../messages:send``."""
    return orjson.dumps({"message": message})


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def content_problems(content: Content) -> list[str]:
    """What stops ``content`` from being sent, one short sentence each; empty when it is fine.

    When this is empty, :func:`build_message` of any token gives a message whose
    :func:`message_size` is at most :data:`MESSAGE_MAX_BYTES` and whose data values are strings.
    """
    problems = []
    fields = {"title": content.title, "body": content.body, "campaign_id": content.campaign_id,
              "analytics_label": content.analytics_label}
    if content.url is not None:
        fields["url"] = content.url
    for name, value in fields.items():
        if not isinstance(value, str):
            problems.append(f"{name} must be text")
        elif not _encodable(value):
            problems.append(f"{name} is not valid Unicode text (lone surrogates)")
    if problems:
        return problems
    for name in ("title", "body", "campaign_id"):
        if not fields[name].strip():
            problems.append(f"{name} is empty")
    if content.url is not None:
        try:
            parts = urlsplit(content.url)
            good = parts.scheme == "https" and bool(parts.hostname)
        except ValueError:
            good = False
        if not good or any(ch.isspace() for ch in content.url):
            problems.append("url must be an https:// URL with a host (FCM requires HTTPS links)")
    if not ANALYTICS_LABEL.fullmatch(content.analytics_label):
        problems.append(f"analytics_label must match {ANALYTICS_LABEL_PATTERN}")
    size = message_size(build_message(content, ""))
    if size > MESSAGE_MAX_BYTES:
        problems.append(f"the message is {size:,} bytes, over FCM's {MESSAGE_MAX_BYTES:,}: shorten the title or body")
    return problems
