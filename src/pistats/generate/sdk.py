"""SDK traffic: what the piStats SDKs of one client's users send to the ingest over HTTP, and what a
correct system makes of it (the oracle of ``pistats demo --full``).

:mod:`pistats.generate.generator` writes what the ingest put into Kinesis; this is the other side
of the ingest: requests, each a visit's events batched by the SDK, with the device's User-Agent.

Model (everything random from one ``random.Random(seed)``; times relative to an injected ``now``,
so a seed gives the same requests, apart from their timestamps, whenever it runs):

- One client with ``properties`` properties (Zipf-weighted), each user on one of them, with one
  device (kind weighted as in :data:`catalog.DEVICE_KINDS`, ASCII User-Agents only: an HTTP
  header is ASCII).
- A user makes 1 to 6 visits within the ``days`` before ``now``, the last ending at least an hour
  before it. Visits start at least 2 h after the previous one started plus its length; events
  within a visit are 5 s to 5 min apart, at most 20: so a visit is a session (30 min gap, 24 h cap).
- First visit: ``register`` first (70% of non-bot users), page views after. A share of non-bot
  users subscribe (a push token) as their first visit's second event; later visits of a subscriber
  may open with a ``notification_click`` of an older campaign (never the demo's). Some subscribers
  unsubscribe (every token: no ``push_token``) as a later visit's second event; half of those
  subscribe again, with a new token, in a visit after that.
- Every token has a fate at FCM (:data:`FATES`): ``ok``, ``unregistered`` or
  ``sender_id_mismatch`` (the app is gone: FCM says the token is invalid) or ``flaky`` (FCM's
  first answer is a 429, the retry succeeds). A user ``clicks`` a campaign push if it reaches
  their device (``click_share``).
- A visit is one request; a share of requests is sent twice (the SDK did not see the answer),
  the second copy answered ``duplicate``.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pistats.contract import format_timestamp, parse_timestamp
from pistats.errors import ConfigError
from pistats.generate import catalog
from pistats.generate.expected import count_sessions

FATES = ("ok", "unregistered", "sender_id_mismatch", "flaky")
DEAD_FATES = ("unregistered", "sender_id_mismatch")
# The local FCM's script answer for each fate (pistats.testing.fcm.parse_answer).
FCM_ANSWERS = {"ok": "ok", "unregistered": "unregistered", "sender_id_mismatch": "sender_id_mismatch",
               "flaky": "quota:1:1"}
MAX_VISITS = 6
MAX_VISIT_EVENTS = 20
MIN_VISIT_GAP = timedelta(hours=2)
QUIET_BEFORE_NOW = timedelta(hours=1)
MAX_EVENT_GAP_S = 300


@dataclass(frozen=True)
class SdkTrafficConfig:
    users: int = 300
    seed: int = 1
    properties: int = 2
    days: int = 7
    subscribe_share: float = 0.5     # of non-bot users
    unsubscribe_share: float = 0.1   # of subscribers with a later visit
    dead_share: float = 0.15         # of tokens: unregistered or sender_id_mismatch at FCM
    flaky_share: float = 0.05        # of tokens: a 429 first
    click_share: float = 0.4         # of users a campaign push reaches
    resend_share: float = 0.03       # of requests

    def __post_init__(self) -> None:
        if not 1 <= self.users <= 100_000:
            raise ConfigError("users", "must be between 1 and 100,000")
        if not 1 <= self.properties <= 10:
            raise ConfigError("properties", "must be between 1 and 10")
        if not 1 <= self.days <= 25:
            # Within the contract's 30 days: no event of the demo is flagged clock_skew.
            raise ConfigError("days", "must be between 1 and 25")
        for name in ("subscribe_share", "unsubscribe_share", "dead_share", "flaky_share", "click_share",
                     "resend_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(name, "must be in [0, 1]")
        if self.dead_share + self.flaky_share > 1:
            raise ConfigError("dead_share", "plus `flaky_share` must stay at most 1")


@dataclass(frozen=True)
class Subscription:
    """A token a user subscribed with, and what FCM will answer for it (one of :data:`FATES`)."""

    token: str
    user_id: str
    property_id: str
    fate: str


@dataclass(frozen=True)
class SdkUser:
    user_id: str
    property_id: str
    kind: str
    http_user_agent: str  # the request's User-Agent header ("" sends none)
    context: dict         # what the SDK sends in every event's context, page and referrer aside
    clicks: bool


@dataclass(frozen=True)
class SdkRequest:
    """One POST /v1/events: a user's events (in time order), sent twice when ``resend``."""

    user_id: str
    user_agent: str
    events: tuple[dict, ...]
    resend: bool = False

    def body(self) -> bytes:
        payload = self.events[0] if len(self.events) == 1 else {"batch": list(self.events)}
        return json.dumps(payload, separators=(",", ":")).encode()


