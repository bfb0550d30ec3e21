"""Parse bolt: Kinesis record tuples in, base events (default stream) or rejects (``rejects``) out.

Input: the spout's fields ``shard_id, sequence_number, sub_sequence_number, partition_key,
arrival_ms, data_b64``. Output: ``["event", "client_id", "user_id"]`` on the default stream
(the last two so the enrich bolt can be fields-grouped per user: shuffling would let one user's
events overtake each other between parallel tasks, and sessions depend on their order),
``["reject"]`` on ``rejects`` (each one JSON text, datetimes as RFC 3339 strings: ``pistats.enrich.event.to_wire_text``). Both are anchored, so a
reject is acked only once the sink has stored it.
"""

from streamparse import Bolt, Stream

from pistats.enrich.event import to_wire_text
from pistats.enrich.parse import Parser, record_from_tuple

REJECTS_STREAM = "rejects"


class ParseBolt(Bolt):
    outputs = [Stream(fields=["event", "client_id", "user_id"]), Stream(fields=["reject"], name=REJECTS_STREAM)]

    def initialize(self, storm_conf, context):
        self.parser = Parser()

    def process(self, tup):
        kind, value = self.parser.parse(record_from_tuple(tup.values))
        if kind == "event":
            self.emit([to_wire_text(value), value["client_id"], value["user_id"]])
        else:
            self.emit([to_wire_text(value)], stream=REJECTS_STREAM)
