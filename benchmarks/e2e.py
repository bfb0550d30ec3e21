"""End-to-end benchmark: a pre-loaded Kinesis stream through the real topology on local Storm.

    .venv/bin/python benchmarks/e2e.py [--events 20000] [--shards 4] [--store URL]
        [--latency-rate R --latency-seconds T] [-o KEY=VALUE ...]

Phase 1 (throughput): generates a recording of valid events (``pistats generate``), replays it
into a fresh stream on kinesis-local, runs ``sparse run -e local -n enrichment`` with acking and
measures how fast the spout's checkpoints advance: a record counts once it is committed, i.e.
stored in the store and acked end to end. Prints the sustained rate between 10 % and 90 % of the
records (start-up excluded) and the whole drain.

Phase 2 (latency, needs a ClickHouse server store so the table can be read while the sink
writes, and ``--kinesis kinesis-local``: moto's server is not safe under concurrent puts and
reads): with the topology still running, puts fresh events at ``--latency-rate`` per second for
``--latency-seconds`` and polls ``count()`` of those events every 50 ms. The k-th event's latency
is the time the visible count first reached k minus its put time (events are counted in put
order, so this is exact when rows become visible in put order, and otherwise a close estimate).

Prints numbers only; nothing is asserted. The machine and settings are printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from pistats.contract import build_record, encode_record, partition_key
from pistats.demo.runner import DemoRun, Pipeline
from pistats.store.backends import open_store
from storm_bench import Sources, drain, make_recording, preload

LIVE_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--store", default=None, help="store URL (default: a fresh chdb folder)")
    parser.add_argument("--kinesis", choices=["moto", "kinesis-local"], default="moto",
                        help="the pre-loaded stream's emulator: moto serves GetRecords about 10x faster "
                             "than kinesis-local (which caps reads near 1,500 records/s here), so it "
                             "measures the topology rather than the emulator")
    parser.add_argument("--latency-rate", type=float, default=0.0, help="events/s for the latency phase")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument("-o", dest="options", action="append", default=[], metavar="KEY=VALUE",
                        help="extra topology option, as for sparse run -o")
    return parser.parse_args()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def put_live_events(client, stream: str, rate: float, seconds: float, prefix: str) -> list[float]:
    """Puts ``rate`` events/s for ``seconds`` in 100 ms slices; returns each event's put time."""
    put_times: list[float] = []
    slice_s, per_slice = 0.1, max(1, round(rate / 10))
    started = time.monotonic()
    index = 0
    while time.monotonic() - started < seconds:
        now = datetime.now(timezone.utc)
        entries = []
        for _ in range(per_slice):
            user = f"latency-user-{index % 500}"
            event = {"event_id": f"{prefix}-{index:08d}", "type": "page_view", "property_id": "bench",
                     "user_id": user, "timestamp": now.isoformat().replace("+00:00", "Z")}
            record = build_record(client_id="bench-client", event=event, received_at=now,
                                  ip="81.2.69.142", user_agent=LIVE_UA, now=now)
            entries.append({"Data": encode_record(record), "PartitionKey": partition_key("bench-client", user)})
            index += 1
        response = client.put_records(StreamName=stream, Records=entries)
        if response.get("FailedRecordCount"):
            raise SystemExit(f"latency phase: {response['FailedRecordCount']} puts failed")
        put_times.extend([time.monotonic()] * len(entries))
        time.sleep(max(0.0, slice_s - (time.monotonic() - started) % slice_s))
    return put_times


def main() -> int:
    args = parse_args()
    sources = Sources(args.kinesis).start()
    run = DemoRun.new(args.store)
    extra = dict(option.split("=", 1) for option in args.options)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"settings: events={args.events} shards={args.shards} kinesis={args.kinesis} "
          f"store={run.store_url.split('?')[0]} options={extra}")

    pipeline = Pipeline(run, sources.redis_url, sources.endpoint, extra)
    with tempfile.TemporaryDirectory() as tmp:
        recording = make_recording(Path(tmp) / "recording", args.events, args.shards)
        loaded = preload(pipeline, recording)
    print(f"pre-load: {args.events} records into {args.kinesis} in {loaded:.1f} s")
    client = pipeline.client

    started = time.monotonic()
    topology = pipeline.start_local("bench")
    try:
        measured = drain(pipeline, topology, sources.redis_pid, emulator=sources.moto is not None,
                         served=sources.served)
        total, rate = measured.total, measured.sustained()
        first, end = measured.first_commit(), measured.samples[-1][0]
        print(f"start-up (sparse run to first checkpoint): {first - started:.1f} s")
        if rate is None or end <= first:
            print(f"drain: all {total} records committed within one checkpoint interval: too few to measure a rate")
        else:
            print(f"drain: {total} records in {end - first:.1f} s after the first checkpoint "
                  f"({total / (end - first):.0f} records/s)")
            low, high = measured.span_fractions()
            print(f"sustained ({low:.0%}..{high:.0%} of records): {rate:.0f} records/s end to end")
            records = measured.span_records()
            print(f"cpu between {low:.0%} and {high:.0%} ({os.cpu_count() * measured.span_seconds():.1f} core-seconds available): "
                  + ", ".join(f"{name} {us * records / 1e6:.1f} s ({us:.0f} us/record)"
                              for name, us in sorted(measured.cpu_us_per_record().items(), key=lambda item: -item[1])))

        if args.latency_rate > 0:
            if not run.store_url.startswith("clickhouse"):
                raise SystemExit("the latency phase needs --store clickhouse://... (chdb is locked by the sink)")
            if sources.moto is not None:
                raise SystemExit("the latency phase needs --kinesis kinesis-local (moto breaks under concurrent puts)")
            prefix = f"lat-{uuid.uuid4().hex[:8]}"
            put_times: list[float] = []
            writer = threading.Thread(target=lambda: put_times.extend(
                put_live_events(client, run.stream, args.latency_rate, args.latency_seconds, prefix)))
            visible: list[tuple[float, int]] = []
            with open_store(run.store_url) as store:
                table = f"{store.database}.events"
                writer.start()
                while writer.is_alive() or not put_times or (visible and visible[-1][1] < len(put_times)):
                    count = int(store.query(f"SELECT count() FROM {table} WHERE event_id LIKE '{prefix}-%'")[0][0])
                    visible.append((time.monotonic(), count))
                    if time.monotonic() - started > 3600:
                        raise SystemExit("latency phase did not finish")
                    time.sleep(0.05)
            latencies = []
            cursor = 0
            for k, put in enumerate(put_times):
                while visible[cursor][1] < k + 1:
                    cursor += 1
                latencies.append(visible[cursor][0] - put)
            achieved = len(put_times) / args.latency_seconds
            print(f"latency at {achieved:.0f} events/s put (asked {args.latency_rate:.0f}) for {args.latency_seconds:.0f} s "
                  f"({len(latencies)} events, put -> row visible): p50 {quantile(latencies, 0.5):.2f} s, "
                  f"p99 {quantile(latencies, 0.99):.2f} s, max {max(latencies):.2f} s")
    finally:
        topology.stop()
        pipeline.delete_redis_state()
        sources.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
