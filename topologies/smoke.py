"""A two-component smoke topology: a Python spout feeding a Python bolt that writes to Redis."""

from bolts.smoke import SmokeRedisBolt
from spouts.smoke import SmokeSpout
from streamparse import Grouping, Topology


class Smoke(Topology):
    numbers = SmokeSpout.spec(par=1)
    store = SmokeRedisBolt.spec(inputs={numbers: Grouping.SHUFFLE}, par=2)
