"""Parse bolt: batches of Kinesis records in, batches of base events and of rejects out.

Input: the spout's ``["bucket", "records"]`` (``pistats.kinesis.microbatch``), fields-grouped on
the bucket. Output: ``["bucket", "events"]`` on the default stream (the bucket so the enrich bolt
can be fields-grouped the same way: shuffling would let one user's events overtake each other
between parallel tasks, and sessions depend on their order), ``["rejects"]`` on ``rejects``; each
list of rows packed (``pistats.wire``, ``pistats.enrich.event.to_wire_batch``). Both are anchored, so
a reject is acked only once the sink has stored it.
"""

from streamparse import Bolt, Stream

from pistats.enrich.event import to_wire_batch
from pistats.enrich.parse import Parser, records_from_batch

REJECTS_STREAM = "rejects"


class ParseBolt(Bolt):
    outputs = [Stream(fields=["bucket", "events"]), Stream(fields=["rejects"], name=REJECTS_STREAM)]

    def initialize(self, storm_conf, context):
        self.parser = Parser()

    def process(self, tup):
        bucket, records = tup.values
        events, rejects = [], []
        for record in records_from_batch(records):
            kind, value = self.parser.parse(record)
            (events if kind == "event" else rejects).append(value)
        if events:
            self.emit([bucket, to_wire_batch(events)])
        if rejects:
            self.emit([to_wire_batch(rejects)], stream=REJECTS_STREAM)
