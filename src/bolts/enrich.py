"""Enrich bolt: the whole enrichment chain on each batch of records.

Parse and validate, geo, device, bots, then sessions from per-user state in Redis: the same
chain as ``pistats enrich`` (``pistats.enrich.chain.Chain.run``).

Input: the spout's ``["bucket", "records"]`` (``pistats.kinesis.spout_tuples``), fields-grouped on
the bucket, so one task owns a user: per-user order and session state stay consistent with any
parallelism. Output: ``["events"]``, the complete enriched events, and ``["rejects"]`` on stream
``rejects``; each a batch packed by column (``pistats.enrich.event.to_wire_batch``), anchored,
so the batch is acked only once the sink has stored them.

One bolt rather than a chain of them (as Flink chains operators): a hop between stages cost
every event a JSON encode and decode in two processes and a pass through the JVM, about a tenth
of the topology's CPU per hop (benchmarks/e2e.py), and a second hop grouped on the same bucket
would only repeat the first. Acks are manual: when Redis stays unavailable past the sessions'
outage budget the tuple fails (the spout replays its records) and nothing is emitted for it; the
bolt stays up and redis-py reconnects on the next tuple. Replays get the fields they got before.
Settings: topology options ``pistats.enrich`` and ``pistats.redis.url`` (see docs/enrichment.md).
"""

import logging
import os

from streamparse import Bolt, Stream

from pistats.enrich.chain import Chain
from pistats.enrich.event import to_wire_batch
from pistats.enrich.parse import records_from_batch
from pistats.enrich.sessions import SessionConflict
from pistats.heap import settle_after_startup
from pistats.redisconn import REDIS_ERRORS

log = logging.getLogger(__name__)

REJECTS_STREAM = "rejects"


class EnrichBolt(Bolt):
    outputs = [Stream(fields=["events"]), Stream(fields=["rejects"], name=REJECTS_STREAM)]
    auto_ack = False

    def initialize(self, storm_conf, context):
        self.chain = Chain.from_topology_conf(storm_conf, os.environ, sessions=True)
        settle_after_startup()

    def process(self, tup):
        try:
            events, rejects = self.chain.run(records_from_batch(tup.values[1]))
        except (*REDIS_ERRORS, SessionConflict) as error:
            log.warning("sessions: state not updated, failing tuple %s: %s", tup.id, error)
            self.fail(tup)
            return
        if events:
            self.emit([to_wire_batch(events)], anchors=[tup])
        if rejects:
            self.emit([to_wire_batch(rejects)], anchors=[tup], stream=REJECTS_STREAM)
        self.ack(tup)
