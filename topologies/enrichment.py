"""The pistats enrichment topology: Kinesis -> parse, geo, device, bots, sessions -> ClickHouse.

    kinesis ─fields(bucket)─> enrich ──shuffle──> sink
       │                        │                  ▲
       └──rejects───────────────┴──rejects─────────┘

One tuple per micro-batch: the records of one bucket of users (``crc32(partition key) mod
buckets``, see ``pistats.kinesis.microbatch``) from one poll of the spout, anchored end to end:
a tuple tree completes only when the sink has stored every event (and reject) of the batch, and
only then does the spout ack the batch's records, so its checkpoint may pass them. The enrich
bolt (the whole chain, sessions included) is fields-grouped on the bucket, and a user's bucket
never changes, so one task owns a user and sees its events in shard order even with parallel
tasks: a shuffle would let them overtake each other, and sessions depend on order.

Parallelism per environment (``sparse run -e local`` / ``sparse submit -e cluster``); the sink
stays at one task where the store is embedded chdb (one writer per data path) and may grow with
a ClickHouse server.
"""

from bolts.enrich import EnrichBolt
from bolts.sink import StoreSinkBolt
from spouts.kinesis import KinesisSpout
from streamparse import Grouping, Topology


class Enrichment(Topology):
    config = {
        # In-flight batch tuples per spout task (Storm's own bound, on top of max_uncommitted's
        # bound on records): enough to fill the sink's batches (5,000 rows or 1 s) without
        # waiting on its flushes.
        "topology.max.spout.pending": 500,
        # Storm's multilang JSON, with a faster writer for what the JVM sends the Python
        # components (jvm/pistats/multilang/FastJsonSerializer.java; the same JSON values sent,
        # the same Java values read).
        "topology.multilang.serializer": "pistats.multilang.FastJsonSerializer",
        # Above a sink row's worst wait: max_age 1 s and a tick, then the insert in flight ahead
        # of its batch and its own, each up to the retry budget 10 s + one attempt's timeouts 13 s.
        "topology.message.timeout.secs": 90,
        # Python subprocesses must answer heartbeats within this; the sink inserts < 30 s.
        "topology.subprocess.timeout.secs": 60,
        "topology.shellbolt.max.pending": 1000,
        # An idle executor thread sleeps (1 ms) at once instead of first spinning and parking
        # a thousand times: the Python components need those cycles on a small machine. Measured
        # (benchmarks/e2e.py): the JVM's CPU per record falls by about 40%; a batch waits at most
        # 1 ms more per hop.
        "topology.bolt.wait.progressive.level1.count": 0,
        "topology.bolt.wait.progressive.level2.count": 0,
        "topology.backpressure.wait.progressive.level1.count": 0,
        "topology.backpressure.wait.progressive.level2.count": 0,
        # ... and sleeps 10 ms rather than 1: an idle spout executor asks the spout process for
        # tuples (a "next" and its "sync", JSON both ways) 100 times a second instead of 1,000,
        # and each idle bolt executor wakes as often. Measured after a drain (benchmarks/compare.py's
        # topology, loaded machine): idle CPU of the JVM 21.5 -> 11.0 % of a core, of the spout
        # 11.4 -> 4.9 %; a fixed cost that every record paid at low rates. A tuple or an ack
        # waits at most 10 ms more per hop when its executor was idle; a busy one never sleeps.
        # The spout's executor sleeps 20 ms: under load it still comes back empty-handed most
        # times (a poll takes up to emit_batch records at once, then waits on its acks), and its
        # acks wait in the JVM at most 20 ms, far below the checkpoint interval. Four A/B pairs of
        # compare.py's topology leg: the pipeline's CPU per record lower in every pair (6-16 us),
        # events/s higher in every pair. The bolts keep 10 ms: a batch waits at each idle hop
        # (25 ms for spout and bolts together cost events/s, docs/performance.md).
        "topology.spout.wait.progressive.level3.sleep.millis": 20,
        "topology.bolt.wait.progressive.level3.sleep.millis": 10,
    }

    kinesis = KinesisSpout.spec(par={"local": 1, "cluster": 2, "prod": 4})
    # The whole chain: parse, validate, geo, device, bots (CPU-bound) and sessions (one task owns
    # a user: per-user order and the session state stay consistent).
    # Tasks are fixed at submit and `storm rebalance` can give a component at most one executor
    # per task, so the cluster environment has room to go from 2 to 4 executors. Each task is a
    # Python process of its own, whatever the executors (threads) that drive them; the fields
    # grouping maps a bucket to a task by the number of tasks, so a rebalance never moves a user
    # to another task (docs/scaling.md). Without a value (local, prod) tasks = executors.
    # Local runs get two: the chain is the topology's largest CPU consumer, and one process left
    # the second core half idle (benchmarks/compare.py, one quiet run each, side by side: 0.89 of
    # the in-process rate with two against 0.73 with one, CPU per record 1.16x against 1.87x).
    enrich = EnrichBolt.spec(
        inputs={kinesis: Grouping.fields("bucket")}, par={"local": 2, "cluster": 2, "prod": 8},
        config={"topology.tasks": {"cluster": 4}},  # per environment: storm_compat.sparse
    )
    sink = StoreSinkBolt.spec(
        inputs={
            enrich: Grouping.SHUFFLE,
            enrich["rejects"]: Grouping.SHUFFLE,
            kinesis["rejects"]: Grouping.SHUFFLE,
        },
        par={"local": 1, "cluster": 1, "prod": 2},
        # The sink holds tuples until their rows are stored: Storm must let it hold a whole
        # insert's worth (ShellBolt stops sending at this many unacked tuples; the default of 100
        # would cap inserts at 100 tuples, as small as 100 rows under light load).
        config={"topology.tick.tuple.freq.secs": 1, "topology.shellbolt.max.pending": 10000},
    )
