"""Stream administration helpers: create/wait/delete, the shard map, even hash ranges (clients:
``pistats.kinesis.client``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pistats.errors import ServiceError

HASH_KEY_SPACE = 2**128


class StreamExists(ServiceError):
    """CreateStream found a stream of that name."""


class StreamMissing(ServiceError):
    """The stream does not exist."""


def even_hash_ranges(shard_count: int) -> list[tuple[int, int]]:
    """The hash key ranges AWS CreateStream gives ``shard_count`` shards: shard i starts at
    ``i * (2**128 // n)``; the last one ends at ``2**128 - 1``. (kinesis-local uses
    ``(2**128 - 1) // n``, a boundary one lower for even counts: compare ranges by overlap.)"""
    if shard_count < 1:
        raise ValueError("shard_count must be at least 1")
    width = HASH_KEY_SPACE // shard_count
    starts = [i * width for i in range(shard_count)]
    ends = [start - 1 for start in starts[1:]] + [HASH_KEY_SPACE - 1]
    return list(zip(starts, ends))


def error_code(error: Exception) -> str:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code", "")
    return ""


def stream_status(client, stream: str) -> str | None:
    """The stream's status, or None if it does not exist."""
    try:
        summary = client.describe_stream_summary(StreamName=stream)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return None
        raise
    return summary["StreamDescriptionSummary"]["StreamStatus"]


def wait_active(
    client,
    stream: str,
    *,
    timeout: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait until the stream is ACTIVE (after CreateStream, SplitShard, MergeShards)."""
    deadline = clock() + timeout
    while True:
        status = stream_status(client, stream)
        if status == "ACTIVE":
            return
        if clock() > deadline:
            raise ServiceError(f"stream {stream} is {status or 'missing'} after {timeout:.0f} s, not ACTIVE")
        sleep(0.1)


def create_stream(client, stream: str, shard_count: int, *, timeout: float = 60.0) -> None:
    try:
        client.create_stream(StreamName=stream, ShardCount=shard_count)
    except ClientError as error:
        if error_code(error) == "ResourceInUseException":
            raise StreamExists(f"stream {stream} already exists") from None
        raise
    wait_active(client, stream, timeout=timeout)


def delete_stream(client, stream: str) -> None:
    try:
        client.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
    except ClientError as error:
        if error_code(error) != "ResourceNotFoundException":
            raise


def list_all_shards(client, stream: str) -> list[dict[str, Any]]:
    """Every shard ListShards reports (open and closed), following NextToken."""
    shards: list[dict[str, Any]] = []
    request: dict[str, Any] = {"StreamName": stream}
    while True:
        response = client.list_shards(**request)
        shards.extend(response.get("Shards", []))
        token = response.get("NextToken")
        if not token:
            return shards
        request = {"NextToken": token}


def require_stream(client, stream: str) -> None:
    """StreamMissing if the stream does not exist, ServiceError if the endpoint is unreachable."""
    try:
        status = stream_status(client, stream)
    except (BotoCoreError, ClientError) as error:
        raise ServiceError(f"cannot reach Kinesis: {error}") from None
    if status is None:
        raise StreamMissing(f"stream {stream} does not exist")
