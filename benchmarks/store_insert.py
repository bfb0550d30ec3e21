"""Throughput of the sink's insert path into clickhouse-server and chdb, and of the sink bolt.

Usage: .venv/bin/python benchmarks/store_insert.py [--rows 100000] [--batch 5000] [--server URL] [--bolt-tuples 20000]
       [--realistic 6000 [--redis-url URL]]

Prints, per backend, rows/s for (1) ``store.insert_events`` alone on prepared 5,000-row batches and
(2) the whole sink path (event dicts as they arrive over multilang -> rows -> batches -> inserts),
then rows/s of the bolt driven through the multilang protocol into chdb, fed as the topology
feeds it: micro-batch tuples of 100 events packed by ``pistats.wire`` (JSON in, acks out).
The server benchmark uses a throwaway database that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pistats.redis_keys import delete_matching  # noqa: E402
from pistats.store.backends import open_store  # noqa: E402
from pistats.store.config import SinkConfig  # noqa: E402
from pistats.store.inflight import InsertPipeline  # noqa: E402
from pistats.store.rows import EVENT_COLUMNS, event_row  # noqa: E402
from pistats.store.schema import columns_sql, migrate  # noqa: E402
from pistats.store.sink import Sink, tuple_payloads  # noqa: E402

BATCH = 5000
START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def make_events(count: int, run: str) -> list[dict]:
    events = []
    for index in range(count):
        when = (START + timedelta(seconds=index * 7)).isoformat()
        events.append({
            "client_id": f"client-{index % 3}", "property_id": f"prop-{index % 5}", "event_id": f"{run}-{index}",
            "event_type": ("register", "subscribe", "page_view")[index % 3], "user_id": f"user-{index % 20000}",
            "event_time": when, "received_at": when, "ip": f"203.0.{index % 256}.0",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            "push_token": None, "notification_id": None, "page_url": f"https://example.com/p/{index % 1000}",
            "referrer": "https://search.example/", "locale": "de-DE", "sdk_name": "pistats-js", "sdk_version": "1.2.0",
            "context_json": '{"screen":"1920x1080"}', "properties_json": "{}", "clock_skew": False,
            "geo_country": ("DE", "FR", "US")[index % 3], "geo_country_name": "Germany", "geo_region": "BE",
            "geo_city": f"city-{index % 300}", "geo_postal": "10115", "geo_lat": 52.5, "geo_lon": 13.4,
            "geo_accuracy_km": 20, "geo_timezone": "Europe/Berlin", "geo_continent": "EU", "geo_asn": 3320,
            "geo_org": "DTAG", "ua_browser": "Firefox", "ua_browser_version": "120", "ua_os": "Linux",
            "ua_os_version": "", "ua_device_family": "Other", "ua_device_brand": "", "ua_device_model": "",
            "device_type": "desktop", "is_touch": False, "is_bot": False, "session_id": f"s-{index // 10}",
            "session_index": 1, "session_event_index": index % 10, "is_new_user": index % 10 == 0,
            "first_seen_at": when, "enrich_errors": [], "kinesis_shard": f"shardId-{index % 4:012d}",
            "kinesis_seq": str(49600000000000000000 + index), "kinesis_subseq": 0, "processed_at": when,
        })
    return events


def bench_backend(url: str, events: list[dict], batch: int) -> dict:
    store = open_store(url, env={})
    try:
        migrate(store)
        started = time.perf_counter()
        rows = [event_row(event, 256 * 1024)[0] for event in events]
        convert_s = time.perf_counter() - started
        # Distinct event ids per pass: equal keys would collapse in background merges and make
        # the final count meaningless.
        piped_rows = [event_row(dict(event, event_id=event["event_id"] + "-piped"), 256 * 1024)[0] for event in events]
        insert_s, insert_cpu_s = insert_path(store, rows, batch, inserts_in_flight=0)
        piped_s, piped_cpu_s = insert_path(store, piped_rows, batch, inserts_in_flight=1)
        sink = Sink(store, SinkConfig(max_rows=batch, max_age_s=3600))
        second_run = [dict(event, event_id=event["event_id"] + "-sink") for event in events]
        started, cpu_started = time.perf_counter(), time.process_time()
        acked = 0
        for index, event in enumerate(second_run):
            acked += len(sink.add_event(index, event).acked)
        acked += len(sink.flush_all().acked)
        sink_s, sink_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        assert acked == len(events)
        stored = store.query(f"SELECT count() FROM {store.database}.events")[0][0]
        assert stored == 3 * len(events), stored
        null_s, null_cpu_s = insert_path(null_events_table(store), rows, batch, inserts_in_flight=1)
        return {"server": store.server_version, "convert_rows_s": len(rows) / convert_s,
                "null_rows_s": len(rows) / null_s, "null_cpu_rows_s": len(rows) / null_cpu_s,
                "insert_rows_s": len(rows) / insert_s, "insert_cpu_rows_s": len(rows) / insert_cpu_s,
                "piped_rows_s": len(rows) / piped_s, "piped_cpu_rows_s": len(rows) / piped_cpu_s,
                "sink_rows_s": len(events) / sink_s, "sink_cpu_rows_s": len(events) / sink_cpu_s}
    finally:
        if url.startswith("clickhouse"):
            store.execute(f"DROP DATABASE IF EXISTS {store.database}")
            store.execute(f"DROP DATABASE IF EXISTS {store.database}_null")
        store.close()


def null_events_table(store):
    """The same store, aimed at a database whose ``events`` table has the Null engine: the
    backend receives and parses every batch and stores nothing. What the insert path does then
    is the sink's side (encoding, sending, the backend's parsing) without the storage work."""
    database = f"{store.database}_null"
    store.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    store.execute(f"CREATE TABLE IF NOT EXISTS {database}.events ({columns_sql(EVENT_COLUMNS, store.features)}) "
                  "ENGINE = Null")
    aimed = copy.copy(store)
    aimed.database = database
    return aimed


def insert_path(store, rows: list[tuple], batch: int, inserts_in_flight: int) -> tuple[float, float]:
    """Seconds (wall, CPU of this process) for the sink's insert path over prepared row batches:
    each batch encoded in this thread, then sent by the sink's InsertPipeline (on its writer
    thread when ``inserts_in_flight`` is 1, so the next batch is encoded while one is sent)."""
    batches = [rows[offset:offset + batch] for offset in range(0, len(rows), batch)]
    pipeline = InsertPipeline(lambda job: job() or True, inserts_in_flight)
    started, cpu_started = time.perf_counter(), time.process_time()
    for index, rows in enumerate(batches):
        send = store.prepare_insert("events", rows)
        token = f"bench-{inserts_in_flight}-{index}"
        pipeline.submit(lambda send=send, token=token: send(token))
    assert all(stored for _, stored in pipeline.wait_all())
    return time.perf_counter() - started, time.process_time() - cpu_started


BOLT_BATCH = 100
TICK_EVERY_TUPLES = 100


def bench_bolt(url: str, events: list[dict], workdir: str, bolt_class=None) -> tuple[float, float]:
    """Rows per second and per CPU second of this process once the bolt is initialised."""
    from bolts.sink import StoreSinkBolt
    from pistats.wire import pack_rows

    bolt_class = bolt_class or StoreSinkBolt

    def frame(message):
        return (json.dumps(message) + "\nend\n").encode()

    handshake = {"conf": {"pistats.store.url": url, "pistats.sink": {"max_rows": BATCH}},
                 "context": {"taskid": 1, "componentid": "store_sink"}, "pidDir": workdir}
    chunks = [frame(handshake)]
    batches = [events[start:start + BOLT_BATCH] for start in range(0, len(events), BOLT_BATCH)]
    for index, batch in enumerate(batches):
        chunks.append(frame({"id": str(index), "comp": "sessions", "stream": "default", "task": 2,
                             "tuple": [pack_rows(batch)]}))
        # Storm ticks once a second; one tick per 10,000 rows is more often than that at any
        # rate above 10,000 rows/s, and each tick waits for the insert in flight.
        if index % TICK_EVERY_TUPLES == TICK_EVERY_TUPLES - 1:
            chunks.append(frame({"id": f"tick{index}", "comp": "__system", "stream": "__tick", "task": -1, "tuple": [1]}))
    stdout = BytesIO()

    class Timed(bolt_class):
        """Starts the clock once ``initialize`` (opening the store, migrations) is done."""

        def initialize(self, storm_conf, context):
            super().initialize(storm_conf, context)
            self.ready_at, self.cpu_ready_at = time.perf_counter(), time.process_time()

    bolt = Timed(input_stream=BytesIO(b"".join(chunks)), output_stream=stdout, rdb_signal=None)
    # pystorm ends with os._exit() when the process has other threads (the sink's writer
    # thread, chdb's); at the end of this input it must raise SystemExit instead.
    bolt._exit = sys.exit
    try:
        bolt.run()
    except SystemExit:
        pass
    elapsed, cpu_elapsed = time.perf_counter() - bolt.ready_at, time.process_time() - bolt.cpu_ready_at
    acks = stdout.getvalue().count(b'"command": "ack"')
    if acks < len(batches):
        print(f"  {bolt_class.__name__} acked {acks} tuples (ticks included) for {len(batches)} batches; "
              "the rest were still batched when the input ended")
    return len(events) / elapsed, len(events) / cpu_elapsed


def realistic_tuples(events: int, redis_url: str) -> list[list[str]]:
    """Tuples as the enrich bolt emits them: ``pistats generate`` records through the whole chain
    (geo, device, bots, Redis sessions), 60 events to a tuple. About 1.8 KB of JSON per event,
    three distinct times each: heavier than ``make_events``' rows."""
    import redis

    from pistats.enrich.chain import Chain, EnrichConfig
    from pistats.enrich.run import records_from_recording, run_chain
    from pistats.enrich.sessions import SessionConfig
    from pistats.generate.generator import GenerateConfig, generate
    from pistats.wire import pack_rows

    prefix = f"pistats-bench:{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    enriched: list[dict] = []
    try:
        with tempfile.TemporaryDirectory() as workdir:
            generate(GenerateConfig(events=events, shards=2, bad_fraction=0.0, duplicate_fraction=0.0, seed=5),
                     Path(workdir) / "recording")
            chain = Chain.build(EnrichConfig(sessions=SessionConfig(key_prefix=prefix)), redis=client)
            run_chain(chain, records_from_recording(Path(workdir) / "recording"), enriched.append, lambda reject: None)
    finally:
        delete_matching(client, f"{prefix}:*")
    return [[pack_rows(enriched[start:start + 60])] for start in range(0, len(enriched), 60)]


