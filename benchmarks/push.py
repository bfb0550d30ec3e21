"""Push sends per second: the whole campaign runner against the local FCM on loopback.

The local FCM (``python -m pistats.testing.fcm``) runs as a process of its own, so the sender and
the server use different cores. A fresh client gets ``--tokens`` active web subscriptions in the
local registry (PostgreSQL), written with ``Registry.write`` (subscribe events, batches of 100);
one campaign to every one of them (no segment) is then run as ``pistats push send`` runs it,
through the library: ledger claims, paced sends over HTTP/1.1 (``pistats.push.http1``) with
``--concurrency`` in flight, settles into the ledger and ``push_sends`` rows into the store. The store is a temporary chdb
directory (the CLI's default backend, in the sender's process, so its CPU is counted) unless
``--store`` names another. The registry rows and campaigns of the run's client are deleted at the
end.

Reported per run: sends per second (sent / the runner's wall time, from ``run()`` to its
result), CPU microseconds per send of the sender process (getrusage, user + system, during the
run) and of the FCM server process (/proc, the same interval), the share of a core the sender
used (its CPU / wall time) and the load average (these two in the table only). The best run
decides the target; the machine is shared, so every run is printed: on a loaded machine the
sender gets a fraction of a core, and 1e6 / its CPU per send is what one core of its own would
give.

Target (issue 16): at least 2,000 sends/s with 20,000 tokens.

    .venv/bin/python benchmarks/push.py [--tokens 20000] [--runs 3] [--concurrency 100]
        [--rate 20000] [--registry-url URL] [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone

import psycopg

from pistats.push.campaign import CampaignRunner, CampaignSettings
from pistats.push.fcm import FcmClient, FcmConfig
from pistats.push.ledger import CampaignSpec, Ledger
from pistats.registry.config import RegistryConfig, local_url
from pistats.registry.migrations import migrate as migrate_registry
from pistats.registry.store import Registry
from pistats.store.backends import open_store
from pistats.store.schema import migrate as migrate_store

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
PROPERTY = "site-1"
TARGET_SENDS_PER_S = 2000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def start_fcm(workdir: str) -> tuple[subprocess.Popen, str, str]:
    """The local FCM as a process; (process, url, credentials path)."""
    credentials = os.path.join(workdir, "fcm-sa.json")
    process = subprocess.Popen([sys.executable, "-m", "pistats.testing.fcm", "--port", "0",
                                "--credentials-out", credentials], stdout=subprocess.PIPE, text=True)
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise SystemExit(f"the local FCM did not start (printed {url!r})")
    return process, url, credentials


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def subscribe_all(registry: Registry, client_id: str, tokens: int) -> None:
    """``tokens`` users with one active web token each, 100 subscribe events per write."""
    at = (T0 - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    for start in range(0, tokens, 100):
        registry.write(client_id, [{
            "event_id": f"bench-sub-{n}", "type": "subscribe", "property_id": PROPERTY, "user_id": f"user-{n}",
            # FCM web tokens are about 150 characters; the text matters for the request size.
            "push_token": f"bench-{n:07d}-" + "x" * 140, "timestamp": at,
            "context": {"sdk": {"name": "pistats-js", "version": "1.9.2"}},
        } for n in range(start, min(start + 100, tokens))], T0)


def delete_client(url: str, client_id: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM campaigns WHERE client_id = %s", (client_id,))  # sends cascade
        conn.execute("DELETE FROM push_subscriptions WHERE client_id = %s", (client_id,))
        conn.execute("DELETE FROM subscribers WHERE client_id = %s", (client_id,))


async def run_campaign(campaign, ledger, registry, store, fcm_config, settings):
    async with FcmClient(fcm_config) as fcm:
        runner = CampaignRunner(ledger=ledger, registry=registry, store=store, fcm=fcm,
                                now=lambda: datetime.now(timezone.utc), clock=time.monotonic, settings=settings)
        return await runner.run(campaign)


def measure(args, config: RegistryConfig, store, fcm_config: FcmConfig, server_pid: int, client_id: str) -> dict:
    ledger = Ledger.from_config(config)
    registry = Registry.for_lambda(config)
    try:
        campaign = ledger.create(CampaignSpec(client_id=client_id, property_id=PROPERTY, title="Come back",
                                              body="Something new is waiting for you", url="https://example.com/new",
                                              segment=None, rate=args.rate), datetime.now(timezone.utc))
        settings = CampaignSettings(concurrency=args.concurrency)
        server_before, own_before, started = process_cpu_s(server_pid), own_cpu_s(), time.perf_counter()
        result = asyncio.run(run_campaign(campaign, ledger, registry, store, fcm_config, settings))
        elapsed = time.perf_counter() - started
        own, server = own_cpu_s() - own_before, process_cpu_s(server_pid) - server_before
    finally:
        registry.close()
        ledger.close()
    if (result.state, result.sent) != ("done", args.tokens):
        raise SystemExit(f"campaign {result.campaign_id} ended {result.state} with {result.sent} of "
                         f"{args.tokens} sent: {result.as_dict()}")
    return {"sent": result.sent, "seconds": round(elapsed, 3), "sends_per_s": round(result.sent / elapsed, 1),
            "sender_cpu_us_per_send": round(own / result.sent * 1e6, 1),
            "server_cpu_us_per_send": round(server / result.sent * 1e6, 1),
            # The share of one core the sender used: near 1, it is CPU-bound; far below with a high
            # load average, the machine's other work held it back.
            "sender_cores": round(own / elapsed, 2), "load_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20_000, help="active subscriptions, one campaign to all (default 20000)")
    parser.add_argument("--runs", type=int, default=3, help="campaigns, one after another (default 3)")
    parser.add_argument("--concurrency", type=int, default=100, help="sends in flight (default 100)")
    parser.add_argument("--rate", type=float, default=20_000.0, help="the campaign's --rate, sends/s (default 20000)")
    parser.add_argument("--registry-url", default=None, help=f"PostgreSQL (default {local_url()})")
    parser.add_argument("--store", default=None, help="store URL (default a temporary chdb directory)")
    args = parser.parse_args()

    config = RegistryConfig(args.registry_url or local_url())
    with psycopg.connect(config.url, autocommit=True) as conn:
        migrate_registry(conn)
    workdir = tempfile.mkdtemp(prefix="pistats-bench-push-")
    client_id = f"bench-push-{uuid.uuid4().hex[:8]}"
    server, url, credentials = start_fcm(workdir)
    store = None
    try:
        store = open_store(args.store or f"chdb://{workdir}/chdb")
        migrate_store(store)
        fcm_config = FcmConfig.from_env(endpoint=url, credentials=credentials, max_connections=args.concurrency)
        registry = Registry.for_lambda(config)
        try:
            loaded = time.perf_counter()
            subscribe_all(registry, client_id, args.tokens)
        finally:
            registry.close()
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"load {os.getloadavg()[0]:.2f}")
        print(f"{args.tokens} tokens subscribed in {time.perf_counter() - loaded:.1f} s; local FCM at {url} "
              f"(pid {server.pid}); store {store.url.redacted}; registry {config.redacted_url}")
        print(f"campaign: every token, --rate {args.rate:.0f} --concurrency {args.concurrency}; {args.runs} run(s)")
        print(f"{'run':>4}  {'sent':>7}  {'seconds':>8}  {'sends/s':>9}  {'sender CPU/send':>16}  {'FCM CPU/send':>13}"
              f"  {'sender cores':>12}  {'load':>5}")
        runs = []
        for number in range(1, args.runs + 1):
            run = measure(args, config, store, fcm_config, server.pid, client_id)
            shown = dict(run)
            runs.append({key: run.pop(key) for key in list(run) if key not in ("sender_cores", "load_1min")})
            run = shown
            print(f"{number:>4}  {run['sent']:>7}  {run['seconds']:>8.2f}  {run['sends_per_s']:>9,.0f}  "
                  f"{run['sender_cpu_us_per_send']:>13.0f} µs  {run['server_cpu_us_per_send']:>10.0f} µs"
                  f"  {run['sender_cores']:>12.2f}  {run['load_1min']:>5.1f}")
    finally:
        if store is not None:
            store.close()
        server.terminate()
        server.wait(10)
        delete_client(config.url, client_id)
        shutil.rmtree(workdir, ignore_errors=True)
    best = max(run["sends_per_s"] for run in runs)
    print(json.dumps({"tokens": args.tokens, "concurrency": args.concurrency, "rate": args.rate, "runs": runs,
                      "best_sends_per_s": best, "target_sends_per_s": TARGET_SENDS_PER_S,
                      "meets_target": best >= TARGET_SENDS_PER_S}))


if __name__ == "__main__":
    main()
