"""The gateway (nginx + gunicorn) against `pistats ingest-server` (wsgiref), side by side.

Both put into the same moto server (started here, on 127.0.0.1), with a fresh write key under a
private Redis prefix. Each run gets a stream of its own, its server restarted onto it: moto's
put costs grow with the records already in a shard (it lists a shard's sequence numbers for
every record put), so a shared stream would favour whichever server runs first. wrk (Debian) drives each for a fixed time with
benchmarks/gateway.lua, batches of 1 and of 50 fresh events, the same connections and threads:
requests/s, events/s (events in 200 answers), p50 and p99 latency, and the CPU microseconds per
event of the server's processes and of moto (from /proc, over the wrk run); then moto alone, PutRecords
calls of the same sizes from 8 threads of this process: about the ceiling of any server putting
into it (more threads only load this process's interpreter).
With ``--also-without-group-commit``, the gateway also runs with group commit off
(``PISTATS_GATEWAY_GROUP_COMMIT=0``, one PutRecords call per request, as ingest-server makes)
where events are put: what sharing calls is worth, in the same run.
Then the same batches resent (every event already stored, so answered from Redis without a
put): what the servers themselves serve when Kinesis is not the limit. The last line is one
JSON object with the ratios gateway / ingest-server. The gateway's per-key rate is raised for
the run (one key sends everything here); its limiter is still on every request's path.

wrk, both servers and moto share the machine, so the figures are a floor, not a capacity.

    .venv/bin/python benchmarks/gateway.py [--seconds 10] [--connections 32] [--threads 2] [--also-without-group-commit]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import redis

from pistats.ingest.keys import WriteKeyStore
from pistats.redis_keys import delete_matching

BIN = Path(sys.executable).parent
LUA = Path(__file__).with_name("gateway.lua")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"{process.args[0]} exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def wrk(url: str, key: str, batch: int, seconds: float, connections: int, threads: int,
        mode: str = "fresh", run: str | None = None) -> dict:
    """One wrk run; its done() prints the WRK_RESULT line."""
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:.0f}s", "--timeout", "10s",
               "-s", str(LUA), url, "--", key, str(batch), run or uuid.uuid4().hex[:8], mode]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    (line,) = [line for line in output.splitlines() if line.startswith("WRK_RESULT ")]
    raw = json.loads(line.split(" ", 1)[1])
    wall = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["not_200"]
    return {
        "batch": batch,
        "requests_per_s": raw["requests"] / wall,
        "events_per_s": ok * batch / wall,
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "not_200": raw["not_200"],
        "socket_errors": raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"],
        "wall_s": wall,
    }


def _stat(pid: int | str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pids: set[int], groups: set[int] = frozenset()) -> float:
    """User + system CPU seconds so far of the processes ``pids`` and of every process whose
    process group is in ``groups`` (the gateway's nginx and gunicorn, with their workers)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(entry.name)
        if stat is not None and (int(entry.name) in pids or int(stat[2]) in groups):
            total += int(stat[11]) + int(stat[12])
    return total / os.sysconf("SC_CLK_TCK")


def moto_alone(kinesis, stream: str, batch: int, seconds: float, concurrency: int) -> dict:
    """PutRecords calls of ``batch`` records straight into moto, ``concurrency`` at once."""
    import threading

    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    data = json.dumps({"event": "x" * 300}).encode()

    def worker():
        while time.monotonic() < deadline:
            records = [{"Data": data, "PartitionKey": f"bench:user-{i}"} for i in range(batch)]
            started = time.perf_counter()
            kinesis.put_records(StreamName=stream, Records=records)
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    latencies.sort()
    return {"calls_per_s": len(latencies) / wall, "events_per_s": len(latencies) * batch / wall,
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000}


def line(name: str, batch: int, result: dict) -> str:
    return (f"{name:<30} batch {batch:>2}: {result['requests_per_s']:8.1f} requests/s "
            f"{result['events_per_s']:9.1f} events/s  p50 {result['p50_ms']:7.1f} ms  "
            f"p99 {result['p99_ms']:7.1f} ms  CPU us/event: server {result['server_cpu_us_per_event']:6.0f} "
            f"moto {result['moto_cpu_us_per_event']:6.0f}  "
            f"not 200: {result['not_200']}  socket errors: {result['socket_errors']}")


def ratio(gateway: dict, wsgiref: dict) -> dict:
    return {
        "events_per_s": round(gateway["events_per_s"] / max(wsgiref["events_per_s"], 1e-9), 2),
        "p99": round(gateway["p99_ms"] / max(wsgiref["p99_ms"], 1e-9), 2),
        "gateway_events_per_s": round(gateway["events_per_s"]),
        "ingest_server_events_per_s": round(wsgiref["events_per_s"]),
        "gateway_p99_ms": round(gateway["p99_ms"], 1),
        "ingest_server_p99_ms": round(wsgiref["p99_ms"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each wrk run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (the same for both)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--redis-url", default=os.environ.get("PISTATS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--also-without-group-commit", action="store_true",
                        help="where events are put, run the gateway with group commit off too")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("nginx") is None:
        raise SystemExit("wrk and nginx are needed (scripts/bootstrap installs them)")

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    run = uuid.uuid4().hex[:8]
    stream, prefix = f"bench-gateway-{run}", f"pistats-bench-{run}"
    state = Path(tempfile.mkdtemp(prefix="pgw-bench-"))
    moto_port, gateway_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{moto_port}"
    store = redis.Redis.from_url(args.redis_url)
    processes: list[subprocess.Popen] = []
    env = {
        **os.environ,
        "PISTATS_STATE_DIR": str(state),
        "PISTATS_GATEWAY_PORT": str(gateway_port),
        "PISTATS_GATEWAY_RATE": "1000000",
        "PISTATS_INGEST_STREAM": stream,
        "PISTATS_INGEST_ENDPOINT_URL": endpoint,
        "PISTATS_REDIS_URL": args.redis_url,
        "PISTATS_INGEST_KEY_PREFIX": prefix,
    }
    env.pop("PISTATS_REGISTRY_URL", None)
    gateway_started = False
    server: subprocess.Popen | None = None
    try:
        moto = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(moto)
        wait_for_port(moto_port, moto)
        kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1")
        key, _ = WriteKeyStore(store, prefix).create("bench")
        streams = iter(range(1000))

        def fresh_stream() -> str:
            name = f"{stream}-{next(streams)}"
            kinesis.create_stream(StreamName=name, ShardCount=args.shards)
            return name

        def gateway_processes() -> tuple[set[int], set[int]]:
            """The gateway's process groups: gunicorn's (master and workers) and nginx's."""
            groups = {int((state / service / "pid").read_text()) for service in ("gateway-ingest", "gateway")}
            return set(), groups

        def serve_gateway(name: str, group_commit: bool = True) -> str:
            nonlocal gateway_started
            env["PISTATS_INGEST_STREAM"] = name
            env["PISTATS_GATEWAY_GROUP_COMMIT"] = "1" if group_commit else "0"
            subprocess.run([str(BIN / "pistats"), "services", "stop", "gateway-ingest"], env=env, capture_output=True)
            started = subprocess.run([str(BIN / "pistats"), "services", "start", "gateway"], env=env,
                                     capture_output=True, text=True)
            gateway_started = True
            if started.returncode:
                raise SystemExit(f"the gateway did not start: {started.stderr.strip()}")
            return f"http://127.0.0.1:{gateway_port}"

        def serve_ingest_server(name: str) -> str:
            nonlocal server
            if server is not None:
                server.terminate()
                server.wait(timeout=20)
                server.stderr.close()
            server = subprocess.Popen(
                [str(BIN / "pistats"), "ingest-server", "--port", "0", "--stream", name, "--endpoint-url", endpoint,
                 "--redis-url", args.redis_url, "--key-prefix", prefix],
                env=env, stderr=subprocess.PIPE, text=True)
            banner = server.stderr.readline()
            if "listening on" not in banner:
                raise SystemExit(f"ingest-server did not start: {banner}")
            return "http://127.0.0.1:" + banner.split("http://127.0.0.1:")[1].split("/")[0]

        workers = env.get("PISTATS_GATEWAY_WORKERS") or str(max(2, os.cpu_count() or 1))
        print(f"moto server ({args.shards} shards, a fresh stream per run); wrk {args.threads} threads, "
              f"{args.connections} connections, {args.seconds:.0f} s per run, {os.cpu_count()} cores; "
              f"gateway: nginx + gunicorn {workers} workers x {env.get('PISTATS_GATEWAY_THREADS', '32')} threads, "
              f"group commit on")
        from botocore.config import Config

        direct = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                              config=Config(max_pool_connections=args.connections))
        servers = {
            "ingest-server": (serve_ingest_server, lambda: ({server.pid}, set())),
            "gateway": (serve_gateway, gateway_processes),
            "gateway, no group commit": (lambda name: serve_gateway(name, group_commit=False), gateway_processes),
        }
        if not args.also_without_group_commit:
            del servers["gateway, no group commit"]
        ratios = {}
        for mode in ("fresh", "resend"):
            for batch in (1, 50):
                results = {}
                resent = f"resend-{batch}-{run}"  # the same events for both: duplicates after round one
                for name, (serve, processes_of) in servers.items():
                    if mode == "resend" and name == "gateway, no group commit":
                        continue  # nothing is put: group commit is not on the path
                    url = serve(fresh_stream())
                    pids, groups = processes_of()
                    server_cpu, moto_cpu = cpu_seconds(pids, groups), cpu_seconds({moto.pid})
                    results[name] = wrk(url, key, batch, args.seconds, args.connections, args.threads, mode,
                                        resent if mode == "resend" else None)
                    events = max(1.0, results[name]["events_per_s"] * results[name]["wall_s"])
                    results[name]["server_cpu_us_per_event"] = (cpu_seconds(pids, groups) - server_cpu) / events * 1e6
                    results[name]["moto_cpu_us_per_event"] = (cpu_seconds({moto.pid}) - moto_cpu) / events * 1e6
                    print(line(name if mode == "fresh" else f"{name} (resent)", batch, results[name]), flush=True)
                if mode == "fresh":
                    ceiling = moto_alone(direct, fresh_stream(), batch, args.seconds, min(8, args.connections))
                    print(f"{'moto alone':<30} batch {batch:>2}: {ceiling['calls_per_s']:8.1f} PutRecords/s "
                          f"{ceiling['events_per_s']:9.1f} records/s  p50 {ceiling['p50_ms']:7.1f} ms  "
                          f"p99 {ceiling['p99_ms']:7.1f} ms", flush=True)
                label = f"batch_{batch}" if mode == "fresh" else f"resent_batch_{batch}"
                ratios[label] = ratio(results["gateway"], results["ingest-server"])
                ratios[label]["cpu_us_per_event"] = {
                    name: {"server": round(result["server_cpu_us_per_event"]),
                           "moto": round(result["moto_cpu_us_per_event"])} for name, result in results.items()}
                if "gateway, no group commit" in results:
                    ratios[label]["group_commit_gain"] = round(
                        results["gateway"]["events_per_s"]
                        / max(results["gateway, no group commit"]["events_per_s"], 1e-9), 2)
                    ratios[label]["gateway_no_group_commit_events_per_s"] = round(
                        results["gateway, no group commit"]["events_per_s"])
        print(json.dumps({"gateway_over_ingest_server": ratios, "target": {"events_per_s": ">= 3", "p99": "< 1"}}))
    finally:
        if gateway_started:
            subprocess.run([str(BIN / "pistats"), "services", "stop", "gateway"], env=env, capture_output=True)
        for process in [server, *reversed(processes)]:
            if process is not None:
                process.terminate()
                process.wait(timeout=20)
                if process.stderr:
                    process.stderr.close()
        delete_matching(store, f"{prefix}:*")
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
