"""Smoke-test spout: emits ``count`` numbered words once each, replaying any that Storm fails.

Used by the foundation tests to prove a Python spout runs on real Storm (``sparse run`` and
``sparse submit``). Configured by topology options ``pistats.smoke.count``.
"""

from streamparse import Spout


class SmokeSpout(Spout):
    outputs = ["word"]

    def initialize(self, storm_conf, context):
        self.remaining = list(range(int(storm_conf.get("pistats.smoke.count", 100))))
        self.failed = []

    def next_tuple(self):
        if self.failed:
            number = self.failed.pop()
        elif self.remaining:
            number = self.remaining.pop()
        else:
            return
        self.emit([f"smoke-{number}"], tup_id=number)

    def fail(self, tup_id):
        self.failed.append(tup_id)
