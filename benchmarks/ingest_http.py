"""Requests/s and latency of `pistats ingest-server` against kinesis-local, batches of 1 and 50.

Starts the server as a subprocess on a free port with a fresh stream and a fresh write key
(under a private Redis prefix), drives it with a thread pool of plain http.client connections,
then deletes the stream and the Redis keys. The client runs on the same 2-core machine as the
server and kinesis-local, so the figures are a floor, not the server's capacity.

    .venv/bin/python benchmarks/ingest_http.py [--seconds 10] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import redis
from botocore.config import Config

from pistats.ingest.keys import WriteKeyStore
from pistats.redis_keys import delete_matching

PISTATS = str(Path(sys.executable).with_name("pistats"))


def event(n: int, run: str) -> dict:
    return {
        "event_id": f"{run}-{n}",
        "type": "page_view",
        "property_id": "site-1",
        "user_id": f"user-{n % 5000}",
        "timestamp": "2026-11-26T11:00:00.000Z",
        "context": {"page_url": f"https://example.com/a/{n}", "locale": "fr-FR",
                    "sdk": {"name": "pistats-js", "version": "1.4.2"}},
    }


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def load(port: int, key: str, batch: int, seconds: float, concurrency: int) -> dict:
    run = uuid.uuid4().hex[:8]
    counter = iter(range(10**9))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    def worker():
        while time.monotonic() < deadline:
            with lock:
                first = next(counter) * batch
            events = [event(first + i, run) for i in range(batch)]
            body = json.dumps(events[0] if batch == 1 else {"batch": events}).encode()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            started = time.perf_counter()
            connection.request("POST", "/v1/events", body,
                               {"Content-Type": "application/json", "X-Pistats-Key": key})
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            connection.close()
            with lock:
                latencies.append(elapsed)
                statuses[response.status] = statuses.get(response.status, 0) + 1

    wall = run_concurrently(worker, concurrency)
    latencies.sort()
    ok = statuses.get(200, 0)
    return {
        "batch": batch,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / wall,
        "events_per_s": ok * batch / wall,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "statuses": statuses,
    }


def run_concurrently(worker, concurrency: int) -> float:
    """Runs ``worker`` on ``concurrency`` threads until each returns; the wall time it took."""
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - began


def load_direct(kinesis, stream: str, batch: int, seconds: float, concurrency: int) -> dict:
    """The emulator alone: PutRecords calls of ``batch`` records, same concurrency."""
    run = uuid.uuid4().hex[:8]
    lock = threading.Lock()
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    def worker():
        while time.monotonic() < deadline:
            records = [{"Data": json.dumps(event(i, run)).encode(), "PartitionKey": f"bench:user-{i}"}
                       for i in range(batch)]
            started = time.perf_counter()
            kinesis.put_records(StreamName=stream, Records=records)
            with lock:
                latencies.append(time.perf_counter() - started)

    wall = run_concurrently(worker, concurrency)
    latencies.sort()
    return {"calls_per_s": len(latencies) / wall, "events_per_s": len(latencies) * batch / wall,
            "p50_ms": percentile(latencies, 0.50) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each load phase")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--endpoint-url", default="http://127.0.0.1:4567")
    parser.add_argument("--redis-url", default=os.environ.get("PISTATS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    stream = f"bench-ingest-{uuid.uuid4().hex[:8]}"
    prefix = f"pistats-bench-{uuid.uuid4().hex[:8]}"
    # One pooled connection per client thread (botocore's default pool holds 10).
    kinesis = boto3.client("kinesis", endpoint_url=args.endpoint_url, region_name="us-east-1",
                           config=Config(max_pool_connections=max(10, args.concurrency)))
    store = redis.Redis.from_url(args.redis_url)
    kinesis.create_stream(StreamName=stream, ShardCount=args.shards)
    while kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        time.sleep(0.1)
    key, _ = WriteKeyStore(store, prefix).create("bench")
    server = subprocess.Popen(
        [PISTATS, "ingest-server", "--port", "0", "--stream", stream, "--endpoint-url", args.endpoint_url,
         "--redis-url", args.redis_url, "--key-prefix", prefix],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = server.stderr.readline()
        if "listening on" not in banner:
            raise SystemExit(f"ingest-server did not start: {banner}")
        port = int(banner.split("http://127.0.0.1:")[1].split("/")[0])
        print(f"ingest-server -> kinesis-local ({args.shards} shards), {args.concurrency} client threads, "
              f"{args.seconds:.0f} s per phase, one connection per request")
        for batch in (1, 50):
            result = load(port, key, batch, args.seconds, args.concurrency)
            print(f"ingest-server batch {batch:>2}: {result['requests_per_s']:7.1f} requests/s "
                  f"{result['events_per_s']:8.1f} events/s  p50 {result['p50_ms']:7.1f} ms  "
                  f"p99 {result['p99_ms']:7.1f} ms  statuses {result['statuses']}")
            direct = load_direct(kinesis, stream, batch, args.seconds, args.concurrency)
            print(f"kinesis-local alone {batch:>2}: {direct['calls_per_s']:7.1f} PutRecords/s "
                  f"{direct['events_per_s']:8.1f} records/s  p50 {direct['p50_ms']:7.1f} ms  "
                  f"p99 {direct['p99_ms']:7.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stderr.close()
        kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
        delete_matching(store, f"{prefix}:*")


if __name__ == "__main__":
    main()
