"""Spout benchmark: records/s one KinesisSpout task emits through the multilang protocol, and its
memory at max_uncommitted 10k and 100k.

The spout runs as Storm runs it (`streamparse_run`, JSON multilang over stdin/stdout) over a
pre-filled stream (4 shards served from memory) with in-memory checkpoints, so the numbers are
the spout's own cost, not kinesis-local's. This script plays Storm's ShellSpout: `next`
until the spout syncs, then one `ack` command per emitted tuple (each answered with sync). A
tuple is a micro-batch (one bucket of users per poll, the topology's defaults); records are
counted by unpacking each one, which this stand-in's CPU figure includes.

    .venv/bin/python benchmarks/spout_emit.py [--records 200000] [--payload 300]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pistats.wire import unpack  # noqa: E402
from spouts.kinesis import KinesisSpout  # noqa: E402

T0 = datetime(2026, 11, 26, 5, 0, tzinfo=timezone.utc)
BASE = 49680574275476335198516986152487755993581893416107638786
SHARDS = 4


class PrefilledKinesis:
    """The three Kinesis calls a shard reader makes, served from responses built up front, so
    the benchmark measures the spout rather than a fake service (botocore's own response
    parsing is not included either)."""

    def __init__(self, total: int, size: int):
        width = 2**128 // SHARDS
        self.shards = {}
        self.listing = []
        for n in range(SHARDS):
            shard_id = f"shardId-{n:012d}"
            records = []
            for i in range(total // SHARDS):
                body = json.dumps({"v": 1, "client_id": "c1", "event": {"event_id": f"{n}-{i}", "type": "page_view"}})
                records.append({"SequenceNumber": str(BASE + n * 10**12 + i), "Data": bytearray(body.encode().ljust(size, b" ")),
                                "PartitionKey": f"c1:user{i % 5000}",
                                "ApproximateArrivalTimestamp": T0 + timedelta(microseconds=i)})
            self.shards[shard_id] = records
            self.listing.append({"ShardId": shard_id, "HashKeyRange": {"StartingHashKey": str(n * width),
                                                                       "EndingHashKey": str((n + 1) * width - 1)},
                                 "SequenceNumberRange": {"StartingSequenceNumber": str(BASE + n * 10**12)}})

    def list_shards(self, **_):
        return {"Shards": self.listing}

    def get_shard_iterator(self, *, ShardId, ShardIteratorType, **_):
        assert ShardIteratorType == "TRIM_HORIZON"
        return {"ShardIterator": f"{ShardId}:0"}

    def get_records(self, *, ShardIterator, Limit):
        shard_id, start = ShardIterator.rsplit(":", 1)
        records = self.shards[shard_id]
        end = min(len(records), int(start) + Limit)
        # Fresh bytes per response, as botocore gives: the memory figures include the payloads.
        page = [{**record, "Data": bytes(record["Data"])} for record in records[int(start):end]]
        return {"Records": page, "NextShardIterator": f"{shard_id}:{end}",
                "MillisBehindLatest": 0 if end == len(records) else 1000}


def prefilled_consumer(config, task_index, task_count):
    """A consumer over SHARDS pre-filled shards holding BENCH_RECORDS records in total."""
    from pistats.kinesis.checkpoint import MemoryCheckpointStore
    from pistats.kinesis.consumer import Consumer

    client = PrefilledKinesis(int(os.environ["BENCH_RECORDS"]), int(os.environ["BENCH_PAYLOAD"]))
    return Consumer(config, client, MemoryCheckpointStore(), task_index=task_index, task_count=task_count)


class PrefilledKinesisSpout(KinesisSpout):
    consumer_factory = staticmethod(prefilled_consumer)


def multilang_driver():
    sys.path.insert(0, str(ROOT))
    from tests.support.multilang_spout import MultilangSpout

    return MultilangSpout


def start(driver, records: int, payload: int, max_uncommitted: int):
    conf = {"topology.name": "bench", "topology.debug": False, "pistats.kinesis.stream": "bench",
            "pistats.kinesis.max_uncommitted": max_uncommitted,
            "pistats.kinesis.idle_poll_ms": 50, "pistats.kinesis.checkpoint_interval_ms": 1000}
    return driver("spout_emit.PrefilledKinesisSpout", conf, pythonpath=[ROOT / "benchmarks"],
                  env={"BENCH_RECORDS": str(records), "BENCH_PAYLOAD": str(payload)})


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


_EMIT_ID = re.compile(rb'"id": "([^"]+)"')
_SYNC = b'{"command": "sync"}\n'


def lean_next(spout) -> tuple[list[bytes], int]:
    """`next` as a Java ShellSpout would cost it (tuple ids picked out), plus the records of each
    batch counted."""
    spout.send({"command": "next"})
    ids, records = [], 0
    readline = spout.proc.stdout.readline
    while True:
        line = readline()
        if line == _SYNC:
            readline()  # "end"
            return ids, records
        if line.startswith(b'{"command": "emit"'):
            ids.append(_EMIT_ID.search(line).group(1))
            records += len(unpack(json.loads(line)["tuple"][1]))
        elif not line:
            raise EOFError("spout exited")


def lean_ack(spout, tuple_id: bytes) -> None:
    spout.proc.stdin.write(b'{"command": "ack", "id": "' + tuple_id + b'"}\nend\n')
    spout.proc.stdin.flush()
    readline = spout.proc.stdout.readline
    while readline() != _SYNC:
        pass
    readline()  # "end"


def throughput(driver, records: int, payload: int) -> None:
    spout = start(driver, records, payload, max_uncommitted=20_000)
    try:
        spout.command("activate")
        first = spout.next_until(1, max_calls=2000)  # the fetchers are running
        for emit in first:
            spout.command("ack", id=emit["id"])  # an unacked tuple would hold its shard's books
        emitted, tuples = 0, 0
        records -= sum(len(unpack(emit["tuple"][1])) for emit in first)
        cpu_before = cpu_seconds(spout.pid), time.process_time()
        began = time.perf_counter()
        deadline = began + 120
        empty = 0
        while emitted < records - 100 and time.perf_counter() < deadline:
            ids, count = lean_next(spout)
            if not ids:
                empty += 1
                time.sleep(0.001)  # Storm's ShellSpout waits after an empty next
                continue
            emitted += count
            tuples += len(ids)
            for tuple_id in ids:
                lean_ack(spout, tuple_id)
        elapsed = time.perf_counter() - began
        spout_cpu = cpu_seconds(spout.pid) - cpu_before[0]
        driver_cpu = time.process_time() - cpu_before[1]
        print(f"throughput: {emitted} records emitted and acked in {elapsed:.2f} s = "
              f"{emitted / elapsed:,.0f} records/s wall in {tuples:,} tuples (payload {payload} B, {SHARDS} shards, "
              f"{empty} empty nexts, load average {os.getloadavg()[0]:.1f})")
        print(f"cpu: spout {spout_cpu:.2f} s = {emitted / spout_cpu:,.0f} records per spout CPU-second; "
              f"this Storm stand-in {driver_cpu:.2f} s")
    finally:
        spout.close()


def memory(driver, max_uncommitted: int, payload: int) -> None:
    records = max_uncommitted + max_uncommitted // 2
    spout = start(driver, records, payload, max_uncommitted=max_uncommitted)
    try:
        spout.command("activate")
        baseline = rss_mib(spout.pid)  # source loaded, nothing fetched yet
        held = 0
        stalled_since = None
        while True:
            emits = spout.command("next")
            held += sum(len(unpack(emit["tuple"][1])) for emit in emits)
            if emits:
                stalled_since = None
            elif stalled_since is None:
                stalled_since = time.perf_counter()
            elif time.perf_counter() - stalled_since > 1.5:
                break
            else:
                time.sleep(0.005)
        peak = rss_mib(spout.pid)
        print(f"memory: max_uncommitted={max_uncommitted:,}: {held:,} records held unacked (source has "
              f"{records:,}); RSS {baseline:.0f} -> {peak:.0f} MiB, +{peak - baseline:.1f} MiB "
              f"= {(peak - baseline) * 2**20 / max(held, 1):,.0f} B/record (payload {payload} B)")
    finally:
        spout.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--payload", type=int, default=300)
    args = parser.parse_args()
    driver = multilang_driver()
    throughput(driver, args.records, args.payload)
    for bound in (10_000, 100_000):
        memory(driver, bound, args.payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
