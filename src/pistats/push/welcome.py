"""Welcome notifications: the ingest's push to each token a ``subscribe`` activates.

A property may have a welcome campaign (``pistats registry property --welcome-title ...``; a
campaign of kind ``welcome`` in the ledger, named by ``property_settings``). A welcome is owed
to a subscription from its activation until it is claimed: the request's registry write reports
the subscriptions of its subscribes that are active, activated by this write or within the
welcome window (``window_s``, ``PISTATS_INGEST_WELCOME_WINDOW_S``, default 24 h, counted back
from the request's arrival to the activation's event time), with no send in their property's
current welcome campaign (:class:`~pistats.registry.store.Written`, ``welcome_owed``). So a
request whose put failed after its write activated a token leaves the welcome owed, and the
SDK's retry, finding the token active already, sends it. After the put, for the subscribes
Kinesis took, :meth:`Welcomer.welcome`:

1. finds the welcome campaigns of the properties concerned (:class:`WelcomeCampaigns`: one
   query, remembered per container for ``cache_s``, "no welcome" too);
2. claims the sends in the ledger (:meth:`~pistats.push.ledger.Ledger.claim`): at most once per
   token per welcome campaign, so a retried request, a racing writer or a token activated again
   after an unsubscribe gets nothing more, unless the welcome text changed (a new campaign);
3. sends them through FCM (a sync sender, :class:`~pistats.push.fcm_sync.SyncFcmSender`) one
   after the other until the deadline (``timeout_s``, ``PISTATS_INGEST_WELCOME_TIMEOUT_S``,
   default 2 s); what the deadline leaves unsent settles ``failed`` with code ``DEADLINE``, no
   retry (the request waits for its welcomes);
4. settles the outcomes in the ledger (``sent``; ``invalid``, the subscription marked invalid in
   the registry too; ``failed``; ``unknown`` when FCM may have got it but did not answer in
   time). ``pistats push export`` copies them to the store's ``push_sends``.

It never raises into the request: every failure is logged (by class and code: no token, no
credential) and the response is unchanged. The pure parts: :func:`activations`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from pistats.errors import ConfigError
from pistats.push.ledger import Campaign, Ledger, Settled, Target
from pistats.push.message import Content, build_message, content_problems
from pistats.registry.store import InvalidMark, Written

log = logging.getLogger(__name__)

TIMEOUT_VARIABLE = "PISTATS_INGEST_WELCOME_TIMEOUT_S"
WINDOW_VARIABLE = "PISTATS_INGEST_WELCOME_WINDOW_S"
# pistats.push.fcm's, named here so as not to import it (an ingest without FCM imports no httpx).
CREDENTIALS_VARIABLE = "PISTATS_FCM_CREDENTIALS"
SECRET_VARIABLE = "PISTATS_FCM_CREDENTIALS_SECRET_ARN"
# A welcome send pending longer than this was claimed by a request that died before settling it
# (the deadline is seconds): pistats push export turns it unknown.
ORPHAN_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class WelcomeConfig:
    """``timeout_s``: the deadline of a request's welcome sends; ``cache_s``: how long a
    property's welcome setting is remembered (a changed text reaches every container within it);
    ``window_s``: how long after its activation (event time) an active subscription is still owed
    its welcome when a later request's write finds it so (a retry after a failed put; a welcome
    configured since): at most once all the same, the ledger decides."""

    timeout_s: float = 2.0
    cache_s: float = 60.0
    window_s: float = 86_400.0

    def __post_init__(self):
        if not 0 < self.timeout_s <= 30:
            raise ConfigError(TIMEOUT_VARIABLE, "must be a number of seconds in (0, 30]")
        if self.cache_s < 0:
            raise ConfigError("cache_s", "must be >= 0")
        if not 0 <= self.window_s <= 30 * 86_400:
            raise ConfigError(WINDOW_VARIABLE, "must be a number of seconds in [0, 2592000] (30 days)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "WelcomeConfig":
        env = os.environ if environ is None else environ
        values = {}
        for variable, name in ((TIMEOUT_VARIABLE, "timeout_s"), (WINDOW_VARIABLE, "window_s")):
            text = env.get(variable)
            if text:
                try:
                    values[name] = float(text)
                except ValueError:
                    raise ConfigError(variable, f"must be a number of seconds, not {text!r}") from None
        return cls(**values)

    def welcome_since(self, received_at: datetime) -> datetime:
        """The start of the welcome window of a request received at ``received_at``: what
        :meth:`pistats.registry.store.Registry.write` takes as ``welcome_since``."""
        return received_at - timedelta(seconds=self.window_s)


@dataclass(frozen=True)
class Activation:
    """A subscription a request's write found owed a welcome (activated by it, or within the
    window): what its welcome needs. The token is a secret."""

    property_id: str
    token_digest: bytes
    token: str = field(repr=False)
    user_id: str
    platform: str

    def target(self) -> Target:
        return Target(self.token_digest, self.token, self.user_id, self.platform)


def activations(written: Written, put_tokens: Collection[tuple[str, str]] | None = None) -> list[Activation]:
    """The subscriptions ``written`` found owed a welcome (``welcome_owed``), with their token,
    owner and platform from its plan, in the plan's order; only those whose (property_id, token)
    is in ``put_tokens`` when given (the ingest passes the subscribes Kinesis took: an event
    refused gets no welcome now, and its retry finds it still owed).

    >>> from datetime import datetime, timezone
    >>> from pistats.registry.changes import plan
    >>> event = {"event_id": "e1", "type": "subscribe", "property_id": "web", "user_id": "u1",
    ...          "push_token": "tok-1", "timestamp": "2026-11-26T10:00:00.000Z"}
    >>> changes = plan("acme", [event], datetime(2026, 11, 26, 11, tzinfo=timezone.utc))
    >>> owed = (("web", changes.subscriptions[0].digest),)
    >>> written = Written(changes, activated=owed, welcome_owed=owed)
    >>> [(a.property_id, a.user_id, a.platform) for a in activations(written)]
    [('web', 'u1', 'unknown')]
    >>> activations(written, put_tokens=set())
    []
    """
    if not written.welcome_owed:
        return []
    wanted = set(written.welcome_owed)
    found = []
    for change in written.plan.subscriptions:
        key = (change.property_id, change.digest)
        if key in wanted and (put_tokens is None or (change.property_id, change.token) in put_tokens):
            found.append(Activation(change.property_id, change.digest, change.token, change.owner.user_id,
                                    change.owner.platform))
    return found


def welcome_content(campaign: Campaign) -> Content:
    """The message of a welcome campaign: its id travels as ``notification_id``, so the clicks it
    earns are counted as the campaign's."""
    return Content(title=campaign.title, body=campaign.body, url=campaign.url, campaign_id=campaign.campaign_id,
                   analytics_label=campaign.campaign_id)


