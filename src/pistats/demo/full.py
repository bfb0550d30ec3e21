"""``pistats demo --full``: the whole system in one run, ending with figures an oracle predicts.

1. Redis, kinesis-local and PostgreSQL (the registry) started if they are not running; the
   registry migrated; a fresh stream, a write key of a client of this run's own, and the gateway
   (``pistats services start gateway``: nginx in front of the ingest on gunicorn, with the
   registry on) on a port and state folder of this run's own;
2. generated SDK traffic (:mod:`pistats.generate.sdk`) POSTed through the gateway as the SDKs
   would (keep-alive connections, 429s and 503s waited out and retried, some requests resent);
3. the real topology (``sparse run -e local``) until every record is committed, then stopped
   (chdb allows one process per data path), and the report;
4. a campaign to a segment of the busiest property (``sessions_at_least``) through the local FCM
   (:class:`pistats.testing.fcm.LocalFcm`), some tokens scripted gone;
5. the users a push reached and who click: their ``notification_click`` (the campaign id) and
   landing page view, through the gateway, then the topology again;
6. the campaign's stats from the store.

:func:`run_full_demo` returns one dict: what was measured (store, registry, campaign stats) next
to what :func:`pistats.generate.sdk.expected_outcome` says a correct system produces.
Everything the run started is stopped, and what it created in Redis and Kinesis deleted, also
when it fails; the store (a fresh chdb folder by default) and the registry rows of its client stay
for inspection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from pistats.demo.runner import DemoRun, Pipeline
from pistats.errors import ServiceError
from pistats.generate.sdk import SdkRequest, SdkTraffic, SdkTrafficConfig, expected_outcome, sdk_traffic
from pistats.localenv import services as local_services
from pistats.redis_keys import delete_matching

# The figures the final line holds and the oracle predicts.
COMPARED = ("users", "events", "duplicates", "subscriptions", "targeted", "sent", "invalidated", "clicked")
RETRIED_STATUSES = frozenset({429, 502, 503, 504})
# A unix socket's path must fit in 108 bytes (sun_path); gunicorn's lives in the gateway's state.
SOCKET_PATH_MAX = 100


class Listener(Protocol):
    """What the run tells its caller: stage lines, text to show (the report, the stats) and
    counters (``counter(name, total)`` gives a callable taking the count done so far)."""

    def stage(self, text: str) -> None: ...

    def show(self, text: str) -> None: ...

    def counter(self, name: str, total: int) -> AbstractContextManager[Callable[[int], None]]: ...


class Quiet:
    def stage(self, text: str) -> None:
        pass

    def show(self, text: str) -> None:
        pass

    @contextmanager
    def counter(self, name: str, total: int) -> Iterator[Callable[[int], None]]:
        yield lambda done: None


@dataclass(frozen=True)
class FullDemoSettings:
    traffic: SdkTrafficConfig = field(default_factory=SdkTrafficConfig)
    store_url: str | None = None    # default: a fresh chdb folder under .pistats/demo/<run>/
    min_sessions: int = 2           # the campaign's segment: sessions_at_least=N
    senders: int = 4                # SDK connections posting at once
    timeout_s: float = 600.0        # for each topology run to commit everything
    title: str = "We kept your place"
    body: str = "Pick up where you left off"
    rate: float = 200.0             # campaign sends per second

    def __post_init__(self):
        if self.min_sessions < 1:
            raise ValueError("min_sessions must be >= 1")
        if self.senders < 1:
            raise ValueError("senders must be >= 1")


# -- the gateway ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class GatewayProcess:
    """The gateway as ``pistats services start|stop gateway`` runs it, with a state folder and a
    port of its own (so a gateway the user runs, on another stream, is left alone), putting into
    this run's stream with the registry on.

    The command runs as a process of its own: the services read their state folder and settings
    from the environment, which this process must not change for them."""

    def __init__(self, state: Path, port: int, environment: dict[str, str]):
        self.state, self.port = state, port
        self.environment = {**environment, "PISTATS_STATE_DIR": str(state), "PISTATS_GATEWAY_PORT": str(port)}
        self.started = False

    @classmethod
    def for_run(cls, home: Path, *, stream: str, kinesis_endpoint: str, redis_url: str, key_prefix: str,
                registry_url: str) -> "GatewayProcess":
        state = home / "gateway"
        if len(str(state / "gateway-ingest" / "ingest.sock")) > SOCKET_PATH_MAX:
            state = Path(tempfile.mkdtemp(prefix="pistats-gw-"))
        state.mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            "PISTATS_INGEST_STREAM": stream,
            "PISTATS_INGEST_ENDPOINT_URL": kinesis_endpoint,
            "PISTATS_INGEST_REGION": "us-east-1",
            "PISTATS_REDIS_URL": redis_url,
            "PISTATS_INGEST_KEY_PREFIX": key_prefix,
            "PISTATS_REGISTRY_URL": registry_url,
        }
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            environment.setdefault(name, "pistats-local-emulator")
        return cls(state, free_port(), environment)

    def _services(self, action: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pistats.cli.main", "services", action, "gateway"],
                              env=self.environment, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self.started = True  # stop() is due whatever start() got to
        result = self._services("start")
        if result.returncode != 0:
            raise ServiceError(f"the gateway did not start (state: {self.state}): "
                               f"{(result.stdout + result.stderr).strip()[-1500:]}")

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        result = self._services("stop")
        if result.returncode != 0:
            raise ServiceError(f"the gateway did not stop (state: {self.state}): {result.stderr.strip()[-500:]}")


# -- the SDKs ---------------------------------------------------------------------------------------

@dataclass
class SendTotals:
    """``accepted``: distinct events the ingest accepted; ``duplicates``: events of resent copies
    answered ``duplicate``; ``requests``: HTTP requests made (resends and retries included);
    ``retried``: answers waited out (429 from the gateway's per-key limit, 502-504)."""

    requests: int = 0
    accepted: int = 0
    duplicates: int = 0
    retried: int = 0

    def add(self, other: "SendTotals") -> None:
        for name in ("requests", "accepted", "duplicates", "retried"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class SdkSender:
    """POSTs :class:`SdkRequest` s to ``/v1/events`` as the SDKs do: one keep-alive connection
    per sender, a user's requests always on the same sender (so in the user's order), the
    ``Retry-After`` of a 429 or 503 waited out and the same body sent again (event ids make it
    idempotent). Any other answer than 200 is a :class:`ServiceError`: the traffic is valid."""

    def __init__(self, host: str, port: int, key: str, *, senders: int = 4, attempts: int = 10,
                 sleep: Callable[[float], None] = time.sleep):
        self.host, self.port, self.key = host, port, key
        self.senders, self.attempts, self._sleep = senders, attempts, sleep

    def send(self, requests: Sequence[SdkRequest], on_progress: Callable[[int], None] | None = None) -> SendTotals:
        lanes: list[list[SdkRequest]] = [[] for _ in range(self.senders)]
        for request in requests:
            lanes[zlib.crc32(request.user_id.encode()) % self.senders].append(request)
        totals, lock, failures = SendTotals(), threading.Lock(), []
        done = [0]

        def run(lane: list[SdkRequest]) -> None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                for request in lane:
                    result = self._deliver(connection, request)
                    with lock:
                        totals.add(result)
                        done[0] += 1
                        if on_progress is not None:
                            on_progress(done[0])
            except BaseException as error:  # reported by send()
                failures.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=run, args=(lane,), name=f"sdk-{n}") for n, lane in enumerate(lanes)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        return totals

    def _deliver(self, connection: http.client.HTTPConnection, request: SdkRequest) -> SendTotals:
        totals = SendTotals()
        body = request.body()
        headers = {"Content-Type": "application/json", "X-Pistats-Key": self.key}
        if request.user_agent:
            headers["User-Agent"] = request.user_agent
        answer, accepted = self._post(connection, body, headers, totals)
        totals.accepted = len(accepted)
        if request.resend:
            answer, _ = self._post(connection, body, headers, totals)
            totals.duplicates = sum(1 for result in answer["results"] if result["status"] == "duplicate")
        return totals

    def _post(self, connection: http.client.HTTPConnection, body: bytes, headers: dict,
              totals: SendTotals) -> tuple[dict, set[str]]:
        """The body's final answer (a 200) and the ids of its events accepted on the way: a
        503's events accepted before the retry come back ``duplicate`` in the retry's answer."""
        accepted: set[str] = set()
        for attempt in range(1, self.attempts + 1):
            totals.requests += 1
            try:
                connection.request("POST", "/v1/events", body, headers)
                response = connection.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()  # reconnects on the next request
                totals.retried += 1
                self._sleep(min(2.0, 0.1 * attempt))
                continue
            try:
                answer = json.loads(raw) if raw else {}
            except ValueError:
                answer = {}
            accepted.update(result["event_id"] for result in answer.get("results", [])
                            if result.get("status") == "accepted")
            if response.status == 200:
                return answer, accepted
            if response.status in RETRIED_STATUSES:
                totals.retried += 1
                self._sleep(_retry_after(response.getheader("Retry-After")))
                continue
            raise ServiceError(f"the gateway answered {response.status}: {raw[:500].decode(errors='replace')}")
        raise ServiceError(f"the gateway did not take a request after {self.attempts} attempts")


def _retry_after(value: str | None) -> float:
    try:
        return min(10.0, max(0.05, float(value)))
    except (TypeError, ValueError):
        return 1.0


# -- the run ----------------------------------------------------------------------------------------

def _run_topology(pipeline: Pipeline, name: str, timeout_s: float, listener: Listener) -> float:
    """The topology on a local Storm until every record of the stream is committed; stopped
    (every process of it gone) before this returns or raises. Returns the seconds it took."""
    layout = pipeline.read_layout()
    topology = pipeline.start_local(name)
    try:
        with listener.counter(f"{name} committed", layout.total) as update:
            return pipeline.wait_until_committed(topology, timeout_s, update)
    finally:
        topology.stop()


def _registry_setup(registry_url: str | None):
    """The registry's config (``PISTATS_REGISTRY_URL``, else the local PostgreSQL), migrated."""
    import psycopg

    from pistats.registry.config import RegistryConfig, local_url
    from pistats.registry.migrations import migrate

    config = RegistryConfig.from_env(url=registry_url) or RegistryConfig(local_url(os.environ))
    with psycopg.connect(config.url, **config.connect_kwargs()) as conn:
        migrate(conn)
    return config


def active_subscriptions(config, client_id: str) -> int:
    """The client's active push subscriptions in the registry, every property."""
    import psycopg

    with psycopg.connect(config.url, **config.connect_kwargs()) as conn:
        (count,) = conn.execute("SELECT count(*) FROM push_subscriptions WHERE client_id = %s AND status = 'active'",
                                (client_id,)).fetchone()
    return int(count)


def stored_counts(store, client_id: str) -> dict[str, int]:
    """Distinct users and events of the client in the store."""
    from pistats.store.schema import EVENTS, quote

    ((users, events),) = store.query(f"SELECT uniqExact(user_id), uniqExact(event_id) FROM {store.database}.{EVENTS} "
                                     f"WHERE client_id = {quote(client_id)}")
    return {"users": int(users), "events": int(events)}


async def _send_campaign(campaign, ledger, registry, store, fcm_config, concurrency: int):
    from pistats.push.campaign import CampaignRunner, CampaignSettings
    from pistats.push.fcm import FcmClient

    async with FcmClient(dataclasses.replace(fcm_config, max_connections=concurrency)) as fcm:
        runner = CampaignRunner(ledger=ledger, registry=registry, store=store, fcm=fcm,
                                now=lambda: datetime.now(timezone.utc), clock=time.monotonic,
                                settings=CampaignSettings(concurrency=concurrency))
        return await runner.run(campaign)


def run_campaign(traffic: SdkTraffic, *, property_id: str, segment: str, registry_config, store,
                 home: Path, settings: FullDemoSettings, now: Callable[[], datetime]):
    """Sends the campaign through a local FCM scripted from the traffic's token fates; returns
    the runner's result and the sha256 hex of the tokens FCM accepted it for."""
    from pistats.push.fcm import FcmConfig
    from pistats.push.ledger import CampaignSpec, Ledger
    from pistats.registry.store import Registry
    from pistats.testing.fcm import LocalFcm

    spec = CampaignSpec(client_id=traffic.client_id, property_id=property_id, title=settings.title,
                        body=settings.body, url=f"https://{traffic.domains[property_id]}/?from=push",
                        segment=segment, rate=settings.rate)
    with ExitStack() as stack:
        fcm = stack.enter_context(LocalFcm(script=traffic.fcm_script()))
        # The local FCM's throwaway service account (its private key): gone with the server.
        credentials = home / "fcm-service-account.json"
        stack.callback(credentials.unlink, missing_ok=True)
        fcm_config = FcmConfig(endpoint=fcm.url, credentials_path=fcm.write_credentials(credentials))
        ledger = Ledger.from_config(registry_config)
        stack.callback(ledger.close)
        registry = Registry.for_lambda(registry_config)
        stack.callback(registry.close)
        campaign = ledger.create(spec, now())
        result = asyncio.run(_send_campaign(campaign, ledger, registry, store, fcm_config, concurrency=20))
        delivered = {call["token_sha256"] for call in fcm.calls() if call["status"] == 200}
    if result.state != "done":
        raise ServiceError(f"campaign {result.campaign_id} ended {result.state}: {result.reason}")
    return result, delivered, spec.url


def run_full_demo(settings: FullDemoSettings = FullDemoSettings(), listener: Listener = Quiet(), *,
                  now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> dict:
    """Runs the whole system once (see the module docstring); returns the summary: the
    :data:`COMPARED` figures as measured, ``expected`` (the oracle's), the campaign's stats and
    timings."""
    from pistats.ingest.keys import WriteKeyStore
    from pistats.kinesis import admin
    from pistats.push.results import campaign_stats, render_campaigns
    from pistats.store.backends import open_store
    from pistats.store.report import ReportScope, build_report, render_text

    started = time.monotonic()
    ports = local_services.Ports.from_env()
    table = local_services.services(ports)
    # The registry is PISTATS_REGISTRY_URL's, else the local PostgreSQL's.
    needed = ("redis", "kinesis") if os.environ.get("PISTATS_REGISTRY_URL") else ("redis", "kinesis", "postgres")
    for name in needed:
        if table[name].start():
            listener.stage(f"started {name} on 127.0.0.1")
    registry_config = _registry_setup(None)
    redis_url, kinesis_endpoint = f"redis://127.0.0.1:{ports.redis}/0", f"http://127.0.0.1:{ports.kinesis}"
    run = DemoRun.new(settings.store_url)
    client_id = f"demo-{run.run_id}"
    key_prefix = f"pistats-demo-{run.run_id}"
    pipeline = Pipeline(run, redis_url, kinesis_endpoint)
    pipeline.logs.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    with ExitStack() as cleanup:
        admin.create_stream(pipeline.client, run.stream, 2)
        cleanup.callback(pipeline.delete_stream)
        cleanup.callback(pipeline.delete_redis_state)
        key, _ = WriteKeyStore(pipeline.redis, key_prefix, cache_seconds=0).create(client_id)
        cleanup.callback(delete_matching, pipeline.redis, f"{key_prefix}:*")

        traffic = sdk_traffic(settings.traffic, client_id, now())
        property_id = traffic.campaign_property
        segment = f"sessions_at_least={settings.min_sessions}"
        expected = expected_outcome(traffic, property_id=property_id, min_sessions=settings.min_sessions)

        gateway = GatewayProcess.for_run(pipeline.logs, stream=run.stream, kinesis_endpoint=kinesis_endpoint,
                                         redis_url=redis_url, key_prefix=key_prefix, registry_url=registry_config.url)
        if gateway.state.parent != pipeline.logs:
            cleanup.callback(shutil.rmtree, gateway.state, True)
        cleanup.callback(gateway.stop)
        listener.stage(f"starting the gateway on 127.0.0.1:{gateway.port} (state: {gateway.state})")
        gateway.start()
        sender = SdkSender("127.0.0.1", gateway.port, key, senders=settings.senders)

        listener.stage(f"client {client_id}: {len(traffic.users)} users' SDKs post {len(traffic.requests)} "
                       f"requests through the gateway into stream {run.stream}")
        mark = time.monotonic()
        with listener.counter("requests", len(traffic.requests)) as update:
            sent_traffic = sender.send(traffic.requests, update)
        timings["traffic_s"] = time.monotonic() - mark

        listener.stage(f"running the topology on a local Storm (logs: {pipeline.logs})")
        timings["topology_s"] = _run_topology(pipeline, "topology", settings.timeout_s, listener)

        with ExitStack() as opened:
            store = opened.enter_context(open_store(run.store_url))
            listener.show(render_text(build_report(store, ReportScope(client_id=client_id))))
            subscriptions = active_subscriptions(registry_config, client_id)
            listener.stage(f"campaign to {property_id}, segment {segment}, through the local FCM")
            mark = time.monotonic()
            result, delivered, url = run_campaign(traffic, property_id=property_id, segment=segment,
                                                  registry_config=registry_config, store=store,
                                                  home=pipeline.logs, settings=settings, now=now)
            timings["campaign_s"] = time.monotonic() - mark

        clicks = traffic.click_requests(result.campaign_id, delivered, now(), url)
        listener.stage(f"{len(clicks)} of the {len(delivered)} users reached click: through the gateway "
                       "and the topology")
        with listener.counter("clicks", len(clicks)) as update:
            sent_clicks = sender.send(clicks, update)
        gateway.stop()
        timings["clicks_topology_s"] = _run_topology(pipeline, "topology-clicks", settings.timeout_s, listener)

    with open_store(run.store_url) as store:
        (stats,) = campaign_stats(store, client_id, result.campaign_id)
        measured = stored_counts(store, client_id)
    listener.show(render_campaigns([stats]))
    summary = {
        **measured,
        "duplicates": sent_traffic.duplicates,
        "subscriptions": subscriptions,
        **{figure: stats[figure] for figure in ("targeted", "sent", "invalidated", "clicked")},
        "failed": stats["failed"],
        "unknown": stats["unknown"],
        "ctr": stats["ctr"],
        "expected": expected,
        "matches": None,
        "campaign_id": result.campaign_id,
        "client_id": client_id,
        "property_id": property_id,
        "segment": segment,
        "seed": settings.traffic.seed,
        "requests": sent_traffic.requests + sent_clicks.requests,
        "retried": sent_traffic.retried + sent_clicks.retried,
        "accepted": sent_traffic.accepted + sent_clicks.accepted,
        "stream": run.stream,
        "store": run.store_url,
        **{name: round(seconds, 1) for name, seconds in timings.items()},
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    summary["matches"] = all(summary[figure] == expected[figure] for figure in COMPARED)
    return summary
