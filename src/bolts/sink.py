"""The ClickHouse sink bolt: stores enriched events and rejects in batches, acks only stored tuples.

Inputs (see docs/store.md):
- default stream of the enrich bolt: one field ``events``, enriched events packed by column
  (``pistats.wire.pack_columns``; datetimes as RFC 3339 text), checked and converted column by
  column without a dict per event;
- stream ``rejects`` (from the enrich bolt and the spout): one field ``rejects``, rejects packed
  by column (the enrich bolt) or by row (``pack_rows``, the spout).

Acks are manual: a tuple is acked after the inserts holding all its rows returned, failed when
one of them could not be stored within the retry budget. Batches flush on size and, driven by tick
tuples (enable ``topology.tick.tuple.freq.secs`` for this component), on age. A plain Bolt rather
than TicklessBatchingBolt, whose flush thread holds a lock that delays heartbeat replies.
"""

from __future__ import annotations

import os

from streamparse import Bolt

from pistats.heap import settle_after_startup
from pistats.status.tasks import SINK, publish_sink, task_publisher
from pistats.store.sink import Settled, sink_from_topology_conf, tuple_payloads

REJECTS_STREAM = "rejects"


class StoreSinkBolt(Bolt):
    auto_ack = False
    auto_fail = False
    outputs = []

    def initialize(self, storm_conf, context):
        self.sink = sink_from_topology_conf(storm_conf, os.environ)
        self.status = task_publisher(storm_conf, SINK, int(context["taskid"]))
        settle_after_startup()

    def process(self, tup):
        payloads = tuple_payloads(tup.values)
        if tup.stream == REJECTS_STREAM:
            self._settle(self.sink.add_rejects(tup.id, payloads))
        else:
            self._settle(self.sink.add_events(tup.id, payloads))

    def process_tick(self, tup):
        self._settle(self.sink.tick())
        publish_sink(self.status, self.sink)
        # Storm's ShellBolt keeps every tuple it sent, ticks included, until acked or failed.
        self.ack(tup)

    def _settle(self, settled: Settled) -> None:
        for tuple_id in settled.acked:
            self.ack(tuple_id)
        for tuple_id in settled.failed:
            self.fail(tuple_id)
