"""The test kit: stand-ins and fault injection for testing pistats and code built on it.

- :mod:`pistats.testing.replay_source`: a Kinesis client that serves a recording (deterministic,
  with faults), for shard readers and consumers;
- :mod:`pistats.testing.faults`: faults around a real Kinesis client or checkpoint store, and the
  fault plan of the spout's chaos option;
- :mod:`pistats.testing.proxy`: a TCP proxy a test takes down and brings back (a server outage
  without touching the server);
- :mod:`pistats.testing.topology` and :mod:`pistats.testing.clock`: the topology's library path
  in one process on a manual clock (spout, enrich and sink as library calls, Storm's tuple tree).

Nothing here needs pytest. Production code imports one module of it, on one path only: the
spout's chaos option ``pistats.kinesis.fault_plan`` (off unless set) wraps the spout's own
Kinesis client in :class:`pistats.testing.faults.FaultyKinesis`, because the end-to-end fault
tests cannot reach into a Storm worker. The import happens only when the option is set.
"""