@dataclass
class SdkTraffic:
    """A client's generated SDK traffic: its users, their requests in sending order (by their
    first event's time) and every token ever subscribed with its fate."""

    client_id: str
    properties: list[str]
    domains: dict[str, str]
    users: dict[str, SdkUser]
    requests: list[SdkRequest]
    subscriptions: dict[str, Subscription] = field(default_factory=dict)

    @property
    def campaign_property(self) -> str:
        """The property with the most users (a campaign's natural target)."""
        counts = {property_id: 0 for property_id in self.properties}
        for user in self.users.values():
            counts[user.property_id] += 1
        return max(self.properties, key=lambda property_id: (counts[property_id], property_id))

    def fcm_script(self) -> dict:
        """The local FCM's script: every token not ``ok`` answered as its fate says."""
        return {"default": "ok",
                "tokens": {s.token: FCM_ANSWERS[s.fate] for s in self.subscriptions.values() if s.fate != "ok"}}

    def click_requests(self, campaign_id: str, delivered: Iterable[str], now: datetime,
                       url: str | None = None) -> list[SdkRequest]:
        """The requests of users who click the campaign: those whose device got it (``delivered``:
        sha256 hex of the tokens FCM accepted it for) and who click (``SdkUser.clicks``). Each
        sends the ``notification_click`` (``notification_id`` = the campaign id) and the page
        view of the page it opened, dated just before ``now``."""
        delivered = set(delivered)
        clickers = sorted({s.user_id for s in self.subscriptions.values()
                           if hashlib.sha256(s.token.encode()).hexdigest() in delivered
                           and self.users[s.user_id].clicks})
        requests = []
        for position, user_id in enumerate(clickers):
            user = self.users[user_id]
            page = url or f"https://{self.domains[user.property_id]}/"
            clicked_at = now - timedelta(seconds=30) + timedelta(milliseconds=position)
            events = []
            for offset, event_type in enumerate(("notification_click", "page_view")):
                event = {
                    "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{campaign_id}/{user_id}/{event_type}")),
                    "type": event_type,
                    "property_id": user.property_id,
                    "user_id": user_id,
                    "timestamp": format_timestamp(clicked_at + timedelta(seconds=2 * offset)),
                    "context": {**user.context, "page_url": page, "referrer": ""},
                }
                if event_type == "notification_click":
                    event["notification_id"] = campaign_id
                events.append(event)
            requests.append(SdkRequest(user_id, user.http_user_agent, tuple(events)))
        return requests


def _zipf(count: int, exponent: float) -> list[float]:
    return [1.0 / rank**exponent for rank in range(1, count + 1)]


