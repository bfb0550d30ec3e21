"""Sessions bolt: assigns each event of a batch its session from per-user state in Redis.

Input: ``["bucket", "events"]`` from the enrich bolt, fields-grouped on the bucket (one task owns
a user). Output: ``["events"]``, the complete enriched events (packed: ``pistats.wire``), for the sink.
The whole batch's state is read and written in pipelined round trips. A Redis error fails the
tuple (the spout replays its records) and nothing is emitted for it; the bolt stays up and
redis-py reconnects on the next tuple. Replays get the fields they got before.
"""

import logging
import os

import redis
from streamparse import Bolt

from pistats.enrich.chain import Chain
from pistats.enrich.event import from_wire_batch, to_wire_batch
from pistats.enrich.sessions import SessionConflict

log = logging.getLogger(__name__)


class SessionsBolt(Bolt):
    outputs = ["events"]
    auto_ack = False

    def initialize(self, storm_conf, context):
        self.chain = Chain.from_options(storm_conf, os.environ, sessions=True, with_stages=False)

    def process(self, tup):
        events = from_wire_batch(tup.values[1], times=False)
        try:
            self.chain.sessionise(events)
        except (redis.RedisError, SessionConflict) as error:
            log.warning("sessions: state not updated, failing tuple %s: %s", tup.id, error)
            self.fail(tup)
            return
        self.emit([to_wire_batch(events)], anchors=[tup])
        self.ack(tup)
