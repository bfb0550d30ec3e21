"""How far a topology has got through a stream, from its checkpoints.

A record is *committed* once the spout's checkpoint for its shard has passed it, which (at least
once, end to end) means its event or reject is stored. The demo is done when every shard of the
stream is committed up to its last record (and closed shards are marked SHARD_END).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Callable

from pistats.kinesis.admin import list_all_shards
from pistats.kinesis.checkpoint import Checkpoint


@dataclass
class ShardProgress:
    shard_id: str
    sequence_numbers: list[int]  # every record of the shard, ascending
    closed: bool

    def committed(self, checkpoint: Checkpoint | None) -> int:
        """Records at or below the checkpoint's position."""
        if checkpoint is None or checkpoint.position is None:
            return 0
        return bisect.bisect_right(self.sequence_numbers, checkpoint.position.seq)

    def done(self, checkpoint: Checkpoint | None) -> bool:
        if self.closed:
            return checkpoint is not None and checkpoint.ended
        return self.committed(checkpoint) == len(self.sequence_numbers)


@dataclass
class StreamProgress:
    shards: list[ShardProgress] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(len(shard.sequence_numbers) for shard in self.shards)

    def committed(self, load: Callable[[str], Checkpoint | None]) -> tuple[int, bool]:
        """(records committed, whether every shard is done) given a checkpoint loader."""
        committed, done = 0, True
        for shard in self.shards:
            checkpoint = load(shard.shard_id)
            committed += shard.committed(checkpoint)
            done = done and shard.done(checkpoint)
        return committed, done


def read_stream_layout(client, stream: str) -> StreamProgress:
    """Every shard's sequence numbers, read once from TRIM_HORIZON (the demo's stream is static
    once the recording is replayed)."""
    progress = StreamProgress()
    for shard in list_all_shards(client, stream):
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        numbers: list[int] = []
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            numbers.extend(int(record["SequenceNumber"]) for record in page["Records"])
            iterator = page.get("NextShardIterator")
            if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                break  # an open shard, read to its tip
        closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
        progress.shards.append(ShardProgress(shard["ShardId"], numbers, closed))
    return progress
