"""Events/s of the in-process enrichment chain on one core, with and without Redis sessions.

Traffic: N events from U users, each user with one IP and one UA; UAs drawn Zipf-like (s=1.1)
from a few thousand distinct, realistic strings. Records are encoded before timing. Prints the
cold pass (UA cache filling) and the warm pass (cache full), plus each stage's cost per event.

    .venv/bin/python benchmarks/enrich_chain.py [--events 100000] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time
import uuid
from datetime import datetime, timedelta, timezone

from pistats import contract
from pistats.enrich.chain import Chain, EnrichConfig
from pistats.enrich.parse import RawRecord
from pistats.enrich.sessions import SessionConfig
from pistats.redis_keys import delete_matching

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)

ANDROID_MODELS = ["SM-S918B", "SM-A546B", "SM-G991B", "Pixel 7", "Pixel 8 Pro", "M2101K6G", "CPH2451",
                  "moto g(60)", "V2207", "RMX3511", "SM-X700", "KFTRWI", "2201117TY", "SM-A135F"]


def user_agents(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct UA strings in the shapes real traffic has."""
    out: set[str] = set()
    while len(out) < count:
        kind = rng.random()
        chrome = f"{rng.randint(100, 131)}.0.{rng.randint(4000, 6800)}.{rng.randint(0, 200)}"
        if kind < 0.35:
            model = rng.choice(ANDROID_MODELS)
            out.add(f"Mozilla/5.0 (Linux; Android {rng.randint(9, 14)}; {model}) AppleWebKit/537.36 "
                    f"(KHTML, like Gecko) Chrome/{chrome} Mobile Safari/537.36")
        elif kind < 0.6:
            ios = f"{rng.randint(14, 17)}_{rng.randint(0, 7)}"
            device = rng.choice(["iPhone; CPU iPhone OS", "iPad; CPU OS"])
            out.add(f"Mozilla/5.0 ({device} {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                    f"Version/{ios.split('_')[0]}.{rng.randint(0, 6)} Mobile/15E148 Safari/604.1")
        elif kind < 0.85:
            out.add(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                    f"Chrome/{chrome} Safari/537.36")
        elif kind < 0.95:
            out.add(f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_{rng.randint(0, 7)}) AppleWebKit/605.1.15 "
                    f"(KHTML, like Gecko) Version/{rng.randint(14, 17)}.{rng.randint(0, 6)} Safari/605.1.15")
        else:
            out.add(f"Mozilla/5.0 (compatible; Googlebot/2.{rng.randint(0, 9)}; +http://www.google.com/bot.html)"
                    if rng.random() < 0.5 else f"python-requests/2.{rng.randint(0, 32)}.{rng.randint(0, 5)}")
    return sorted(out)


def make_records(events: int, users: int, distinct_uas: int, seed: int = 7,
                 start: datetime = NOW - timedelta(days=1)) -> list[RawRecord]:
    """``events`` records. Users (their UA and IP) depend only on ``users`` and
    ``distinct_uas``; ``seed`` and ``start`` choose the events."""
    rng = random.Random(7)
    uas = user_agents(distinct_uas, rng)
    rng.shuffle(uas)
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(uas))]
    user_ua = rng.choices(uas, weights=weights, k=users)
    user_ip = [f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
               for _ in range(users)]
    rng = random.Random(seed)
    clock = [start + timedelta(seconds=rng.randint(0, 3600)) for _ in range(users)]
    out = []
    for n in range(events):
        u = rng.randrange(users)
        clock[u] += timedelta(seconds=rng.choice([5, 30, 90, 240, 3 * 3600]))
        event = {"event_id": f"e{seed}-{n}", "type": "page_view", "property_id": "site", "user_id": f"user-{u}",
                 "timestamp": clock[u].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                 "context": {"page_url": f"https://example.com/p/{n % 50}", "locale": "en-GB",
                             "sdk": {"name": "pistats-js", "version": "1.0.0"}}}
        record = contract.build_record(client_id="client-1", event=event, received_at=NOW, ip=user_ip[u],
                                       user_agent=user_ua[u], now=NOW)
        out.append(RawRecord("shardId-000000000000", str(10**20 + n), 0, f"client-1:user-{u}", None,
                                 contract.encode_record(record)))
    return out


def run_pass(chain: Chain, records: list[RawRecord], batch: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one pass over ``records``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(records), batch):
        chain.run(records[start:start + batch])
    return time.perf_counter() - wall, time.process_time() - cpu


def report(label: str, chain: Chain, records: list[RawRecord], batch: int) -> None:
    """One pass. On a shared machine wall time includes waiting for a CPU, so the rate is also
    given per CPU second of this process (Redis's own CPU time is not in it), and the stages
    are timed in CPU time of this process (``time.process_time``)."""
    chain.seconds = {name: 0.0 for name in chain.stage_names}
    wall, cpu = run_pass(chain, records, batch)
    n = len(records)
    stages = "  ".join(f"{name} {1e6 * s / n:.1f}" for name, s in chain.seconds.items())
    print(f"{label:<28} {n / wall:>8,.0f} events/s wall  {n / cpu:>8,.0f} events/CPU-s   "
          f"CPU us/event: {stages}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--distinct-uas", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--bolt-events", type=int, default=10_000, help="events sent one per call")
    parser.add_argument("--redis-url", default=os.environ.get("PISTATS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    records = make_records(args.events, args.users, args.distinct_uas)
    # The prepared records are this script's, not the bolt's: keep the garbage collector from
    # walking them over and over while the chain runs.
    gc.freeze()
    print(f"{len(records):,} events, {args.users:,} users, {args.distinct_uas:,} distinct UAs (Zipf s=1.1), "
          f"batches of {args.batch}")

    plain = Chain.build(EnrichConfig(), now=lambda: NOW, timed=True, clock=time.process_time)
    report("no sessions, cold caches", plain, records, args.batch)
    report("no sessions, warm caches", plain, records, args.batch)
    print(f"{'':<28} UA cache {plain.summary()['ua_cache']}  IP cache {plain.summary()['ip_cache']}")

    import redis

    from pistats.enrich.sessions import RedisSessionStore, SessionEnrichment

    client = redis.Redis.from_url(args.redis_url)
    prefix = f"pistats-bench:{uuid.uuid4().hex[:8]}"
    try:
        store = RedisSessionStore(client, SessionConfig(key_prefix=prefix), now=lambda: NOW)
        # Same (warm) geo/device/bots stages, plus sessions: first every event is new, then
        # the same events again, every one a memo hit (the replay path).
        chain = Chain(plain.parser, plain.stages, SessionEnrichment(store), timed=True, clock=time.process_time)
        report("redis sessions, new events", chain, records, args.batch)
        report("redis sessions, replays", chain, records, args.batch)
        # The bolts' way before micro-batches: one event per call. Users are known by now (state cache),
        # so this is the one-round-trip path; events are new (shifted a day later).
        later = make_records(args.bolt_events, args.users, args.distinct_uas, seed=8,
                             start=NOW + timedelta(days=1))
        gc.freeze()
        report("redis sessions, 1 per call", chain, later, 1)
        print(f"{'':<28} session state reads {store.reads:,}, conflicts {store.conflicts:,}, "
              f"replays {store.replays:,}")
    finally:
        delete_matching(client, f"{prefix}:*")


if __name__ == "__main__":
    main()