class _Builder:
    def __init__(self, config: SdkTrafficConfig, client_id: str, now: datetime):
        self.config = config
        self.rng = random.Random(config.seed)
        self.client_id = client_id
        self.now = now
        self.agents = {kind: [ua for ua in agents if ua.isascii()] for kind, agents in catalog.USER_AGENTS.items()}

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def token(self) -> str:
        # FCM registration tokens: an instance id, a colon, then ~140 characters of base64url.
        rng = self.rng
        head = rng.randbytes(16).hex()[:22]
        return f"{head}:APA91b" + rng.randbytes(105).hex()[:140]

    def build(self) -> SdkTraffic:
        config, rng = self.config, self.rng
        properties, domains = [], {}
        for _ in range(config.properties):
            property_id = f"prop_{rng.getrandbits(32):08x}"
            properties.append(property_id)
            domains[property_id] = (f"{rng.choice(catalog.SITE_WORDS)}{rng.choice(catalog.SITE_WORDS)}."
                                    f"{rng.choice(catalog.SITE_TLDS)}")
        weights = _zipf(len(properties), 1.0)
        traffic = SdkTraffic(self.client_id, properties, domains, {}, [])
        kinds, kind_weights = zip(*catalog.DEVICE_KINDS)
        timed: list[tuple[datetime, str, SdkRequest]] = []
        for _ in range(config.users):
            property_id = rng.choices(properties, weights)[0]
            kind = rng.choices(kinds, kind_weights)[0]
            timed.extend(self.user(traffic, property_id, kind))
        timed.sort(key=lambda item: item[:2])
        traffic.requests = [request for _, _, request in timed]
        return traffic

    def user(self, traffic: SdkTraffic, property_id: str, kind: str) -> list[tuple[datetime, str, SdkRequest]]:
        """The user's requests, each with its first event's time and id (the sending order)."""
        config, rng = self.config, self.rng
        user_id = f"u_{rng.getrandbits(64):016x}"
        user_agent = rng.choice(self.agents[kind])
        if kind == "in_app":
            sdk = "ios" if "iPhone" in user_agent else "android"
            http_agent = rng.choice(catalog.APP_HTTP_AGENTS)
        else:
            sdk, http_agent = "web", user_agent
        sdk_name, versions = catalog.SDKS[sdk]
        context_base: dict = {"locale": None, "timezone": None, "sdk": {"name": sdk_name, "version": rng.choice(versions)}}
        context_base["locale"], context_base["timezone"] = rng.choice(catalog.LOCALES)
        screen_kind = {"mobile": "mobile", "in_app": "mobile", "tablet": "tablet"}.get(kind, "desktop")
        if kind not in ("bot", "empty", "garbage"):
            width, height = rng.choice(catalog.SCREENS[screen_kind])
            context_base["screen"] = {"width": width, "height": height}
        if kind == "in_app":
            context_base["user_agent"] = user_agent
        bot = kind == "bot"
        subscribes = not bot and rng.random() < config.subscribe_share
        unsubscribes = subscribes and rng.random() < config.unsubscribe_share
        resubscribes = unsubscribes and rng.random() < 0.5
        traffic.users[user_id] = SdkUser(user_id, property_id, kind, http_agent, context_base,
                                         rng.random() < config.click_share)
        requests = []

        visits = 1 + min(int(rng.expovariate(0.7)), MAX_VISITS - 1)
        window = timedelta(days=config.days)
        latest_start = self.now - QUIET_BEFORE_NOW - timedelta(seconds=(MAX_VISIT_EVENTS - 1) * MAX_EVENT_GAP_S)
        moment = self.now - window + timedelta(seconds=rng.uniform(0, window.total_seconds() * 0.6))
        subscribed = unsubscribed = False
        domain = traffic.domains[property_id]
        for visit in range(visits):
            if moment > latest_start:
                break
            count = 1 + min(int(rng.expovariate(0.3)), MAX_VISIT_EVENTS - 1)
            plan = ["page_view"] * count
            if visit == 0 and not bot and rng.random() < 0.7:
                plan[0] = "register"
            if visit == 0 and subscribes:
                plan = (plan + ["page_view"])[:max(2, count)]
                plan[1] = "subscribe"
            elif visit > 0 and subscribed and unsubscribes and not unsubscribed:
                plan = (plan + ["page_view"])[:max(2, count)]
                plan[1] = "unsubscribe"
            elif visit > 0 and unsubscribed and resubscribes and not subscribed:
                plan = (plan + ["page_view"])[:max(2, count)]
                plan[1] = "subscribe"
            if visit > 0 and subscribed and rng.random() < 0.3:
                plan[0] = "notification_click"
            referrer = rng.choice(catalog.REFERRERS)
            events, started = [], moment
            for position, event_type in enumerate(plan):
                if position > 0:
                    moment += timedelta(seconds=rng.uniform(5, MAX_EVENT_GAP_S))
                page = rng.choice(catalog.PAGES).format(slug=rng.choice(catalog.SLUGS), n=rng.randrange(1, 5000))
                event: dict = {
                    "event_id": self.uuid(),
                    "type": event_type,
                    "property_id": property_id,
                    "user_id": user_id,
                    "timestamp": format_timestamp(moment),
                    "context": {**context_base, "page_url": f"https://{domain}{page}",
                                "referrer": referrer if position == 0 else ""},
                }
                if event_type == "subscribe":
                    token = self.token()
                    roll = rng.random()
                    if roll < config.dead_share:
                        fate = rng.choice(DEAD_FATES)
                    elif roll < config.dead_share + config.flaky_share:
                        fate = "flaky"
                    else:
                        fate = "ok"
                    traffic.subscriptions[token] = Subscription(token, user_id, property_id, fate)
                    event["push_token"] = token
                    subscribed, unsubscribed = True, False
                elif event_type == "unsubscribe":
                    subscribed, unsubscribed = False, True
                elif event_type == "notification_click":
                    event["notification_id"] = "c_" + rng.randbytes(10).hex()
                if rng.random() < 0.2:
                    event["properties"] = {"ab_group": rng.choice(("A", "B")), "logged_in": rng.random() < 0.5}
                events.append(event)
            request = SdkRequest(user_id, http_agent, tuple(events), rng.random() < config.resend_share)
            requests.append((started, events[0]["event_id"], request))
            moment += MIN_VISIT_GAP + timedelta(seconds=rng.expovariate(1 / (16 * 3600)))
        return requests


