"""Kinesis spout: a thin adapter from Storm's spout calls to :class:`pistats.kinesis.consumer.Consumer`.

Settings come from the topology conf (``pistats.kinesis.*``, see docs/spout.md); credentials from
the AWS default chain. ``next_tuple`` emits at most ``emit_batch`` records and never blocks:
fetching and checkpointing run on the consumer's own threads.
"""

from datetime import datetime, timezone

from streamparse import Spout, Stream

from pistats.kinesis.config import KinesisConfig
from pistats.kinesis.consumer import RECORD_FIELDS, build_consumer, dead_letter_reject, task_position, tuple_values

REJECTS_STREAM = "rejects"


class KinesisSpout(Spout):
    outputs = [Stream(fields=RECORD_FIELDS), Stream(fields=["reject"], name=REJECTS_STREAM)]
    consumer_factory = staticmethod(build_consumer)  # tests substitute a recorded stream

    def initialize(self, storm_conf, context):
        config = KinesisConfig.from_topology_conf(storm_conf)
        self.batch = config.emit_batch
        self.consumer = self.consumer_factory(config, *task_position(context))
        self.consumer.start()

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
