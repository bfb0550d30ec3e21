"""Fault injection around a real boto3 Kinesis client and a checkpoint store (for tests).

:class:`FaultyKinesis` passes every call to the wrapped client unless a planned fault matches,
in which case it raises the ``ClientError`` subclass the real client would raise for that error
code (built from the client's own ``exceptions``). Faults are planned per operation and shard:
``inject("GetRecords", "ProvisionedThroughputExceededException", shard_id=..., times=3)``.
``expire_iterators()`` makes the next GetRecords of every shard fail as an expired iterator
would, without waiting five minutes. A periodic fault (``every=N``) fails every N-th call of its
operation for as long as the client lives: that is what the topology's chaos option
``pistats.kinesis.fault_plan`` (see :func:`parse_fault_plan`) sets up, for end-to-end fault tests.

:class:`FaultyCheckpointStore` makes a store unavailable for a while (``down()`` / ``up()``),
raising redis-py's ``ConnectionError``, as a Redis store does when Redis cannot be reached.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from redis.exceptions import ConnectionError as RedisConnectionError


@dataclass
class PlannedFault:
    operation: str
    code: str
    shard_id: str | None = None
    times: int = 1
    every: int = 0  # > 0: periodic, every N-th matching call fails (``times`` is then ignored)
    raised: int = field(default=0, init=False)
    calls: int = field(default=0, init=False)

    def due(self) -> bool:
        """Counts a matching call; True if this call is to fail."""
        self.calls += 1
        if self.every:
            return self.calls % self.every == 0
        return self.raised < self.times


def parse_fault_plan(plan: str) -> list[PlannedFault]:
    """``"GetRecords:ProvisionedThroughputExceededException@7,GetRecords:ExpiredIteratorException@11"``
    -> periodic faults: every 7th GetRecords throttled, every 11th finds its iterator expired."""
    faults = []
    for item in filter(None, (part.strip() for part in plan.split(","))):
        try:
            target, every = item.rsplit("@", 1)
            operation, code = target.split(":", 1)
            faults.append(PlannedFault(operation, code, every=int(every)))
        except ValueError:
            raise ValueError(f"bad fault plan item {item!r}: expected Operation:ErrorCode@N") from None
        if operation not in _OPERATIONS.values() or faults[-1].every < 1:
            raise ValueError(f"bad fault plan item {item!r}: operation one of {sorted(_OPERATIONS.values())}, N >= 1")
    return faults


_OPERATIONS = {"get_records": "GetRecords", "get_shard_iterator": "GetShardIterator", "list_shards": "ListShards"}


class FaultyKinesis:
    """A boto3 Kinesis client wrapper raising planned faults; thread-safe."""

    def __init__(self, client):
        self._client = client
        self._faults: list[PlannedFault] = []
        self._lock = threading.Lock()
        self._iterator_shards: dict[str, str] = {}  # iterator -> shard, to target GetRecords faults
        self.raised: list[tuple[str, str | None, str]] = []

    def inject(self, operation: str, code: str, *, shard_id: str | None = None, times: int = 1,
               every: int = 0) -> PlannedFault:
        return self.add(PlannedFault(operation, code, shard_id, times, every))

    def add(self, fault: PlannedFault) -> PlannedFault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def expire_iterators(self, shard_id: str | None = None) -> PlannedFault:
        return self.inject("GetRecords", "ExpiredIteratorException", shard_id=shard_id)

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_shard_iterator(self, **kwargs):
        self._maybe_fail("GetShardIterator", kwargs.get("ShardId"))
        response = self._client.get_shard_iterator(**kwargs)
        with self._lock:
            self._iterator_shards[response["ShardIterator"]] = kwargs.get("ShardId")
        return response

    def get_records(self, **kwargs):
        with self._lock:
            shard_id = self._iterator_shards.get(kwargs["ShardIterator"])
        self._maybe_fail("GetRecords", shard_id)
        response = self._client.get_records(**kwargs)
        with self._lock:
            self._iterator_shards.pop(kwargs["ShardIterator"], None)
            if response.get("NextShardIterator"):
                self._iterator_shards[response["NextShardIterator"]] = shard_id
        return response

    def list_shards(self, **kwargs):
        self._maybe_fail("ListShards", None)
        return self._client.list_shards(**kwargs)

    def _maybe_fail(self, operation: str, shard_id: str | None) -> None:
        with self._lock:
            for fault in self._faults:
                if fault.operation != operation:
                    continue
                if fault.shard_id is not None and fault.shard_id != shard_id:
                    continue
                if not fault.due():
                    continue
                fault.raised += 1
                self.raised.append((operation, shard_id, fault.code))
                break
            else:
                return
        error = {"Error": {"Code": fault.code, "Message": f"injected {fault.code}"},
                 "ResponseMetadata": {"HTTPStatusCode": 500 if "Internal" in fault.code else 400}}
        raise self._client.exceptions.from_code(fault.code)(error, operation)


class FaultyCheckpointStore:
    """A checkpoint store that can be made unreachable for a while."""

    def __init__(self, store):
        self._store = store
        self.available = True
        self.refused = 0

    def down(self) -> None:
        self.available = False

    def up(self) -> None:
        self.available = True

    def __getattr__(self, name):
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            if not self.available:
                self.refused += 1
                raise RedisConnectionError(f"Error 111 connecting to checkpoint store ({name}): injected")
            return attribute(*args, **kwargs)

        return call
