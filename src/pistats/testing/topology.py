"""The topology's library path in one process (the conservation test runs on it).

:class:`InProcessTopology` wires what the spout and the two bolts wire, with the same library
calls and the same tuple encodings, minus Storm: a :class:`~pistats.kinesis.consumer.Consumer`
driven step by step on a manual clock, its deliveries made tuples by the spout's own
``spout_emits``, the chain as the enrich bolt runs it, and the batching sink. Storm's part is
played by a small tuple tree: a spout tuple is acked once the enrich step and every tuple it
emitted were acked by the sink, and failed as soon as any of them failed.

Everything a fault can hit is injectable: the Kinesis client (:class:`FaultyKinesis` over a
:class:`ReplaySource`), the checkpoint store, the Redis client of the sessions, and the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pistats.enrich.chain import Chain
from pistats.enrich.event import to_wire_batch
from pistats.enrich.parse import records_from_batch
from pistats.enrich.sessions import SessionConflict
from pistats.kinesis.config import KinesisConfig
from pistats.kinesis.consumer import Consumer
from pistats.kinesis.microbatch import InFlight
from pistats.kinesis.spout_tuples import REJECTS_STREAM, spout_emits
from pistats.redisconn import REDIS_ERRORS
from pistats.store.sink import Settled, Sink, tuple_payloads
from pistats.testing.clock import ManualClock


@dataclass
class _SpoutTuple:
    message_ids: tuple[str, ...]
    children: set = field(default_factory=set)
    enriched: bool = False
    failed: bool = False


class InProcessTopology:
    """Spout, enrich bolt and sink bolt of the shipped topology as library calls in one thread."""

    def __init__(self, config: KinesisConfig, kinesis, checkpoints, chain: Chain, sink: Sink,
                 clock: ManualClock, owner: str):
        self.config = config
        self.consumer = Consumer(config, kinesis, checkpoints, now_ms=clock.ms, owner=owner)
        self.chain = chain
        self.sink = sink
        self.clock = clock
        self._in_flight = InFlight()
        self._tuples: dict[str, _SpoutTuple] = {}
        self._child_ids = 0

    def step(self) -> None:
        """One round: coordinate and fetch, one ``next_tuple``, the bolts on what it emitted, a tick."""
        self.consumer.step()
        emits = spout_emits(self.consumer.poll(self.config.emit_batch), self.config.buckets,
                            self.config.batch_records, self.clock.wall)
        for emit in emits:
            spout_id = self._emit(emit.message_ids)
            if emit.stream == REJECTS_STREAM:
                self._sink_rejects(spout_id, emit.values[0])
                self._enriched(spout_id)
            else:
                self._enrich(spout_id, emit.values[1])
        self._settle(self.sink.tick())

    # --- the enrich bolt ----------------------------------------------------------------------

    def _enrich(self, spout_id: str, packed: str) -> None:
        try:
            events, rejects = self.chain.run(records_from_batch(packed))
        except (*REDIS_ERRORS, SessionConflict):
            self._fail(spout_id)
            return
        if events:
            self._sink_events(spout_id, to_wire_batch(events))
        if rejects:
            self._sink_rejects(spout_id, to_wire_batch(rejects))
        self._enriched(spout_id)

    # --- the sink bolt ------------------------------------------------------------------------

    def _child(self, spout_id: str) -> tuple[str, int]:
        self._child_ids += 1
        child = (spout_id, self._child_ids)
        self._tuples[spout_id].children.add(child)
        return child

    def _sink_events(self, spout_id: str, packed: str) -> None:
        self._settle(self.sink.add_events(self._child(spout_id), tuple_payloads([packed])))

    def _sink_rejects(self, spout_id: str, packed: str) -> None:
        self._settle(self.sink.add_rejects(self._child(spout_id), tuple_payloads([packed])))

    def _settle(self, settled: Settled) -> None:
        for spout_id, child in settled.acked:
            spout_tuple = self._tuples.get(spout_id)
            if spout_tuple is not None:
                spout_tuple.children.discard((spout_id, child))
                self._maybe_ack(spout_id)
        for spout_id, _child in settled.failed:
            self._fail(spout_id)

    # --- Storm's tuple tree -------------------------------------------------------------------

    def _emit(self, message_ids) -> str:
        spout_id = self._in_flight.open(message_ids)
        self._tuples[spout_id] = _SpoutTuple(tuple(message_ids))
        return spout_id

    def _enriched(self, spout_id: str) -> None:
        self._tuples[spout_id].enriched = True
        self._maybe_ack(spout_id)

    def _maybe_ack(self, spout_id: str) -> None:
        spout_tuple = self._tuples[spout_id]
        if spout_tuple.enriched and not spout_tuple.children:
            del self._tuples[spout_id]
            self.consumer.ack_all(self._in_flight.close(spout_id))

    def _fail(self, spout_id: str) -> None:
        if self._tuples.pop(spout_id, None) is None:
            return  # already failed (another of its tuples failed first)
        for message_id in self._in_flight.close(spout_id):
            self.consumer.fail(message_id)
