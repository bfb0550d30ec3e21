"""A campaign run: its targets claimed in the ledger, sent through FCM at a paced rate with many in
flight, each outcome settled in the ledger, the registry and the store.

At most once per token per campaign: a target is claimed in the ledger (one statement per chunk)
before its request, and a claim is never sent twice. A run that dies leaves its claims pending;
the next run (``pistats push resume``) turns them into ``unknown`` (the request may or may not
have reached FCM, which has no idempotency key) and claims only what was never claimed. The
unknowns of a crash are bounded: ``3 * concurrency`` claims in flight, queued, or claimed and
waiting to be queued (a chunk is claimed whole, then queued target by target), plus the outcomes
of the last settle interval (``settle_interval_s``, 0.25 s, at the campaign's rate).

What FCM answers (``pistats.push.fcm.SendResult``) decides:
- ``sent`` settles ``sent``; ``invalid_token`` settles ``invalid`` and marks the registry's
  subscription invalid;
- ``unknown`` (the network failed after the request may have reached FCM:
  :func:`pistats.push.fcm.network_failure`) settles ``unknown``, never sent again, as a crash's
  pending claims are;
- ``retry`` (FCM certainly did not act on it) waits (``Retry-After`` or backoff, :class:`~pistats.push.pacing.RetryPolicy`) and
  tries again, slowing the whole campaign on 429 and 503; out of attempts, it settles ``failed``;
- ``payload_error`` and ``abort`` stop the campaign: nothing more is sent, tokens are kept, the
  claims never sent are released (a resume after the fix sends them), state ``aborted``.

Time, the FCM client, the stores and randomness are injected; the CLI (``pistats.cli.push``)
wires them.
"""

from __future__ import annotations

import asyncio
import logging
import random as random_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from pistats.push.ledger import Campaign, Ledger, Settled, Target
from pistats.push.message import Content, build_message
from pistats.push.pacing import RetryPolicy, SendRate
from pistats.push.results import PushSend, write_push_sends
from pistats.push.segments import Segment, parse_segment, segment_user_pages
from pistats.registry.store import InvalidMark
from pistats.store.base import StoreError

log = logging.getLogger(__name__)

# FCM's "slower" answers: the pace of the whole campaign backs off on these.
_SLOW_DOWN_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE"})
_SLOW_DOWN_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class CampaignSettings:
    concurrency: int = 50
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_page_size: int = 10_000   # segment users per store query
    token_page_size: int = 1_000   # users per registry query, and tokens per page
    settle_every: int = 500        # outcomes per settle statement, at most
    settle_interval_s: float = 0.25  # or this often, whichever comes first


@dataclass(frozen=True)
class CampaignResult:
    campaign_id: str
    targeted: int
    sent: int
    failed: int
    invalidated: int
    unknown: int
    state: str
    reason: str | None = None
    not_in_store: int = 0  # settled sends the store did not take yet (a resume exports them)

    def as_dict(self) -> dict:
        return {"campaign_id": self.campaign_id, "targeted": self.targeted, "sent": self.sent,
                "failed": self.failed, "invalidated": self.invalidated, "unknown": self.unknown,
                "state": self.state, "reason": self.reason}


def content_of(campaign: Campaign) -> Content:
    return Content(title=campaign.title, body=campaign.body, url=campaign.url,
                   campaign_id=campaign.campaign_id, analytics_label=campaign.campaign_id)


def target_pages(ledger: Ledger, store, campaign: Campaign, settings: CampaignSettings) -> Iterator[list[Target]]:
    """The campaign's targets, page by page: the active subscriptions of the segment's users
    (users paged from the store, as of the campaign's reference time), or of every user of the
    property without a segment. Memory is bounded by a page."""
    segment = parse_segment(campaign.segment)
    if segment == Segment():
        yield from _subscription_pages(ledger, campaign, None, settings.token_page_size)
        return
    for users in segment_user_pages(store, campaign.client_id, campaign.property_id, segment,
                                    campaign.created_at, page_size=settings.user_page_size):
        for start in range(0, len(users), settings.token_page_size):
            yield from _subscription_pages(ledger, campaign, users[start:start + settings.token_page_size],
                                           settings.token_page_size)


def _subscription_pages(ledger: Ledger, campaign: Campaign, user_ids: list[str] | None,
                        limit: int) -> Iterator[list[Target]]:
    after = b""
    while True:
        page = ledger.active_targets(campaign.client_id, campaign.property_id, user_ids=user_ids,
                                     after=after, limit=limit)
        if page:
            yield page
        if len(page) < limit:
            return
        after = page[-1].token_digest


def count_targets(ledger: Ledger, store, campaign: Campaign, settings: CampaignSettings) -> int:
    return sum(len(page) for page in target_pages(ledger, store, campaign, settings))


@dataclass
class _Outcome:
    target: Target
    state: str  # sent | failed | invalid | unknown
    code: str | None
    detail: str
    attempts: int
    at: datetime


