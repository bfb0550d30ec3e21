"""Kinesis spout: a thin adapter from Storm's spout calls to :class:`pistats.kinesis.consumer.Consumer`.

Settings come from the topology conf (``pistats.kinesis.*``, see docs/spout.md); credentials from
the AWS default chain. ``next_tuple`` takes at most ``emit_batch`` records and never blocks:
fetching and checkpointing run on the consumer's own threads.

Output (see ``pistats.kinesis.microbatch``): ``["bucket", "records"]``, one tuple per bucket of
users, ``records`` a list of records (``RECORD_FIELDS`` lists) packed by ``pistats.wire``; and
``["rejects"]`` on stream ``rejects``: a packed list of dead letters. A batch's tuple id
stands for its records: its ack acks each of them in the consumer, its fail fails each of them.
"""

import json
import os
import signal
import threading
from datetime import datetime, timezone

from pystorm.exceptions import StormWentAwayError
from streamparse import Spout, Stream

from pistats.kinesis.config import KinesisConfig
from pistats.kinesis.consumer import build_consumer, dead_letter_reject, task_position, tuple_values
from pistats.kinesis.microbatch import InFlight, split
from pistats.wire import pack, pack_rows

REJECTS_STREAM = "rejects"


def _serialize(message: dict) -> str:
    return json.dumps(message) + "\nend\n"


class KinesisSpout(Spout):
    outputs = [Stream(fields=["bucket", "records"]), Stream(fields=["rejects"], name=REJECTS_STREAM)]
    consumer_factory = staticmethod(build_consumer)  # tests substitute a recorded stream

    def initialize(self, storm_conf, context):
        config = KinesisConfig.from_topology_conf(storm_conf)
        self.batch = config.emit_batch
        self.buckets = config.buckets
        self.batch_records = config.batch_records
        self.in_flight = InFlight()
        self.consumer = self.consumer_factory(config, *task_position(context))
        # On SIGTERM write a last checkpoint and release the leases, so the successor task starts
        # at once instead of waiting for them to expire (a SIGKILL still leaves that). The
        # consumer's threads (and those they start) inherit a mask blocking SIGTERM, so it wakes
        # this thread even while it waits for Storm's next command.
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            self.consumer.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        # pystorm encodes each message with a fresh simplejson encoder and writes it with two
        # flushes; the stdlib's cached C encoder and one write per batch of emits double the
        # spout's throughput (benchmarks/spout_emit.py). Messages are the same multilang JSON.
        self._json = self.serializer.__class__.__name__ == "JSONSerializer"
        if self._json:
            self.serializer.serialize_dict = _serialize

    def next_tuple(self):
        records, dead_letters = [], []
        for delivery in self.consumer.poll(self.batch):
            (records if delivery.dead_letter_reason is None else dead_letters).append(delivery)
        emits = []
        if dead_letters:
            now = datetime.now(timezone.utc)
            rejects = pack_rows([dead_letter_reject(delivery, now) for delivery in dead_letters])
            emits.append(([rejects], [d.message_id for d in dead_letters], REJECTS_STREAM))
        for batch in split(records, self.buckets, self.batch_records):
            records = pack([tuple_values(delivery.record) for delivery in batch.deliveries])
            emits.append(([batch.bucket, records], batch.message_ids, None))
        if not self._json:
            for values, message_ids, stream in emits:
                self.emit(values, tup_id=self.in_flight.open(message_ids), stream=stream)
            return
        messages = []
        for values, message_ids, stream in emits:
            message = {"command": "emit", "tuple": values, "id": self.in_flight.open(message_ids),
                       "need_task_ids": False}
            if stream is not None:
                message["stream"] = stream
            messages.append(_serialize(message))
        if messages:
            with self._writer_lock:
                try:
                    self.serializer.output_stream.write("".join(messages))
                    self.serializer.output_stream.flush()
                except OSError:
                    raise StormWentAwayError() from None  # as pystorm's own writes do

    def ack(self, tup_id):
        for message_id in self.in_flight.close(tup_id):
            self.consumer.ack(message_id)

    def fail(self, tup_id):
        for message_id in self.in_flight.close(tup_id):
            self.consumer.fail(message_id)

    def _on_sigterm(self, signum, frame):
        # Not raising here: pystorm swallows exceptions while it writes to Storm. The shutdown
        # runs on its own thread, as this one may hold the consumer's lock at this moment.
        threading.Thread(target=self._shutdown, args=(128 + signum,), daemon=True).start()

    def _shutdown(self, status_code):
        self.consumer.close(2.0)
        os._exit(status_code)

    def _exit(self, status_code):
        # pystorm leaves through os._exit (skipping atexit) when Storm goes away.
        self.consumer.close(2.0)
        super()._exit(status_code)
