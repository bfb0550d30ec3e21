"""Smoke-test bolt: adds each word to a Redis set (``pistats.smoke.redis_url`` / ``.redis_key``), then acks."""

from streamparse import Bolt

from pistats.redisconn import connect


class SmokeRedisBolt(Bolt):
    def initialize(self, storm_conf, context):
        self.redis = connect(storm_conf["pistats.smoke.redis_url"])
        self.key = storm_conf["pistats.smoke.redis_key"]

    def process(self, tup):
        self.redis.sadd(self.key, tup.values[0])