class CampaignRunner:
    """Runs one campaign to its end (or to an abort) with an open FCM client.

    ``now`` gives wall time (the outcomes' times), ``clock`` monotonic seconds (pacing),
    ``sleep`` an awaitable sleep, ``random`` a float in [0, 1) (backoff jitter)."""

    def __init__(self, *, ledger: Ledger, registry, store, fcm, now: Callable[[], datetime],
                 clock: Callable[[], float], settings: CampaignSettings = CampaignSettings(),
                 sleep=asyncio.sleep, random: Callable[[], float] = random_module.random,
                 on_progress: Callable[[int], None] | None = None):
        self._ledger, self._registry, self._store, self._fcm = ledger, registry, store, fcm
        self._now, self._clock, self._sleep, self._random = now, clock, sleep, random
        self._settings = settings
        self._on_progress = on_progress or (lambda done: None)
        self._stop_reason: str | None = None
        self._outcomes: list[_Outcome] = []
        self._unsent: list[Target] = []
        self._not_in_store = 0
        self._settling = asyncio.Lock()
        self._sending_done = False

    def stop(self, reason: str) -> None:
        """Send nothing more (what is in flight finishes); the first reason wins."""
        if self._stop_reason is None:
            self._stop_reason = reason

    async def run(self, campaign: Campaign, *, interrupted: asyncio.Event | None = None) -> CampaignResult:
        """Send ``campaign`` to every target not claimed before; the ledger is held throughout
        (LedgerBusy when another process runs it). A welcome campaign is refused (ValueError): the
        ingest sends it to each token a subscribe activates, never to the whole property."""
        if campaign.kind == "welcome":
            raise ValueError(f"campaign {campaign.campaign_id} is a welcome notification: the ingest sends it to "
                             "tokens as they subscribe, it is never run over the whole property")
        with self._ledger.hold(campaign.campaign_id) as hold:
            self._hold = hold
            await asyncio.to_thread(self._ledger.orphans_to_unknown, campaign.campaign_id)
            await asyncio.to_thread(self._export_unexported, campaign)
            if campaign.state == "running":
                await self._send_all(campaign, interrupted)
                if self._stop_reason is None:
                    await asyncio.to_thread(self._ledger.finish, campaign.campaign_id, "done")
                elif self._stop_reason != "interrupted":
                    await asyncio.to_thread(self._ledger.finish, campaign.campaign_id, "aborted", self._stop_reason)
            await asyncio.to_thread(self._export_unexported, campaign)
            counts = await asyncio.to_thread(self._ledger.counts, campaign.campaign_id)
            stored = await asyncio.to_thread(self._ledger.get, campaign.campaign_id)
        return CampaignResult(
            campaign_id=campaign.campaign_id, targeted=counts["targeted"], sent=counts["sent"],
            failed=counts["failed"], invalidated=counts["invalid"], unknown=counts["unknown"],
            state="interrupted" if self._stop_reason == "interrupted" else stored.state,
            reason=stored.reason, not_in_store=self._not_in_store)

    async def _send_all(self, campaign: Campaign, interrupted: asyncio.Event | None) -> None:
        settings = self._settings
        self._content = content_of(campaign)
        self._rate = SendRate(campaign.rate, self._clock)
        queue: asyncio.Queue = asyncio.Queue(maxsize=settings.concurrency)
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(settings.concurrency)]
        settler = asyncio.create_task(self._settle_periodically(campaign))
        watcher = asyncio.create_task(self._watch(interrupted)) if interrupted else None
        try:
            await self._produce(campaign, queue, len(workers))
            await asyncio.gather(*workers)
        finally:
            # The settler is not cancelled (a settle running on its thread would go on beside
            # the last one): told to stop, it ends after its current settle.
            self._sending_done = True
            for task in workers + ([watcher] if watcher else []):
                task.cancel()
            await asyncio.gather(*workers, *([watcher] if watcher else []), return_exceptions=True)
            await settler
            while not queue.empty():
                target = queue.get_nowait()
                if target is not None:
                    self._unsent.append(target)
            await self._settle(campaign)

    async def _watch(self, interrupted: asyncio.Event) -> None:
        await interrupted.wait()
        self.stop("interrupted")

    async def _produce(self, campaign: Campaign, queue: asyncio.Queue, workers: int) -> None:
        pages = target_pages(self._ledger, self._store, campaign, self._settings)
        chunk = self._settings.concurrency
        try:
            while self._stop_reason is None:
                page = await asyncio.to_thread(next, pages, None)
                if page is None:
                    break
                for start in range(0, len(page), chunk):
                    if self._stop_reason is not None:
                        break
                    claimed = await asyncio.to_thread(self._ledger.claim, campaign.campaign_id,
                                                      page[start:start + chunk])
                    for target in claimed:
                        if self._stop_reason is not None:
                            self._unsent.append(target)
                        else:
                            await queue.put(target)
        finally:
            pages.close()
            for _ in range(workers):
                await queue.put(None)

    async def _worker(self, queue: asyncio.Queue) -> None:
        while True:
            target = await queue.get()
            if target is None:
                return
            if self._stop_reason is not None:
                self._unsent.append(target)
                continue
            outcome = await self._deliver(target)
            if outcome is None:
                self._unsent.append(target)
            else:
                self._outcomes.append(outcome)

    async def _deliver(self, target: Target) -> _Outcome | None:
        """One target's sends until an answer settles it; None when the campaign stopped before
        FCM took it (the claim is released)."""
        attempts, waited = 0, 0.0
        while True:
            wait = self._rate.reserve()
            if wait > 0:
                await self._sleep(wait)
            if self._stop_reason is not None:
                return None
            attempts += 1
            result = await self._fcm.send(build_message(self._content, target.token))
            if result.kind == "sent":
                self._rate.succeeded()
                return _Outcome(target, "sent", None, "", attempts, self._now())
            if result.kind == "invalid_token":
                return _Outcome(target, "invalid", result.code, result.detail, attempts, self._now())
            if result.kind == "unknown":  # FCM may have it: at most once means never again
                return _Outcome(target, "unknown", result.code, result.detail, attempts, self._now())
            if result.kind == "retry":
                if result.code in _SLOW_DOWN_CODES or result.http_status in _SLOW_DOWN_STATUSES:
                    self._rate.slow_down(result.retry_after_s)
                delay = self._settings.retry.delay(attempts, waited, result.retry_after_s, self._random)
                if delay is None:
                    return _Outcome(target, "failed", result.code, result.detail, attempts, self._now())
                waited += delay
                await self._sleep(delay)
                continue
            # payload_error or abort: nothing of this campaign can be sent any more.
            self.stop(f"{result.code or result.kind}: {result.detail}" if result.detail else (result.code or result.kind))
            return None

    async def _settle_periodically(self, campaign: Campaign) -> None:
        settings = self._settings
        waited = 0.0
        step = min(0.05, settings.settle_interval_s)
        while not self._sending_done:
            await asyncio.sleep(step)
            waited += step
            if len(self._outcomes) >= settings.settle_every or (self._outcomes and waited >= settings.settle_interval_s):
                waited = 0.0
                try:
                    await self._settle(campaign)
                except Exception as error:  # noqa: BLE001 - the campaign stops; the last settle tries again
                    self.stop(f"settling failed: {error}")
                    return

    async def _settle(self, campaign: Campaign) -> None:
        """Write what happened so far, on a thread, one settle at a time (the periodic settler,
        then once at the end)."""
        async with self._settling:
            # Still ours? A hold whose connection was lost is no hold: stop before another run
            # could claim beside this one.
            await asyncio.to_thread(self._hold.check)
            outcomes, self._outcomes = self._outcomes, []
            unsent, self._unsent = self._unsent, []
            await asyncio.to_thread(self._write_settled, campaign, outcomes, unsent)

    def _write_settled(self, campaign: Campaign, outcomes: list[_Outcome], unsent: list[Target]) -> None:
        """Outcomes into the ledger (then the registry's invalid marks and the store's
        push_sends), and the claims never sent released."""
        cid = campaign.campaign_id
        if unsent:
            self._ledger.release(cid, [target.token_digest for target in unsent])
        if not outcomes:
            return
        self._ledger.settle(cid, [Settled(o.target.token_digest, o.state, o.code, o.attempts, o.at)
                                  for o in outcomes])
        invalid = [InvalidMark(campaign.client_id, campaign.property_id, o.target.token,
                               f"{o.code}: {o.detail}" if o.detail else (o.code or "invalid"), o.at)
                   for o in outcomes if o.state == "invalid"]
        if invalid:
            self._registry.mark_invalid(invalid)
        self._on_progress(len(outcomes))
        sends = [PushSend(campaign_id=cid, client_id=campaign.client_id, property_id=campaign.property_id,
                          user_id=o.target.user_id, token_hash=o.target.token_digest.hex(),
                          platform=o.target.platform, status=o.state, error_code=o.code or "",
                          attempts=o.attempts, settled_at=o.at) for o in outcomes]
        self._export(cid, sends)

    def _export(self, campaign_id: str, sends: list[PushSend]) -> bool:
        try:
            write_push_sends(self._store, sends)
        except StoreError as error:
            # The ledger has them; they stay unexported until a later export (the end of this
            # run, or a resume) finds the store up again.
            log.warning("push_sends not stored yet (%d rows): %s", len(sends), error)
            return False
        self._ledger.mark_exported(campaign_id, [bytes.fromhex(send.token_hash) for send in sends])
        return True

    def _export_unexported(self, campaign: Campaign) -> None:
        self._not_in_store = 0
        while True:
            rows = self._ledger.unexported(campaign.campaign_id, 1000)
            if not rows:
                return
            sends = [PushSend(campaign_id=campaign.campaign_id, client_id=campaign.client_id,
                              property_id=campaign.property_id, user_id=row.user_id,
                              token_hash=row.token_digest.hex(), platform=row.platform, status=row.state,
                              error_code=row.error_code or "", attempts=row.attempts, settled_at=row.settled_at)
                     for row in rows]
            if not self._export(campaign.campaign_id, sends):
                self._not_in_store = len(rows)
                return
