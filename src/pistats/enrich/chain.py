"""The enrichment chain: parse, then geo, device and bots, then sessions.

The same chain serves the Storm bolts (each bolt runs one part of it) and ``pistats enrich``
(which runs all of it in one process). It is built once from an ``EnrichConfig``; the Redis
client and the clock are injected.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from pistats.enrich.bots import BotsConfig, BotsEnrichment
from pistats.enrich.device import DeviceConfig, DeviceEnrichment
from pistats.enrich.geo import GeoConfig, GeoEnrichment
from pistats.enrich.parse import Parser, RawRecord, UndecodableTuple
from pistats.enrich.sessions import RedisSessionStore, SessionConfig, SessionEnrichment
from pistats.redisconn import RedisTarget, connect


ENRICH_OPTION = "pistats.enrich"
REDIS_URL_OPTION = "pistats.redis.url"
REDIS_URL_ENV = "PISTATS_REDIS_URL"


class Enrichment(Protocol):
    """A per-event enrichment: ``enrich(event)`` returns the fields to set on the event.

    A returned ``enrich_errors`` list is appended to the event's, not substituted.
    """

    name: str

    def enrich(self, event: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class EnrichConfig:
    """Settings of every enrichment (topology option ``pistats.enrich``)."""

    geo: GeoConfig = field(default_factory=GeoConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    bots: BotsConfig = field(default_factory=BotsConfig)
    sessions: SessionConfig = field(default_factory=SessionConfig)

    @classmethod
    def from_topology_conf(cls, conf: Mapping[str, Any]) -> EnrichConfig:
        """Build from a Storm topology conf: only ``pistats.enrich`` is read, a mapping of
        :meth:`from_dict` or its JSON text (e.g. from an environment variable)."""
        settings = conf.get(ENRICH_OPTION) or {}
        if isinstance(settings, str):
            settings = json.loads(settings)
        return cls.from_dict(settings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnrichConfig:
        """Build from a mapping with (some of) ``geo``, ``device``, ``bots``, ``sessions``."""
        unknown = set(data) - {"geo", "device", "bots", "sessions"}
        if unknown:
            raise ValueError(f"unknown enrich settings: {', '.join(sorted(unknown))}")
        return cls(
            geo=GeoConfig.from_dict(data.get("geo", {})),
            device=DeviceConfig.from_dict(data.get("device", {})),
            bots=BotsConfig.from_dict(data.get("bots", {})),
            sessions=SessionConfig.from_dict(data.get("sessions", {})),
        )


def connect_redis(url: str | RedisTarget, *, socket_connect_timeout: float | None = None,
                  socket_timeout: float | None = None, client_name: str | None = None) -> Any:
    """The sessions' Redis client (``pistats.redisconn.connect``, single Redis or cluster by URL):
    it retries a command a few times on a dropped connection (e.g. a Redis restart), so one blip
    does not fail a tuple. Retrying the session script is safe: a write that did land shows up as
    a version conflict, and the retry then finds it in the memo. No timeouts by default: a batch
    of thousands of users may keep Redis busy for a while."""
    return connect(url, connect_timeout_s=socket_connect_timeout, socket_timeout_s=socket_timeout,
                   retry_dropped=True, client_name=client_name)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Chain:
    """Runs the enrichments in order.

    - ``parse(record)`` -> ``("event", event)`` or ``("reject", reject)``
    - ``enrich(event)`` applies geo, device and bots in place and returns the event
    - ``sessionise(events)`` sets the session fields of a batch; raises on Redis trouble, in
      which case no event of the batch has session fields (never half-enriched output)
    - ``run(records)`` all of it for a batch: (events, rejects)

    ``sessions`` is None for a chain without Redis (``sessionise`` then leaves events alone).
    """

    def __init__(self, parser: Parser, stages: Sequence[Enrichment], sessions: SessionEnrichment | None,
                 timed: bool = False, clock: Callable[[], float] = time.perf_counter) -> None:
        """``timed`` adds each stage's time, read from ``clock``, to ``seconds[stage]``."""
        self.parser = parser
        self.stages = list(stages)
        self.sessions = sessions
        self.timed = timed
        self.clock = clock
        self.seconds: dict[str, float] = {name: 0.0 for name in self.stage_names}
        self.counts: dict[str, int] = {"records": 0, "events": 0, "rejects": 0}

    @property
    def stage_names(self) -> list[str]:
        return ["parse", *(stage.name for stage in self.stages), "sessions"]

    @classmethod
    def build(cls, config: EnrichConfig, *, redis: Any = None, now: Callable[[], datetime] = utc_now,
              timed: bool = False, clock: Callable[[], float] = time.perf_counter,
              with_stages: bool = True, wait_replicas: int = 0) -> Chain:
        """Open the databases and build every enrichment.

        ``redis`` None means no sessions; ``with_stages`` False skips geo, device and bots (to
        compute sessions alone, as the tests' fault-free reference does); ``wait_replicas``: the
        Redis URL's (``RedisSessionStore``).
        """
        sessions = None
        if redis is not None:
            sessions = SessionEnrichment(RedisSessionStore(redis, config.sessions, now, wait_replicas=wait_replicas))
        stages: list[Enrichment] = []
        if with_stages:
            stages = [GeoEnrichment(config.geo), DeviceEnrichment(config.device), BotsEnrichment(config.bots)]
        return cls(Parser(now), stages, sessions, timed=timed, clock=clock)

    @classmethod
    def from_topology_conf(cls, conf: Mapping[str, Any], env: Mapping[str, str], *, sessions: bool,
                           with_stages: bool = True) -> Chain:
        """The chain a bolt runs, from a Storm topology conf.

        Settings from :meth:`EnrichConfig.from_topology_conf`; the Redis URL (sessions only) is
        ``pistats.redis.url``, else the ``PISTATS_REDIS_URL`` environment variable.
        """
        config = EnrichConfig.from_topology_conf(conf)
        redis, wait_replicas = None, 0
        if sessions:
            url = conf.get(REDIS_URL_OPTION) or env.get(REDIS_URL_ENV)
            if not url:
                raise ValueError(f"sessions need {REDIS_URL_OPTION} or {REDIS_URL_ENV}")
            target = RedisTarget.parse(url)
            redis, wait_replicas = connect_redis(target), target.wait_replicas
        return cls.build(config, redis=redis, with_stages=with_stages, wait_replicas=wait_replicas)

    def stage(self, name: str) -> Any:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def parse(self, record: RawRecord | UndecodableTuple) -> tuple[str, dict[str, Any]]:
        started = self.clock() if self.timed else 0.0
        kind, value = self.parser.parse(record)
        if self.timed:
            self.seconds["parse"] += self.clock() - started
        self.counts["records"] += 1
        self.counts["events" if kind == "event" else "rejects"] += 1
        return kind, value

    def enrich(self, event: dict[str, Any]) -> dict[str, Any]:
        for stage in self.stages:
            started = self.clock() if self.timed else 0.0
            fields = stage.enrich(event)
            if "enrich_errors" in fields:
                errors = [*event.get("enrich_errors", []), *fields["enrich_errors"]]
                event.update(fields)
                event["enrich_errors"] = errors
            else:
                event.update(fields)
            if self.timed:
                self.seconds[stage.name] += self.clock() - started
        return event

    def sessionise(self, events: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
        self._begin_sessions(events)()
        return events

    def _begin_sessions(self, events: Sequence[dict[str, Any]]) -> Callable[[], None]:
        """Start sessionising ``events``; the returned function finishes it (sets their fields)."""
        if self.sessions is None or not events:
            return lambda: None
        started = self.clock() if self.timed else 0.0
        finish = self.sessions.begin_batch(events)
        if self.timed:
            self.seconds["sessions"] += self.clock() - started

        def set_fields() -> None:
            started = self.clock() if self.timed else 0.0
            for event, fields in zip(events, finish()):
                event.update(fields)
            if self.timed:
                self.seconds["sessions"] += self.clock() - started

        return set_fields

    def run(self, records: Iterable[RawRecord | UndecodableTuple]) -> tuple[list[dict], list[dict]]:
        """All of the chain for a batch: (events, rejects), each in record order.

        With sessions, the batch goes in chunks of ``sessions.chunk_events`` records: while
        Redis runs one chunk's write script, this thread parses and enriches the next. Chunks are
        sessionised one after another, in record order, so each user's events are assigned in
        the order they came, exactly as for the whole batch at once. A Redis error is raised
        here and nothing of the batch is returned.
        """
        records = list(records)
        chunk = (self.sessions.store.config.chunk_events if self.sessions is not None else 0) or max(len(records), 1)
        events, rejects = [], []
        finish_previous: Callable[[], None] = lambda: None
        for start in range(0, len(records), chunk):
            chunk_events, chunk_rejects = self._parse_and_enrich(records[start:start + chunk])
            events += chunk_events
            rejects += chunk_rejects
            finish_previous()
            finish_previous = self._begin_sessions(chunk_events)
        finish_previous()
        return events, rejects

    def _parse_and_enrich(self, records: Sequence[RawRecord | UndecodableTuple]) -> tuple[list[dict], list[dict]]:
        events, rejects = [], []
        for record in records:
            kind, value = self.parse(record)
            if kind == "event":
                events.append(self.enrich(value))
            else:
                rejects.append(value)
        return events, rejects

    def summary(self) -> dict[str, Any]:
        """Counts, cache hit rates and (when timed) seconds per stage."""
        out: dict[str, Any] = dict(self.counts)
        if any(stage.name == "device" for stage in self.stages):
            out["ua_parser"] = self.stage("device").parser_name
            out["ua_cache"] = self.stage("device").cache_stats()
        if any(stage.name == "geo" for stage in self.stages):
            out["ip_cache"] = self.stage("geo").cache_stats()
        if self.sessions is not None:
            out["session_replays"] = self.sessions.store.replays
        if self.timed:
            out["seconds"] = {name: round(value, 6) for name, value in self.seconds.items()}
        return out