def bench_realistic(url: str, tuples: list[list[str]]) -> tuple[float, float]:
    """Rows per second and CPU microseconds per row (chdb's threads included) of the sink fed the
    enrich bolt's tuples in process, as the bolt feeds it."""
    store = open_store(url, env={})
    try:
        migrate(store)
        sink = Sink(store, SinkConfig())
        rows = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for index, values in enumerate(tuples):
            payloads = tuple_payloads(values)
            rows += len(payloads)
            sink.add_events(index, payloads)
        sink.flush_all()
        return rows / (time.perf_counter() - started), 1e6 * (time.process_time() - cpu_started) / rows
    finally:
        store.close()


def protocol_only_bolt():
    """The multilang protocol alone: a bolt that acks every tuple at once and stores nothing."""
    from streamparse import Bolt

    class AckOnlyBolt(Bolt):
        auto_ack = True

        def process(self, tup):
            pass

    return AckOnlyBolt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--server", default="clickhouse://default@127.0.0.1:9000")
    parser.add_argument("--batch", type=int, default=BATCH, help="rows per insert (default 5000)")
    parser.add_argument("--bolt-tuples", type=int, default=20_000)
    parser.add_argument("--realistic", type=int, default=0, metavar="EVENTS",
                        help="also feed the sink EVENTS generated and enriched events (needs Redis)")
    parser.add_argument("--redis-url", default=os.environ.get("PISTATS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    events = make_events(args.rows, run)
    # The bolt holds one batch at a time; keep the benchmark's own 100k input events out of the
    # cyclic GC's scans so they do not slow down what is measured.
    gc.freeze()
    with tempfile.TemporaryDirectory() as workdir:
        targets = {
            "clickhouse-server": f"{args.server.rstrip('/')}/bench_{run}",
            "chdb": f"chdb://{workdir}/chdb",
        }
        for name, url in targets.items():
            result = bench_backend(url, events, args.batch)
            print(f"{name} {result['server']}: {args.rows} rows, batches of {args.batch}")
            print(f"  insert path, one batch at a time      {result['insert_rows_s']:>10,.0f} rows/s "
                  f"({result['insert_cpu_rows_s']:,.0f} per CPU second of this process)")
            print(f"  insert path, next batch encoded while one is sent "
                  f"{result['piped_rows_s']:>10,.0f} rows/s ({result['piped_cpu_rows_s']:,.0f} per CPU second)")
            print("    (CPU seconds of this process: for chdb they include the engine's own threads)")
            print(f"  the same into a Null table (no storage work)    {result['null_rows_s']:>10,.0f} rows/s "
                  f"({result['null_cpu_rows_s']:,.0f} per CPU second)")
            print(f"  event dict -> row       {result['convert_rows_s']:>10,.0f} rows/s")
            print(f"  whole sink path         {result['sink_rows_s']:>10,.0f} rows/s "
                  f"({result['sink_cpu_rows_s']:,.0f} rows per CPU second)")
        bolt_events = events[: args.bolt_tuples]
        rate, cpu_rate = bench_bolt(f"chdb://{workdir}/bolt", bolt_events, workdir)
        limit, _ = bench_bolt(f"chdb://{workdir}/unused", bolt_events, workdir, protocol_only_bolt())
        print(f"sink bolt via multilang (chdb), tuples of {BOLT_BATCH} events: {rate:,.0f} rows/s, "
              f"{cpu_rate:,.0f} rows per CPU second (an ack-only bolt on the same stream: {limit:,.0f} rows/s)")
        if args.realistic:
            tuples = realistic_tuples(args.realistic, args.redis_url)
            gc.freeze()
            rate, cpu_us = bench_realistic(f"chdb://{workdir}/realistic", tuples)
            print(f"sink in process (chdb), generated and enriched events in tuples of 60: {rate:,.0f} rows/s, "
                  f"{cpu_us:.1f} CPU us per row (chdb's threads included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
