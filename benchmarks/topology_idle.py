"""What the shipped topology costs while it has nothing to do: CPU per process and per JVM thread.

    .venv/bin/python benchmarks/topology_idle.py [--events 3000] [--seconds 20]

Runs the topology under ``sparse run`` on a small recording pre-loaded into moto (as
``compare.py``'s topology leg), waits until every record is committed and 10 s more, then
samples each process's CPU and each JVM thread's (``/proc/<pid>/task``) over ``--seconds``.
Under load this fixed cost per second is spread over the records: at 4,400 events/s, 10 % of a
core is 23 us per record of ``compare.py``'s ``pipeline_cpu_us_per_record``. The JVM of a local
run holds Storm's own daemons too (nimbus, a supervisor, ZooKeeper), which a cluster's workers
do not.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

from compare import MEASURING
from pistats.demo.runner import DemoRun, Pipeline
from storm_bench import JVM, Sources, cpu_seconds, drain, make_recording, preload, topology_processes


def thread_cpu(pid: int) -> dict[str, tuple[str, float]]:
    """thread id -> (thread name, CPU seconds so far) of process ``pid``."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        seconds = cpu_seconds(f"{pid}/task/{task.name}")
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        if seconds is not None:
            found[task.name] = (name, seconds)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with Sources("moto") as sources, tempfile.TemporaryDirectory() as tmp:
        run = DemoRun.new(None)
        pipeline = Pipeline(run, sources.redis_url, sources.endpoint, dict(MEASURING))
        preload(pipeline, make_recording(Path(tmp) / "recording", args.events, 4))
        topology = pipeline.start_local("idle")
        try:
            drain(pipeline, topology, sources.redis_pid)
            time.sleep(10)
            processes = topology_processes(topology.process.pid)
            jvm = next(pid for pid, name in processes.items() if name == JVM)
            before, threads_before = {pid: cpu_seconds(pid) for pid in processes}, thread_cpu(jvm)
            time.sleep(args.seconds)
            after, threads_after = {pid: cpu_seconds(pid) for pid in processes}, thread_cpu(jvm)
        finally:
            topology.stop()
            pipeline.delete_redis_state()
            pipeline.delete_stream()
    print(f"idle for {args.seconds:.0f} s after {args.events} records, % of a core:")
    for pid, name in sorted(processes.items(), key=lambda item: item[1]):
        if before[pid] is not None and after[pid] is not None:
            print(f"  {name:16s} {(after[pid] - before[pid]) / args.seconds * 100:5.1f}")
    by_name: collections.Counter = collections.Counter()
    for tid, (name, seconds) in threads_after.items():
        if tid in threads_before:
            by_name[name] += seconds - threads_before[tid][1]
    print("the JVM's busiest threads (names as /proc keeps them, 15 characters):")
    for name, seconds in by_name.most_common(12):
        print(f"  {name:16s} {seconds / args.seconds * 100:5.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
