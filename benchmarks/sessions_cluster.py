"""Sessions on a Redis Cluster against the single Redis, side by side in one process.

Starts a local cluster of three masters and their replicas on free ports (a temporary folder,
stopped at the end), then assigns the same events through ``RedisSessionStore`` on the single
Redis, on the cluster, and on the cluster with ``wait_replicas=1``, in turns, ``--repeat`` times.
Events: ``--users`` users, ``--events-per-user`` each in time order, shuffled per round, in
batches of ``--batch`` (as the enrich bolt's micro-batches of one bucket of users). Prints, per
target, the median wall time and the median client CPU per event (Redis's own CPU is not in it)
and the ratios to the single Redis.

    .venv/bin/python benchmarks/sessions_cluster.py [--users 2000] [--events-per-user 20] [--batch 200]
        [--repeat 3] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this checkout's library, and its tests' support

from pistats.enrich.chain import connect_redis  # noqa: E402
from pistats.enrich.sessions import RedisSessionStore, SessionConfig, SessionEvent  # noqa: E402
from pistats.redis_keys import delete_matching  # noqa: E402
from tests.support.redis_cluster import start_cluster  # noqa: E402

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)


def events(users: int, per_user: int, seed: int) -> list[SessionEvent]:
    rng = random.Random(seed)
    names = [f"user-{n}" for n in range(users)]
    return [SessionEvent("acme", user, f"{user}-{k}", 1_790_000_000_000 + k * 600_000)
            for k in range(per_user) for user in rng.sample(names, len(names))]


def run(url: str, wait_replicas: int, work: list[list[SessionEvent]]) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) to assign every batch, on fresh keys."""
    client = connect_redis(url)
    prefix = f"pistats-bench:sessions-cluster:{uuid.uuid4().hex[:10]}"
    store = RedisSessionStore(client, SessionConfig(key_prefix=prefix), now=lambda: NOW, wait_replicas=wait_replicas)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for batch in work:
            store.assign(batch)
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        delete_matching(client, f"{prefix}:*")
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--events-per-user", type=int, default=20)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-url", default=os.environ.get("PISTATS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    every = events(args.users, args.events_per_user, seed=7)
    work = [every[start:start + args.batch] for start in range(0, len(every), args.batch)]
    with tempfile.TemporaryDirectory(prefix="pistats-bench-cluster-") as home:
        cluster = start_cluster(Path(home))
        try:
            targets = {"single Redis": (args.redis_url, 0), "cluster": (cluster.url, 0),
                       "cluster, wait_replicas=1": (cluster.url + "?wait_replicas=1", 1)}
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
            for _ in range(args.repeat):
                for name, (url, wait) in targets.items():
                    runs[name].append(run(url, wait, work))
        finally:
            cluster.stop()
    load = os.getloadavg()[0]
    print(f"{len(every):,} events of {args.users:,} users in batches of {args.batch}, median of {args.repeat}, "
          f"load average {load:.1f}")
    base_wall = statistics.median(r[0] for r in runs["single Redis"])
    base_cpu = statistics.median(r[1] for r in runs["single Redis"])
    for name, measured in runs.items():
        wall, cpu = statistics.median(r[0] for r in measured), statistics.median(r[1] for r in measured)
        print(f"{name:<26} {wall / len(every) * 1e6:7.1f} µs/event wall ({wall / base_wall:4.2f}x)  "
              f"{cpu / len(every) * 1e6:7.1f} µs/event client CPU ({cpu / base_cpu:4.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