class WelcomeCampaigns:
    """Each property's welcome campaign (or none), read in one query for the properties a request
    needs and remembered ``ttl_s`` seconds on ``clock``. Thread-safe."""

    def __init__(self, ledger: Ledger, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._ledger, self._ttl_s, self._clock = ledger, ttl_s, clock
        self._known: dict[tuple[str, str], tuple[float, Campaign | None]] = {}
        self._lock = threading.Lock()
        self.queries = 0

    def of(self, client_id: str, property_ids: Iterable[str]) -> dict[str, Campaign]:
        """``property_id -> welcome campaign`` of those that have one. RegistryUnavailable when
        the registry is asked and fails."""
        now = self._clock()
        found: dict[str, Campaign] = {}
        missing = []
        for property_id in sorted(set(property_ids)):
            known = self._known.get((client_id, property_id))
            if known is not None and known[0] > now:
                if known[1] is not None:
                    found[property_id] = known[1]
            else:
                missing.append(property_id)
        if missing:
            self.queries += 1
            fetched = self._ledger.welcomes(client_id, missing)
            expires = now + self._ttl_s
            with self._lock:
                for property_id in missing:
                    self._known[(client_id, property_id)] = (expires, fetched.get(property_id))
            found.update(fetched)
        return found


@dataclass(frozen=True)
class WelcomeOutcome:
    """What one request's welcomes did: per state, how many (``claimed`` were new to the ledger)."""

    activated: int = 0
    claimed: int = 0
    sent: int = 0
    invalid: int = 0
    failed: int = 0
    unknown: int = 0


class Welcomer:
    """Sends a request's welcomes (see the module docstring). ``sender`` has
    ``send(message, deadline) -> Delivery`` (:class:`~pistats.push.fcm_sync.SyncFcmSender`);
    ``clock`` is monotonic seconds (the deadline, the cache), ``now`` wall time (the outcomes')."""

    def __init__(self, *, ledger: Ledger, registry, sender, config: WelcomeConfig = WelcomeConfig(),
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self._ledger, self._registry, self._sender = ledger, registry, sender
        self._config, self._clock, self._now = config, clock, now
        self.campaigns = WelcomeCampaigns(ledger, config.cache_s, clock)

    ready = True  # as PendingWelcomer.ready: sends welcomes

    def welcome_since(self, received_at: datetime) -> datetime:
        """The welcome window's start for a request received at ``received_at``
        (:meth:`WelcomeConfig.welcome_since`)."""
        return self._config.welcome_since(received_at)

    def close(self) -> None:
        close = getattr(self._sender, "close", None)
        if close is not None:
            close()

    def after_write(self, client_id: str, written: Written,
                    put_tokens: Collection[tuple[str, str]] | None = None) -> WelcomeOutcome:
        """The welcomes ``written`` found owed, of the (property_id, token) pairs in
        ``put_tokens`` only when given (:func:`activations`); never raises."""
        try:
            found = activations(written, put_tokens)
        except Exception as error:  # noqa: BLE001
            log.error("welcome notifications of client %s failed: %s", client_id, type(error).__name__)
            return WelcomeOutcome()
        return self.welcome(client_id, found)

    def welcome(self, client_id: str, activated: list[Activation]) -> WelcomeOutcome:
        """Send the welcomes of ``activated``; never raises (failures are logged)."""
        if not activated:
            return WelcomeOutcome()
        try:
            return self._welcome(client_id, activated)
        except Exception as error:  # noqa: BLE001 - the request must not fail because of a welcome
            log.error("welcome notifications of client %s failed: %s", client_id, _described(error))
            return WelcomeOutcome(activated=len(activated))

    def _welcome(self, client_id: str, activated: list[Activation]) -> WelcomeOutcome:
        deadline = self._clock() + self._config.timeout_s
        campaigns = self.campaigns.of(client_id, {a.property_id for a in activated})
        if not campaigns:
            return WelcomeOutcome(activated=len(activated))
        counts = {"claimed": 0, "sent": 0, "invalid": 0, "failed": 0, "unknown": 0}
        by_property: dict[str, list[Activation]] = {}
        for activation in activated:
            if activation.property_id in campaigns:
                by_property.setdefault(activation.property_id, []).append(activation)
        for property_id, mine in by_property.items():
            campaign = campaigns[property_id]
            content = welcome_content(campaign)
            problems = content_problems(content)
            if problems:  # checked when set; a row edited by hand is not sent
                log.error("welcome campaign %s of %s/%s not sent: %s", campaign.campaign_id, client_id,
                          property_id, problems[0])
                continue
            claimed = self._ledger.claim(campaign.campaign_id, [a.target() for a in mine])
            counts["claimed"] += len(claimed)
            settled, invalid = [], []
            sending = None
            try:
                for target in claimed:
                    sending = target
                    delivery = self._sender.send(build_message(content, target.token), deadline)
                    sending = None
                    at = self._now()
                    settled.append(Settled(target.token_digest, delivery.state, delivery.code, delivery.attempts, at))
                    counts[delivery.state] += 1
                    if delivery.state == "invalid":
                        invalid.append(InvalidMark(client_id, property_id, target.token,
                                                   f"{delivery.code}: {delivery.detail}" if delivery.detail
                                                   else (delivery.code or "invalid"), at))
                    elif delivery.state in ("failed", "unknown"):
                        log.warning("welcome %s to a token of %s/%s %s: %s %s", campaign.campaign_id, client_id,
                                    property_id, delivery.state, delivery.code, delivery.detail)
            finally:
                # The sender does not raise; if something did, the claims are settled all the same
                # (a pending welcome is never resumed): the one in flight may have gone (unknown),
                # the others did not (failed).
                done = {s.token_digest for s in settled}
                at = self._now()
                for target in claimed:
                    if target.token_digest not in done:
                        state = "unknown" if target is sending else "failed"
                        settled.append(Settled(target.token_digest, state, "ERROR", 0, at))
                        counts[state] += 1
                if settled:
                    self._ledger.settle(campaign.campaign_id, settled)
            if invalid:
                self._registry.mark_invalid(invalid)
        return WelcomeOutcome(activated=len(activated), **counts)


def _described(error: BaseException) -> str:
    """An error by its class and the registry's own message (which names class and SQLSTATE
    only); other messages are not logged, as they may quote a token."""
    from pistats.registry.errors import RegistryUnavailable

    if isinstance(error, RegistryUnavailable):
        return str(error)
    return type(error).__name__


SECRET_RETRY_S = 60.0  # how often a container whose FCM secret was unreadable tries it again


def welcomer_from_env(registry, environ: Mapping[str, str] | None = None, *, ledger_timeout_ms: int | None = None,
                      announce: bool = True, secrets_client=None, clock: Callable[[], float] = time.monotonic,
                      secret_retry_s: float = SECRET_RETRY_S) -> "Welcomer | PendingWelcomer | None":
    """The ingest's Welcomer on ``registry``'s connections, with FCM from ``PISTATS_FCM_CREDENTIALS``
    (a file) or ``PISTATS_FCM_CREDENTIALS_SECRET_ARN`` (a Secrets Manager secret, fetched here:
    once per container, at its cold start) and ``PISTATS_FCM_ENDPOINT``; None (and a log line
    saying why, never the credentials) without FCM credentials or with a configuration that
    cannot be used: the ingest then runs without welcomes. A secret Secrets Manager refused or
    could not serve (:class:`~pistats.push.fcm.SecretUnreadable`) gives a :class:`PendingWelcomer`,
    which reads it again every ``secret_retry_s`` seconds of ``clock`` until it can.
    ``announce`` False leaves out the lines saying welcomes are on or off (a caller whose banner
    says it); an unusable configuration is logged all the same. ``secrets_client``: a boto3
    secretsmanager client (tests)."""
    env = os.environ if environ is None else environ
    if registry is None:
        return None
    if not env.get(CREDENTIALS_VARIABLE) and not env.get(SECRET_VARIABLE):
        if announce:
            log.warning("welcome notifications off (no %s nor %s): subscribes send no welcome",
                        CREDENTIALS_VARIABLE, SECRET_VARIABLE)
        return None

    def build() -> Welcomer:
        return _welcomer(registry, env, ledger_timeout_ms, announce, secrets_client)

    # Imported here: an ingest without FCM imports neither httpx nor google-auth.
    from pistats.push.fcm import SecretUnreadable

    try:
        return build()
    except SecretUnreadable as error:
        log.error("welcome notifications off until the secret can be read (again in %.0f s): %s",
                  secret_retry_s, error)
        return PendingWelcomer(build, secret_retry_s, clock)
    except ConfigError as error:
        log.error("welcome notifications off: %s", error)
        return None


def _welcomer(registry, env: Mapping[str, str], ledger_timeout_ms: int | None, announce: bool,
              secrets_client) -> Welcomer:
    """welcomer_from_env's Welcomer; ConfigError when the configuration cannot be used."""
    config = WelcomeConfig.from_env(env)
    from pistats.push.fcm import FcmConfig
    from pistats.push.fcm_sync import SyncFcmSender

    fcm = FcmConfig.from_env(env, timeout_s=config.timeout_s, max_connections=10, secrets_client=secrets_client)
    sender = SyncFcmSender(fcm)
    timeout_ms = ledger_timeout_ms if ledger_timeout_ms is not None else int(config.timeout_s * 1000)
    ledger = Ledger(registry.connections, statement_timeout_ms=timeout_ms, redacted_url=registry.redacted_url)
    if announce:
        log.info("welcome notifications on: FCM at %s, deadline %.1f s", fcm.endpoint, config.timeout_s)
    return Welcomer(ledger=ledger, registry=registry, sender=sender, config=config)


class PendingWelcomer:
    """Welcomes whose FCM secret could not be read yet: the ingest's welcomer while it cannot
    build one. A request asking for the welcome window (:meth:`welcome_since`) at least
    ``retry_s`` seconds of ``clock`` after the last attempt tries ``build`` again, one request
    at a time (the others go on without welcomes); from the first success on, every call goes to
    the Welcomer it built. Until then no write reports a welcome owed, so :meth:`after_write`
    sends nothing. A configuration that turns out unusable (ConfigError other than an unreadable
    secret) is logged and not tried again."""

    def __init__(self, build: Callable[[], Welcomer], retry_s: float, clock: Callable[[], float] = time.monotonic):
        self._build, self._retry_s, self._clock = build, retry_s, clock
        self._next_try: float | None = clock() + retry_s
        self._welcomer: Welcomer | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._welcomer is not None

    def _current(self) -> Welcomer | None:
        if self._welcomer is None and self._next_try is not None and self._clock() >= self._next_try:
            if self._lock.acquire(blocking=False):
                try:
                    self._attempt()
                finally:
                    self._lock.release()
        return self._welcomer

    def _attempt(self) -> None:
        from pistats.push.fcm import SecretUnreadable

        try:
            self._welcomer = self._build()
        except SecretUnreadable as error:
            self._next_try = self._clock() + self._retry_s
            log.error("welcome notifications still off (again in %.0f s): %s", self._retry_s, error)
        except ConfigError as error:
            self._next_try = None
            log.error("welcome notifications off: %s", error)

    def welcome_since(self, received_at: datetime) -> datetime | None:
        """The Welcomer's window start, or None while there is none: the write then reports no
        welcome owed."""
        welcomer = self._current()
        return None if welcomer is None else welcomer.welcome_since(received_at)

    def after_write(self, client_id: str, written: Written,
                    put_tokens: Collection[tuple[str, str]] | None = None) -> WelcomeOutcome:
        welcomer = self._welcomer
        return WelcomeOutcome() if welcomer is None else welcomer.after_write(client_id, written, put_tokens)

    def close(self) -> None:
        if self._welcomer is not None:
            self._welcomer.close()
