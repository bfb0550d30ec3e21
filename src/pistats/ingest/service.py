"""The ingest: one HTTP request in, validated events put into Kinesis, one response out.

Statuses (see docs/ingest.md): 404/405 for other routes and methods, 413 for a body over
512 KiB, 401 for a missing or unknown write key, 403 for a disabled one, 400 for a body that is
not a JSON event or batch or whose events are all invalid, 207 when a batch is partly invalid,
503 (with Retry-After) when the write key store is down, the subscriber registry is down or
Kinesis refused some events, and 200 otherwise (including duplicates).

With a subscriber registry (pistats.registry), the request's register, subscribe and unsubscribe
events are written to it *before* the put, and a registry failure refuses the whole request
(503, nothing put): both writes are idempotent, so the client's retry converges either way.
With welcome notifications (pistats.push.welcome), the subscriptions the write reports owed a
welcome (activated by it, or recently by a request whose put failed) get their property's
welcome *after* the put, if Kinesis took their subscribe; the welcome never changes the response.

Redis trouble around idempotency marks is not fatal: events are put without the duplicate check
(the topology deduplicates too) rather than refused. Redis trouble while resolving the write key
is: the request is refused with 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone


from pistats.contract import (
    EVENT_ID_MAX,
    MAX_BODY_BYTES,
    MAX_RECORD_BYTES,
    Problem,
    is_text,
    build_record,
    encode_record,
    partition_key,
    validate_event,
)
from pistats.ingest.api import (
    EVENTS_PATH,
    KEY_HEADER,
    PREFLIGHT_HEADERS,
    IngestRequest,
    IngestResponse,
    error_response,
)
from pistats.ingest.body import ParsedBody, client_ip, parse_body
from pistats.ingest.keys import WriteKeyStore
from pistats.ingest.marks import IdempotencyMarks
from pistats.ingest.putter import PutEntry, RecordPutter
from pistats.redisconn import REDIS_ERRORS
from pistats.registry.errors import RegistryUnavailable

log = logging.getLogger(__name__)

ACCEPTED, DUPLICATE, INVALID, NOT_ACCEPTED = "accepted", "duplicate", "invalid", "not_accepted"

# Problems listed in one response (each event lists at most contract.MAX_EVENT_PROBLEMS): with
# field paths cut to contract.FIELD_PATH_MAX bytes, the errors of a response stay under 25 KiB.
MAX_RESPONSE_ERRORS = 100


@dataclass
class EventOutcome:
    """What became of one event of a request."""

    index: int
    event_id: str | None
    status: str = ACCEPTED
    problems: list[Problem] = field(default_factory=list)
    error_code: str | None = None


def _event_id_of(event: object) -> str | None:
    """The event's id if it is a valid one (an invalid id is not echoed: it may be huge)."""
    if type(event) is dict:
        event_id = event.get("event_id")
        if type(event_id) is str and 1 <= len(event_id) <= EVENT_ID_MAX and is_text(event_id):
            return event_id
    return None


def _listed_errors(outcomes: list[EventOutcome]) -> list[dict]:
    """The events' problems, at most MAX_RESPONSE_ERRORS, then one entry counting the rest."""
    errors: list[dict] = []
    left_out = 0
    for outcome in outcomes:
        for problem in outcome.problems:
            if len(errors) < MAX_RESPONSE_ERRORS:
                errors.append({"index": outcome.index, "field": problem.field, "problem": problem.problem})
            else:
                left_out += 1
    if left_out:
        errors.append({"index": None, "field": "", "problem": f"{left_out} more problems not listed"})
    return errors


def summarise(outcomes: list[EventOutcome], is_batch: bool, retry_after_s: int) -> IngestResponse:
    """The response for a request's outcomes (pure).

    503 if any event was not accepted by Kinesis (listed under ``retry``), else 400 if every
    event is invalid, else 207 if some are, else 200. ``errors`` lists at most
    MAX_RESPONSE_ERRORS problems.
    """
    counts = {status: 0 for status in (ACCEPTED, DUPLICATE, INVALID, NOT_ACCEPTED)}
    for outcome in outcomes:
        counts[outcome.status] += 1
    body: dict = {
        "accepted": counts[ACCEPTED],
        "duplicates": counts[DUPLICATE],
        "invalid": counts[INVALID],
        "not_accepted": counts[NOT_ACCEPTED],
        "results": [{"index": o.index, "event_id": o.event_id, "status": o.status} for o in outcomes],
        "errors": _listed_errors(outcomes),
    }
    if not is_batch:
        body["duplicate"] = counts[DUPLICATE] == 1
    headers: tuple[tuple[str, str], ...] = ()
    if counts[NOT_ACCEPTED]:
        status = 503
        body["error"] = f"{counts[NOT_ACCEPTED]} event(s) not accepted; retry those listed in 'retry'"
        body["retry"] = [
            {"index": o.index, "event_id": o.event_id} for o in outcomes if o.status == NOT_ACCEPTED
        ]
        headers = (("Retry-After", str(retry_after_s)),)
    elif counts[INVALID] == len(outcomes):
        status = 400
        body["error"] = "invalid event" if not is_batch else "every event is invalid"
    elif counts[INVALID]:
        status = 207
    else:
        status = 200
    return IngestResponse(status, body, headers)


