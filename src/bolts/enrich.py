"""Enrich bolt: parse and validate each record of a batch, then geo, device and bots.

Input: the spout's ``["bucket", "records"]`` (``pistats.kinesis.microbatch``), fields-grouped on
the bucket. Output: ``["bucket", "events"]`` on the default stream (the bucket so the sessions
bolt can be fields-grouped the same way: shuffling would let one user's events overtake each
other between parallel tasks, and sessions depend on their order), ``["rejects"]`` on
``rejects``; each a list of rows packed by ``pistats.wire``. Both are anchored, so a reject is
acked only once the sink has stored it.

Parsing and the stateless enrichments share one bolt (as Flink chains operators): a hop between
them would cost every event a JSON encode and decode in each process and a pass through the JVM,
about a tenth of the topology's CPU (benchmarks/e2e.py), and buy nothing, as neither holds state.
Settings: topology option ``pistats.enrich`` (see docs/enrichment.md).
"""

import os

from streamparse import Bolt, Stream

from pistats.enrich.chain import Chain
from pistats.enrich.event import to_wire_batch
from pistats.enrich.parse import records_from_batch

REJECTS_STREAM = "rejects"


class EnrichBolt(Bolt):
    outputs = [Stream(fields=["bucket", "events"]), Stream(fields=["rejects"], name=REJECTS_STREAM)]

    def initialize(self, storm_conf, context):
        self.chain = Chain.from_options(storm_conf, os.environ, sessions=False)

    def process(self, tup):
        bucket, records = tup.values
        events, rejects = self.chain.run(records_from_batch(records))
        if events:
            self.emit([bucket, to_wire_batch(events)])
        if rejects:
            self.emit([to_wire_batch(rejects)], stream=REJECTS_STREAM)
