"""The bolts' CPU per record at two micro-batch sizes, side by side in one process: what the enrich
bolt and the sink bolt do with each tuple, without Storm, on the same records.

    .venv/bin/python benchmarks/tuple_size.py [--events 20000] [--buckets 16,4] [--rounds 6]
                                              [--redis-url redis://127.0.0.1:6379/0]

The spout splits each poll (``emit_batch``, 1,000 records) into ``buckets`` tuples, so under load
a tuple holds about 1,000 / buckets records (at most ``batch_records``, 500). For each bucket
count the records are packed as the spout packs them (``spout_emits``); then, tuple by tuple, the
enrich bolt's path (``records_from_batch``, the chain with Redis sessions, ``to_wire_batch``) and
the sink bolt's (``tuple_payloads``, ``Sink.add_events`` into chdb, flushing at its own sizes).
Rounds alternate the sizes (A B, then B A), each with fresh session keys and a fresh chdb folder;
a round's figure is this process's CPU time per record (chdb's threads included) and, when the
Redis is the project's own (``pistats services``), Redis's. Prints the median of the rounds per
size and its ratio to the first size's. The multilang messages, the JVM and the spout's reading
are not in it: ``benchmarks/compare.py`` measures the whole topology.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import redis  # noqa: E402

from pistats.enrich.chain import Chain  # noqa: E402
from pistats.enrich.event import to_wire_batch  # noqa: E402
from pistats.enrich.parse import records_from_batch  # noqa: E402
from pistats.enrich.run import records_from_recording  # noqa: E402
from pistats.heap import settle_after_startup  # noqa: E402
from pistats.kinesis.consumer import Delivery  # noqa: E402
from pistats.kinesis.ledger import ShardRecord  # noqa: E402
from pistats.kinesis.spout_tuples import spout_emits  # noqa: E402
from pistats.localenv.services import Ports  # noqa: E402
from pistats.redis_keys import delete_matching  # noqa: E402
from pistats.store.sink import sink_from_topology_conf, tuple_payloads  # noqa: E402
from storm_bench import cpu_seconds, make_recording, redis_pid  # noqa: E402

EMIT_BATCH = 1_000
BATCH_RECORDS = 500


def spout_tuples(records: list, buckets: int) -> list[str]:
    """The packed ``records`` field of every tuple the spout emits for ``records``, polls of
    ``EMIT_BATCH`` split into ``buckets``."""
    deliveries = [Delivery(f"m{number}", ShardRecord(r.shard_id, int(r.sequence_number), r.sub_sequence_number,
                                                     r.partition_key, r.arrival_ms, r.data))
                  for number, r in enumerate(records)]
    now = lambda: datetime.now(timezone.utc)  # noqa: E731 - only dead letters use it; there are none
    return [emit.values[1]
            for start in range(0, len(deliveries), EMIT_BATCH)
            for emit in spout_emits(deliveries[start:start + EMIT_BATCH], buckets, BATCH_RECORDS, now)]


def project_redis(redis_url: str) -> int | None:
    """The pid of the Redis at ``redis_url`` if it is the project's own (``pistats services``),
    whose CPU time can be read; None otherwise."""
    url = urlsplit(redis_url)
    if url.hostname != "127.0.0.1" or (url.port or 6379) != Ports.from_env().redis:
        return None
    return redis_pid()


def bolts_path(tuples: list[str], redis_url: str) -> tuple[float, float | None, int]:
    """(CPU seconds of this process, of the project's Redis or None, rows stored) for ``tuples``
    through the enrich bolt's and the sink bolt's steps, with fresh sessions and store."""
    prefix = f"pistats:tuple-size:{os.getpid()}-{time.time_ns()}"
    with tempfile.TemporaryDirectory(prefix="pistats-tuple-size-") as folder:
        conf = {"pistats.store.url": f"chdb://{folder}", "pistats.redis.url": redis_url,
                "pistats.enrich": {"sessions": {"key_prefix": prefix}}}
        chain = Chain.from_topology_conf(conf, {}, sessions=True)
        sink = sink_from_topology_conf(conf, {})
        server = project_redis(redis_url)
        try:
            redis_before, began = cpu_seconds(server) if server else None, time.process_time()
            for number, packed in enumerate(tuples):
                events, rejects = chain.run(records_from_batch(packed))
                if events:
                    sink.add_events(("events", number), tuple_payloads([to_wire_batch(events)]))
                if rejects:
                    sink.add_rejects(("rejects", number), tuple_payloads([to_wire_batch(rejects)]))
            failed = sink.flush_all().failed
            cpu = time.process_time() - began
            redis_cpu = cpu_seconds(server) - redis_before if server and redis_before is not None else None
            if failed:
                raise RuntimeError(f"{len(failed)} tuples not stored")
            return cpu, redis_cpu, sink.stats.rows_inserted
        finally:
            sink.store.close()
            delete_matching(redis.Redis.from_url(redis_url), f"{prefix}:*")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--buckets", default="16,4", help="two bucket counts, comma separated")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--recording", type=Path, help="read the first --events records of this recording "
                        "(pistats generate's folder) instead of generating them")
    args = parser.parse_args()
    sizes = [int(value) for value in args.buckets.split(",")]
    if len(sizes) != 2 or min(sizes) < 1 or args.rounds < 1:
        parser.error("--buckets takes two counts of at least 1, --rounds at least 1")
    if args.recording:
        records = list(itertools.islice(records_from_recording(args.recording), args.events))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            records = list(records_from_recording(make_recording(Path(tmp) / "recording", args.events, 4).path))
    tuples = {buckets: spout_tuples(records, buckets) for buckets in sizes}
    settle_after_startup()  # as each component does once started
    bolts_path(tuples[sizes[0]][:20], args.redis_url)  # warm: lazy imports, the first cache misses
    figures: dict[int, list[tuple[float, float | None]]] = {buckets: [] for buckets in sizes}
    us = lambda seconds: None if seconds is None else seconds * 1e6 / len(records)  # noqa: E731
    for number in range(args.rounds):
        for buckets in sizes if number % 2 == 0 else sizes[::-1]:
            cpu, redis_cpu, rows = bolts_path(tuples[buckets], args.redis_url)
            figures[buckets].append((us(cpu), us(redis_cpu)))
            print(f"round {number + 1}, {buckets:>2} buckets: {us(cpu):6.1f} us/record"
                  + ("" if redis_cpu is None else f", redis {us(redis_cpu):5.1f}") + f" ({rows} rows)", flush=True)
    result = {}
    for buckets in sizes:
        process = statistics.median(cpu for cpu, _ in figures[buckets])
        servers = [redis_cpu for _, redis_cpu in figures[buckets] if redis_cpu is not None]
        result[f"{buckets}_buckets"] = {
            "records_per_tuple": round(len(records) / len(tuples[buckets]), 1),
            "cpu_us_per_record": round(process, 1),
            "redis_us_per_record": round(statistics.median(servers), 1) if servers else None}
    first, second = (result[f"{buckets}_buckets"] for buckets in sizes)
    result["second_vs_first"] = round(second["cpu_us_per_record"] / first["cpu_us_per_record"], 3)
    for name, values in result.items():
        if isinstance(values, dict):
            print(f"{name}: {values['records_per_tuple']} records a tuple, median {values['cpu_us_per_record']} "
                  f"us/record" + ("" if values["redis_us_per_record"] is None
                                  else f", redis {values['redis_us_per_record']}"))
    print(f"{sizes[1]} buckets against {sizes[0]}: {result['second_vs_first']} of the bolts' CPU per record")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