def sdk_traffic(config: SdkTrafficConfig, client_id: str, now: datetime) -> SdkTraffic:
    """The traffic of ``config`` for ``client_id``, its events dated before ``now`` (aware)."""
    return _Builder(config, client_id, now).build()


def expected_outcome(traffic: SdkTraffic, *, property_id: str, min_sessions: int) -> dict:
    """What a correct system makes of ``traffic`` and a campaign to the users of ``property_id``
    with at least ``min_sessions`` sessions (``sessions_at_least``), by definition, from the
    events the SDKs sent and the tokens' fates alone:

    - ``users``, ``events``: distinct users and event ids stored (the traffic, then each
      clicker's click and page view); ``duplicates``: events the ingest answers ``duplicate``;
    - ``subscriptions``: tokens active after the traffic, every property: a token is active from
      its ``subscribe`` until an ``unsubscribe`` of its owner that names it or names no token;
    - ``targeted``: the active tokens of ``property_id`` whose owner has ``min_sessions``
      sessions or more (:func:`count_sessions` over the owner's event times);
    - ``invalidated``: the targeted tokens FCM says are gone; ``sent``: the others;
    - ``clicked``: owners of a sent token who click.
    """
    events = [event for request in traffic.requests for event in request.events]
    times: dict[str, list[datetime]] = {}
    owned: dict[str, dict[str, bool]] = {}  # user -> token -> active
    for event in sorted(events, key=lambda event: parse_timestamp(event["timestamp"])):
        user_id = event["user_id"]
        times.setdefault(user_id, []).append(parse_timestamp(event["timestamp"]))
        tokens = owned.setdefault(user_id, {})
        if event["type"] == "subscribe":
            tokens[event["push_token"]] = True
        elif event["type"] == "unsubscribe":
            for token in ([event["push_token"]] if event.get("push_token") else list(tokens)):
                tokens[token] = False
    active = [token for tokens in owned.values() for token, on in tokens.items() if on]
    segment = {user_id for user_id, user in traffic.users.items()
               if user.property_id == property_id and count_sessions(times.get(user_id, [])) >= min_sessions}
    targeted = [token for token in active
                if traffic.subscriptions[token].property_id == property_id
                and traffic.subscriptions[token].user_id in segment]
    invalidated = [token for token in targeted if traffic.subscriptions[token].fate in DEAD_FATES]
    sent = [token for token in targeted if traffic.subscriptions[token].fate not in DEAD_FATES]
    clickers = {traffic.subscriptions[token].user_id for token in sent
                if traffic.users[traffic.subscriptions[token].user_id].clicks}
    return {
        "users": len({event["user_id"] for event in events}),
        "events": len({event["event_id"] for event in events}) + 2 * len(clickers),
        "duplicates": sum(len(request.events) for request in traffic.requests if request.resend),
        "subscriptions": len(active),
        "targeted": len(targeted),
        "sent": len(sent),
        "invalidated": len(invalidated),
        "clicked": len(clickers),
    }
