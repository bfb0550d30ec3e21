"""Kinesis spout: a thin adapter from Storm's spout calls to :class:`pistats.kinesis.consumer.Consumer`.

Settings come from the topology conf (``pistats.kinesis.*``, see docs/spout.md); credentials from
the AWS default chain (``pistats.kinesis.client``). ``next_tuple`` takes at most ``emit_batch`` records and never blocks:
fetching and checkpointing run on the consumer's own threads.

Output (``pistats.kinesis.spout_tuples``): ``["bucket", "records"]``, one tuple per bucket of
users, ``records`` a packed list of records; and ``["rejects"]`` on stream ``rejects``, a packed
list of dead letters. A tuple's id stands for its records (``pistats.kinesis.microbatch.InFlight``):
its ack acks each of them in the consumer, its fail fails each of them.
"""

from datetime import datetime, timezone

from streamparse import Spout, Stream

from pistats.heap import settle_after_startup
from pistats.kinesis.config import KinesisConfig
from pistats.kinesis.consumer import build_consumer
from pistats.kinesis.microbatch import InFlight
from pistats.kinesis.spout_tuples import REJECTS_STREAM, spout_emits, task_position
from pistats.status.tasks import SPOUT, publish_spout, task_publisher
from spouts.multilang import BatchWriter, start_closing_on_sigterm


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class KinesisSpout(Spout):
    outputs = [Stream(fields=["bucket", "records"]), Stream(fields=["rejects"], name=REJECTS_STREAM)]
    consumer_factory = staticmethod(build_consumer)  # tests substitute a recorded stream

    def initialize(self, storm_conf, context):
        self.config = KinesisConfig.from_topology_conf(storm_conf)
        self.in_flight = InFlight()
        self.consumer = self.consumer_factory(self.config, *task_position(context))
        start_closing_on_sigterm(self.consumer)
        self.writer = BatchWriter(self)
        self.status = task_publisher(storm_conf, SPOUT, int(context["taskid"]))
        settle_after_startup()

    def next_tuple(self):
        emits = spout_emits(self.consumer.poll(self.config.emit_batch), self.config.buckets,
                            self.config.batch_records, _utc_now)
        self.writer.emit([(e.values, self.in_flight.open(e.message_ids), e.stream) for e in emits])
        publish_spout(self.status, self.consumer)

    def ack(self, tup_id):
        self.consumer.ack_all(self.in_flight.close(tup_id))

    def fail(self, tup_id):
        for message_id in self.in_flight.close(tup_id):
            self.consumer.fail(message_id)

    def _exit(self, status_code):
        # pystorm leaves through os._exit (skipping atexit) when Storm goes away.
        self.consumer.close(2.0)
        super()._exit(status_code)
