"""Register/subscribe events per second through the ingest service, with and without the registry.

The same IngestService.handle path (body parsing, key lookup from memory, validation, record
building, response) with Kinesis and Redis stubbed in memory; "registry" adds the subscriber
registry on the local PostgreSQL (one connection, as a Lambda container has). Batches of 1 and
of 100 events, both services in the same run, printed side by side.

Every event is new to the registry (a fresh client id per run): each batch inserts its users
and tokens, the costlier case; a second pass sends the same requests again (an SDK retrying
whole batches), which the idempotency marks would normally catch: here they are stubbed to see
nothing, so the registry's replay path (conflicting rows, nothing newer) is timed too.

Target (issue 15): batches of 100 with the registry reach at least half the registry-less rate
and at least 5,000 events/s.

``--threads N`` sends N requests at a time (registry: a pool of N connections), as the threaded
``pistats ingest-server`` runs; both services then run with the same N, and the output says N.
The last line is the figures as one JSON object (events/s per service and batch size, the
ratios, the target and whether it is met).

    .venv/bin/python benchmarks/registry.py [--events 20000] [--threads 1] [--registry-url URL]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import psycopg

from pistats.ingest.api import IngestRequest
from pistats.ingest.putter import RecordPutter
from pistats.ingest.service import IngestService
from pistats.registry.config import RegistryConfig, local_url
from pistats.registry.migrations import migrate
from pistats.registry.store import Registry
from pistats.testing.ingest import AcceptingKinesis, NoMarks, StaticKeys

TARGET_RATIO, TARGET_EVENTS_PER_S = 0.5, 5000  # batches of 100, with the registry (issue 15)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
HEADERS = {"Content-Type": "application/json", "X-Pistats-Key": "pk_bench", "User-Agent": "Mozilla/5.0"}


def make_events(count: int, tag: str) -> list[dict]:
    """Half register, half subscribe: each user registers on a site, then subscribes one web or app
    token there (both events in the same batch when batches are larger than 1)."""
    events = []
    for n in range(count):
        user = f"user-{tag}-{n // 2}"
        moment = NOW - timedelta(seconds=3600 - n % 3600, milliseconds=n % 1000)
        event = {
            "event_id": f"{tag}-{n}",
            "type": "register" if n % 2 == 0 else "subscribe",
            "property_id": f"site-{n // 2 % 7}",
            "user_id": user,
            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "context": {"locale": "fr-FR", "timezone": "Europe/Paris",
                        "sdk": {"name": "pistats-android" if n % 3 else "pistats-js", "version": "1.9.2"},
                        "user_agent": "Mozilla/5.0 (Linux; Android 14)"},
        }
        if event["type"] == "subscribe":
            event["push_token"] = f"fcm:{tag}-{n}-" + "x" * 140
        events.append(event)
    return events


def send(service: IngestService, bodies: list[bytes]) -> None:
    for body in bodies:
        response = service.handle(IngestRequest.build("POST", "/v1/events", HEADERS, body, "203.0.113.9"))
        if response.status != 200:
            raise AssertionError(response.body_bytes()[:300])


def rate(service: IngestService, bodies: list[bytes], events: int, threads: int = 1) -> float:
    """Events per second over ``bodies``, sent one at a time by each of ``threads`` threads."""
    start = time.perf_counter()
    if threads == 1:
        send(service, bodies)
    else:
        with ThreadPoolExecutor(threads) as pool:
            for done in [pool.submit(send, service, bodies[n::threads]) for n in range(threads)]:
                done.result()
    return events / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per measurement (default 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N measurements (default 3)")
    parser.add_argument("--threads", type=int, default=1,
                        help="requests in flight at once, with a pool of as many connections (default 1: one "
                             "request at a time on one connection, as a Lambda container)")
    parser.add_argument("--registry-url", default=None, help=f"PostgreSQL (default {local_url()})")
    args = parser.parse_args()
    config = RegistryConfig(args.registry_url or local_url())
    with psycopg.connect(config.url, autocommit=True) as conn:
        migrate(conn)
    client_id = f"bench-{uuid.uuid4().hex[:8]}"
    if args.threads > 1:
        registry = Registry.pooled(dataclasses.replace(config, pool_min=args.threads, pool_max=args.threads))
    else:
        registry = Registry.for_lambda(config)

    def service(with_registry: bool) -> IngestService:
        return IngestService(keys=StaticKeys(client_id), marks=NoMarks(), putter=RecordPutter(AcceptingKinesis(), "bench"),
                             now=lambda: NOW, registry=registry if with_registry else None)

    plain, registered = service(False), service(True)
    print(f"{args.events} register/subscribe events per measurement (half each), best of {args.repeat}, "
          f"{args.threads} request(s) at a time in both services, registry {config.redacted_url}")
    print(f"{'batch':>6}  {'no registry':>14}  {'registry, new rows':>19}  {'ratio':>6}  "
          f"{'registry, replays':>18}  {'ratio':>6}")
    results = []
    try:
        for batch in (1, 100):
            best = [0.0, 0.0, 0.0]
            for attempt in range(args.repeat):
                count = args.events if batch > 1 else max(1, args.events // 10)
                events = make_events(count, f"{batch}-{attempt}")
                bodies = [json.dumps({"batch": events[i:i + batch]}).encode() for i in range(0, count, batch)]
                rates = [rate(service, bodies, count, args.threads) for service in (plain, registered, registered)]
                best = [max(b, r) for b, r in zip(best, rates)]
            without, with_new, with_replay = best
            print(f"{batch:>6}  {without:>10,.0f} ev/s  {with_new:>15,.0f} ev/s  {with_new / without:>6.2f}  "
                  f"{with_replay:>14,.0f} ev/s  {with_replay / without:>6.2f}")
            results.append({"batch": batch, "no_registry_ev_s": round(without), "registry_new_ev_s": round(with_new),
                            "ratio_new": round(with_new / without, 3), "registry_replays_ev_s": round(with_replay),
                            "ratio_replays": round(with_replay / without, 3)})
    finally:
        registry.close()
        with psycopg.connect(config.url, autocommit=True) as conn:
            conn.execute("DELETE FROM push_subscriptions WHERE client_id = %s", (client_id,))
            conn.execute("DELETE FROM subscribers WHERE client_id = %s", (client_id,))
    hundred = next(r for r in results if r["batch"] == 100)
    met = min(hundred["ratio_new"], hundred["ratio_replays"]) >= TARGET_RATIO and \
        min(hundred["registry_new_ev_s"], hundred["registry_replays_ev_s"]) >= TARGET_EVENTS_PER_S
    print(json.dumps({"benchmark": "registry", "events": args.events, "best_of": args.repeat, "threads": args.threads,
                      "results": results, "target": {"batch": 100, "ratio": TARGET_RATIO,
                                                     "events_per_s": TARGET_EVENTS_PER_S, "met": met}}))


if __name__ == "__main__":
    main()