class IngestService:
    """Handles ingest requests with injected write keys, idempotency marks, putter and clock."""

    def __init__(
        self,
        *,
        keys: WriteKeyStore,
        marks: IdempotencyMarks,
        putter: RecordPutter,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        trusted_hops: int = 0,
        retry_after_s: int = 1,
        registry=None,
        welcome=None,
    ):
        self._registry = registry
        self._welcome = welcome
        self._keys = keys
        self._marks = marks
        self._putter = putter
        self._now = now
        self._trusted_hops = trusted_hops
        self._retry_after_s = retry_after_s

    def check(self) -> None:
        """Raise the client's error if the stream or Redis cannot be reached (for startup)."""
        self._putter.check()
        self._keys.ping()
        if self._registry is not None:
            self._registry.check()

    def handle(self, request: IngestRequest) -> IngestResponse:
        """Answer one request. Raises only for programming errors (adapters answer 500)."""
        # API Gateway may keep a stage or base path in front of the route.
        if not request.path.rstrip("/").endswith(EVENTS_PATH):
            return error_response(404, f"not found; events go to POST {EVENTS_PATH}")
        if request.method == "OPTIONS":
            return IngestResponse(204, {}, PREFLIGHT_HEADERS)
        if request.method != "POST":
            return error_response(405, "method not allowed; use POST", headers=[("Allow", "POST, OPTIONS")])
        if len(request.body) > MAX_BODY_BYTES:
            return error_response(413, f"body larger than {MAX_BODY_BYTES} bytes")

        key = request.header(KEY_HEADER)
        if not key:
            return error_response(401, "missing write key (X-Pistats-Key header)")
        try:
            lookup = self._keys.resolve(key)
        except (*REDIS_ERRORS, OSError) as error:
            log.error("write key store unavailable: %s", type(error).__name__)
            return error_response(
                503, "write key store unavailable", headers=[("Retry-After", str(self._retry_after_s))]
            )
        if lookup.status == "unknown":
            return error_response(401, "unknown write key")
        if lookup.status == "disabled":
            return error_response(403, "write key disabled")

        parsed = parse_body(request.header("content-type"), request.body)
        if isinstance(parsed, IngestResponse):
            return parsed
        ip = client_ip(request.source_ip, request.header("x-forwarded-for"), self._trusted_hops)
        outcomes = self.ingest(lookup.client_id, parsed, ip=ip, user_agent=request.header("user-agent") or "")
        return summarise(outcomes, parsed.is_batch, self._retry_after_s)

    def ingest(self, client_id: str, parsed: ParsedBody, *, ip: str, user_agent: str) -> list[EventOutcome]:
        """Validate, deduplicate and put the events of one authenticated request."""
        # To the millisecond, as received_at is written: a reader deriving a missing clock_skew
        # from received_at (contract.record_clock_skew) then gets the ingest's answer exactly.
        now = self._now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        outcomes: list[EventOutcome] = []
        entries: dict[int, PutEntry] = {}
        first_in_request: set[str] = set()
        for index, event in enumerate(parsed.events):
            outcome = EventOutcome(index, _event_id_of(event))
            outcomes.append(outcome)
            problems = validate_event(event)
            if not problems:
                record = build_record(
                    client_id=client_id, event=event, received_at=now, ip=ip, user_agent=user_agent, now=now
                )
                data = encode_record(record)
                if len(data) > MAX_RECORD_BYTES:
                    problems = [Problem("", f"event too large: its record has {len(data)} bytes > {MAX_RECORD_BYTES}")]
                elif self._registry is not None:
                    problems = self._registry.problems(client_id, event)
            if problems:
                outcome.status, outcome.problems = INVALID, problems
            elif outcome.event_id in first_in_request:
                outcome.status = DUPLICATE
            else:
                first_in_request.add(outcome.event_id)
                entries[index] = PutEntry(data, partition_key(client_id, event["user_id"]))

        if entries:
            try:
                already = self._marks.seen(client_id, [outcomes[i].event_id for i in entries])
            except (*REDIS_ERRORS, OSError) as error:
                log.warning("idempotency marks unavailable, putting without the check: %s", type(error).__name__)
                already = set()
            for index in [i for i in entries if outcomes[i].event_id in already]:
                outcomes[index].status = DUPLICATE
                del entries[index]

        written = None
        if entries and self._registry is not None:
            try:
                # checked: each of these events passed self._registry.problems above.
                events = [parsed.events[i] for i in sorted(entries)]
                if self._welcome is None:
                    written = self._registry.write(client_id, events, now, checked=True)
                else:
                    written = self._registry.write(client_id, events, now, checked=True,
                                                   welcome_since=self._welcome.welcome_since(now))
            except RegistryUnavailable as error:
                log.error("subscriber registry unavailable, %d events refused: %s", len(entries), error)
                for index in entries:
                    outcomes[index].status, outcomes[index].error_code = NOT_ACCEPTED, "registry_unavailable"
                return outcomes

        if entries:
            order = sorted(entries)
            result = self._putter.put([entries[i] for i in order])
            for position, code in result.failed.items():
                outcome = outcomes[order[position]]
                outcome.status, outcome.error_code = NOT_ACCEPTED, code
            put_ids = [outcomes[order[position]].event_id for position in result.accepted]
            try:
                self._marks.mark(client_id, put_ids)
            except (*REDIS_ERRORS, OSError) as error:
                log.warning("could not set %d idempotency marks: %s", len(put_ids), type(error).__name__)
            if result.failed:
                log.warning(
                    "client %s: %d of %d events not accepted by Kinesis (%s)",
                    client_id, len(result.failed), len(order), sorted(set(result.failed.values())),
                )
            if self._welcome is not None and written is not None and written.welcome_owed:
                self._send_welcomes(client_id, written, [parsed.events[i] for i in order], result.failed)
        return outcomes

    def _send_welcomes(self, client_id: str, written, put_events: list[dict], failed: dict[int, str]) -> None:
        """The welcomes of the tokens whose subscribes Kinesis took (all of them, when a request
        holds several for one token). Never raises: the response is the same either way."""
        taken, refused = set(), set()
        for position, event in enumerate(put_events):
            if event.get("type") == "subscribe" and event.get("push_token"):
                (refused if position in failed else taken).add((event["property_id"], event["push_token"]))
        try:
            self._welcome.after_write(client_id, written, taken - refused)
        except Exception as error:  # noqa: BLE001 - belt and braces: Welcomer logs its own failures
            log.error("welcome notifications of client %s failed: %s", client_id, type(error).__name__)


