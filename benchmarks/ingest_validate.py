"""In-process throughput of the ingest's CPU work, on one core.

1. contract: validate_event + build_record + encode_record + partition_key per event.
2. request path: IngestService.handle on batches of 50 (body parsing, key lookup from the cache,
   validation, records, response JSON) with in-memory stand-ins for Redis and Kinesis, so only
   our own code is timed.

Target (issue 5): >= 20,000 events/s per core for (1).

    .venv/bin/python benchmarks/ingest_validate.py [--events 50000]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import datetime, timedelta, timezone

from pistats.contract import EVENT_TYPES, build_record, encode_record, partition_key, validate_event
from pistats.ingest.api import IngestRequest
from pistats.ingest.putter import RecordPutter
from pistats.ingest.service import IngestService
from pistats.testing.ingest import AcceptingKinesis, NoMarks, StaticKeys

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def make_events(count: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    events = []
    for n in range(count):
        kind = rng.choice(EVENT_TYPES)
        moment = NOW - timedelta(seconds=rng.randint(0, 3600), milliseconds=rng.randint(0, 999))
        event = {
            "event_id": f"{rng.getrandbits(128):032x}",
            "type": kind,
            "property_id": f"site-{rng.randint(1, 20)}",
            "user_id": f"user-{rng.randint(1, 100_000)}",
            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "context": {
                "page_url": f"https://example{rng.randint(1, 9)}.com/articles/{n}?utm_source=push",
                "referrer": "https://www.google.com/",
                "locale": rng.choice(["fr-FR", "en-US", "de-DE"]),
                "timezone": "Europe/Paris",
                "screen": {"width": 1920, "height": 1080},
                "sdk": {"name": "pistats-js", "version": "1.4.2"},
            },
            "properties": {"plan": rng.choice(["free", "pro"]), "visits": rng.randint(1, 50), "beta": True},
        }
        if kind == "subscribe":
            event["push_token"] = "fcm:" + "x" * 150
        if kind == "notification_click":
            event["notification_id"] = f"campaign-{rng.randint(1, 99)}"
        events.append(event)
    return events


def bench_contract(events: list[dict]) -> float:
    start = time.perf_counter()
    for event in events:
        if validate_event(event):
            raise AssertionError("benchmark events must be valid")
        record = build_record(client_id="acme", event=event, received_at=NOW, ip="203.0.113.9",
                              user_agent="Mozilla/5.0", now=NOW)
        encode_record(record)
        partition_key("acme", event["user_id"])
    return len(events) / (time.perf_counter() - start)


def bench_requests(events: list[dict], batch_size: int) -> tuple[float, float]:
    service = IngestService(keys=StaticKeys(), marks=NoMarks(), putter=RecordPutter(AcceptingKinesis(), "bench"), now=lambda: NOW)
    headers = {"Content-Type": "application/json", "X-Pistats-Key": "pk_bench", "User-Agent": "Mozilla/5.0"}
    bodies = [json.dumps({"batch": events[i:i + batch_size]}).encode() for i in range(0, len(events), batch_size)]
    start = time.perf_counter()
    for body in bodies:
        response = service.handle(IngestRequest.build("POST", "/v1/events", headers, body, "203.0.113.9"))
        if response.status != 200:
            raise AssertionError(response.body)
        response.body_bytes()
    elapsed = time.perf_counter() - start
    return len(events) / elapsed, len(bodies) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    events = make_events(args.events)
    size = sum(len(json.dumps(e)) for e in events) / len(events)
    print(f"{args.events} events, {size:.0f} bytes of JSON each on average; best of {args.repeat} runs")
    contract_rate = max(bench_contract(events) for _ in range(args.repeat))
    print(f"contract (validate + build + encode): {contract_rate:,.0f} events/s per core (target >= 20,000)")
    events_rate, requests_rate = max(bench_requests(events, 50) for _ in range(args.repeat))
    print(f"request path, batches of 50 (no I/O): {events_rate:,.0f} events/s, {requests_rate:,.0f} requests/s")


if __name__ == "__main__":
    main()
