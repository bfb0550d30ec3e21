"""Kinesis spout: a thin adapter from Storm's spout calls to :class:`pistats.kinesis.consumer.Consumer`.

Settings come from the topology conf (``pistats.kinesis.*``, see docs/spout.md); credentials from
the AWS default chain. ``next_tuple`` emits at most ``emit_batch`` records and never blocks:
fetching and checkpointing run on the consumer's own threads.
"""

import json
from datetime import datetime, timezone

from streamparse import Spout, Stream

from pistats.kinesis.config import KinesisConfig
from pistats.kinesis.consumer import RECORD_FIELDS, build_consumer, dead_letter_reject, task_position, tuple_values

REJECTS_STREAM = "rejects"


def _serialize(message: dict) -> str:
    return json.dumps(message) + "\nend\n"


class KinesisSpout(Spout):
    outputs = [Stream(fields=RECORD_FIELDS), Stream(fields=["reject"], name=REJECTS_STREAM)]
    consumer_factory = staticmethod(build_consumer)  # tests substitute a recorded stream

    def initialize(self, storm_conf, context):
        config = KinesisConfig.from_topology_conf(storm_conf)
        self.batch = config.emit_batch
        self.consumer = self.consumer_factory(config, *task_position(context))
        self.consumer.start()
        if self.serializer.__class__.__name__ == "JSONSerializer":
            # pystorm builds a new simplejson encoder for every message; the stdlib's cached C
            # encoder writes the same JSON about twice as fast, and every tuple, ack and sync
            # passes through here (see benchmarks/spout_emit.py).
            self.serializer.serialize_dict = _serialize

    def next_tuple(self):
        for delivery in self.consumer.poll(self.batch):
            if delivery.dead_letter_reason is None:
                self.emit(tuple_values(delivery.record), tup_id=delivery.message_id)
            else:
                reject = dead_letter_reject(delivery, datetime.now(timezone.utc))
                self.emit([reject], tup_id=delivery.message_id, stream=REJECTS_STREAM)

    def ack(self, tup_id):
        self.consumer.ack(tup_id)

    def fail(self, tup_id):
        self.consumer.fail(tup_id)
