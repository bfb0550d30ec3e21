"""Enrich bolt: geo, device and bots on each base event of a batch.

Input: ``["bucket", "events"]`` from the parse bolt, fields-grouped on the bucket. Output: the
same fields, so the sessions bolt can be fields-grouped on the bucket too (one task owns a user).
Settings: topology option ``pistats.enrich`` (see docs/enrichment.md).
"""

import os

from streamparse import Bolt

from pistats.enrich.chain import Chain
from pistats.enrich.event import from_wire_batch, to_wire_batch


class EnrichBolt(Bolt):
    outputs = ["bucket", "events"]

    def initialize(self, storm_conf, context):
        self.chain = Chain.from_options(storm_conf, os.environ, sessions=False)

    def process(self, tup):
        bucket, text = tup.values
        events = [self.chain.enrich(event) for event in from_wire_batch(text, times=False)]
        self.emit([bucket, to_wire_batch(events)])
