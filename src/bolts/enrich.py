"""Enrich bolt: geo, device and bots on each base event.

Input: ``["event", "client_id", "user_id"]`` from the parse bolt, fields-grouped per user. Output: ``["event", "client_id", "user_id"]`` so the
sessions bolt can be fields-grouped on ``client_id`` + ``user_id`` (one task owns a user).
Settings: topology option ``pistats.enrich`` (see docs/enrichment.md).
"""

import os

from streamparse import Bolt

from pistats.enrich.chain import Chain
from pistats.enrich.event import from_wire, to_wire_text


class EnrichBolt(Bolt):
    outputs = ["event", "client_id", "user_id"]

    def initialize(self, storm_conf, context):
        self.chain = Chain.from_options(storm_conf, os.environ, sessions=False)

    def process(self, tup):
        event = self.chain.enrich(from_wire(tup.values[0]))
        self.emit([to_wire_text(event), event["client_id"], event["user_id"]])