def build_service(config, *, kinesis_client=None, redis=None, now=None, registry=None, welcome=None,
                  group_commit=None) -> IngestService:
    """The service for a config, creating the boto3 client and Redis connection unless given.

    ``registry`` is a pistats.registry Registry, or None for no subscriber registry; ``welcome``
    a pistats.push.welcome Welcomer (on that registry), or None for no welcome notifications
    (:func:`pistats.push.welcome.welcomer_from_env` builds it); ``group_commit`` a
    :class:`pistats.ingest.group_commit.GroupCommitSettings` to let the process's concurrent
    requests share PutRecords calls (the gateway's threaded workers), or None for one call per
    request. Call once per process (Lambda container, server): clients are reused across
    requests.
    """
    from pistats.kinesis.client import make_kinesis_client
    from pistats.redisconn import RedisTarget, connect

    if kinesis_client is None:
        # Our own loop retries failed entries; botocore's retries would multiply the latency.
        kinesis_client = make_kinesis_client(config.endpoint_url, config.region, retries=False,
                                             connect_timeout_s=config.connect_timeout_s,
                                             read_timeout_s=config.read_timeout_s)
    redis_target = RedisTarget.parse(config.redis_url)
    if redis is None:
        redis = connect(redis_target, connect_timeout_s=config.connect_timeout_s, socket_timeout_s=config.read_timeout_s)
    put_settings = dict(attempts=config.put_attempts, base_delay_s=config.backoff_base_ms / 1000,
                        max_delay_s=config.backoff_max_ms / 1000)
    if group_commit is None:
        putter = RecordPutter(kinesis_client, config.stream, **put_settings)
    else:
        from pistats.ingest.group_commit import GroupCommitPutter

        putter = GroupCommitPutter(kinesis_client, config.stream, **put_settings, settings=group_commit)
    return IngestService(
        keys=WriteKeyStore(redis, config.key_prefix, config.key_cache_s, wait_replicas=redis_target.wait_replicas),
        marks=IdempotencyMarks(redis, config.key_prefix, config.dedup_ttl_s),
        putter=putter,
        now=now or (lambda: datetime.now(timezone.utc)),
        trusted_hops=config.trusted_hops,
        retry_after_s=config.retry_after_s,
        registry=registry,
        welcome=welcome,
    )
