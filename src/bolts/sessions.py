"""Sessions bolt: assigns each event its session from per-user state in Redis.

Input: ``["event", "client_id", "user_id"]`` from the enrich bolt, fields-grouped on
``client_id`` and ``user_id``. Output: ``["event"]``, the complete enriched event, for the sink.
A Redis error fails the tuple (the spout replays it) and nothing is emitted for it; the bolt
stays up and redis-py reconnects on the next tuple. Replays get the fields they got before.
"""

import logging
import os

import redis
from streamparse import Bolt

from pistats.enrich.chain import Chain
from pistats.enrich.event import from_wire, to_wire_text
from pistats.enrich.sessions import SessionConflict

log = logging.getLogger(__name__)


class SessionsBolt(Bolt):
    outputs = ["event"]
    auto_ack = False

    def initialize(self, storm_conf, context):
        self.chain = Chain.from_options(storm_conf, os.environ, sessions=True, with_stages=False)

    def process(self, tup):
        event = from_wire(tup.values[0])
        try:
            self.chain.sessionise([event])
        except (redis.RedisError, SessionConflict) as error:
            log.warning("sessions: state not updated, failing tuple %s: %s", tup.id, error)
            self.fail(tup)
            return
        self.emit([to_wire_text(event)], anchors=[tup])
        self.ack(tup)
