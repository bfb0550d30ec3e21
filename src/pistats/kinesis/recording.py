"""Recorded Kinesis shards: the ``kinesis-shards-jsonl/1`` format.

A recording is a directory::

    manifest.json                 {"format": "kinesis-shards-jsonl/1", "stream", "captured_at",
                                   "shards": [<ListShards shard map entries>]}
    shards/<ShardId>.jsonl[.gz]   one record per line, in sequence order:
                                  {"SequenceNumber", "ApproximateArrivalTimestamp", "PartitionKey",
                                   "Data" (base64 of the raw bytes)[, "ExplicitHashKey"]}
                                  a closed shard ends with {"_shard_end": true, "ChildShards": [...]}

Data stays raw (base64) so aggregated or malformed payloads replay byte for byte. Readers accept
unknown keys (the format may grow) and reject, naming file and line, anything else they cannot
trust: another format or version, a sequence number that does not increase (compared as integers,
never as strings), a line that is not a JSON object.

A writer builds the recording in a hidden temporary directory next to the target and renames it
into place on :meth:`RecordingWriter.commit`, so an interrupted write never looks complete.
"""

from __future__ import annotations

import base64
import binascii
import errno
import gzip
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pistats.contract import format_timestamp, parse_timestamp
from pistats.errors import DataError

FORMAT = "kinesis-shards-jsonl/1"
FORMAT_FAMILY = "kinesis-shards-jsonl/"
MANIFEST = "manifest.json"
SHARDS_DIR = "shards"
SHARD_END_KEY = "_shard_end"
HASH_KEY_MAX = 2**128 - 1


def shard_sort_key(shard_id: str) -> tuple[int, str]:
    """Order ``shardId-000000000012`` numerically (Kinesis numbers shards in creation order)."""
    digits = shard_id.rsplit("-", 1)[-1]
    return (int(digits), shard_id) if digits.isdigit() else (2**63, shard_id)


@dataclass(frozen=True)
class ShardInfo:
    """One entry of the ListShards shard map."""

    shard_id: str
    starting_hash_key: int
    ending_hash_key: int
    starting_sequence_number: str
    ending_sequence_number: str | None = None
    parent_shard_id: str | None = None
    adjacent_parent_shard_id: str | None = None

    @property
    def closed(self) -> bool:
        return self.ending_sequence_number is not None

    @property
    def parents(self) -> tuple[str, ...]:
        return tuple(p for p in (self.parent_shard_id, self.adjacent_parent_shard_id) if p)

    def contains(self, hash_key: int) -> bool:
        return self.starting_hash_key <= hash_key <= self.ending_hash_key

    def to_dict(self) -> dict[str, Any]:
        """The ListShards shape; parent fields and EndingSequenceNumber only where they exist."""
        entry: dict[str, Any] = {"ShardId": self.shard_id}
        if self.parent_shard_id:
            entry["ParentShardId"] = self.parent_shard_id
        if self.adjacent_parent_shard_id:
            entry["AdjacentParentShardId"] = self.adjacent_parent_shard_id
        entry["HashKeyRange"] = {
            "StartingHashKey": str(self.starting_hash_key),
            "EndingHashKey": str(self.ending_hash_key),
        }
        numbers = {"StartingSequenceNumber": self.starting_sequence_number}
        if self.ending_sequence_number is not None:
            numbers["EndingSequenceNumber"] = self.ending_sequence_number
        entry["SequenceNumberRange"] = numbers
        return entry

    @classmethod
    def from_dict(cls, entry: object) -> ShardInfo:
        """Build from a ListShards entry; raises ValueError naming the missing or bad field."""
        if not isinstance(entry, dict):
            raise ValueError("shard entry is not an object")
        shard_id = entry.get("ShardId")
        if not isinstance(shard_id, str) or not shard_id:
            raise ValueError("shard entry without ShardId")
        hash_range = entry.get("HashKeyRange")
        numbers = entry.get("SequenceNumberRange")
        if not isinstance(hash_range, dict) or not isinstance(numbers, dict):
            raise ValueError(f"shard {shard_id}: HashKeyRange and SequenceNumberRange are required")
        start = _decimal(hash_range.get("StartingHashKey"), f"shard {shard_id}: StartingHashKey")
        end = _decimal(hash_range.get("EndingHashKey"), f"shard {shard_id}: EndingHashKey")
        if not 0 <= start <= end <= HASH_KEY_MAX:
            raise ValueError(f"shard {shard_id}: hash key range {start}..{end} is not within 0..2^128-1")
        first = numbers.get("StartingSequenceNumber")
        _decimal(first, f"shard {shard_id}: StartingSequenceNumber")
        last = numbers.get("EndingSequenceNumber")
        if last is not None:
            _decimal(last, f"shard {shard_id}: EndingSequenceNumber")
        return cls(
            shard_id=shard_id,
            starting_hash_key=start,
            ending_hash_key=end,
            starting_sequence_number=first,
            ending_sequence_number=last,
            parent_shard_id=entry.get("ParentShardId") or None,
            adjacent_parent_shard_id=entry.get("AdjacentParentShardId") or None,
        )


@dataclass(frozen=True)
class RecordedRecord:
    """One Kinesis record as GetRecords returned it (data as raw bytes)."""

    sequence_number: str
    arrival: datetime
    partition_key: str
    data: bytes
    explicit_hash_key: str | None = None

    @property
    def sequence_int(self) -> int:
        return int(self.sequence_number)

    def to_line(self) -> str:
        entry = {
            "SequenceNumber": self.sequence_number,
            "ApproximateArrivalTimestamp": format_timestamp(self.arrival),
            "PartitionKey": self.partition_key,
            "Data": base64.b64encode(self.data).decode("ascii"),
        }
        if self.explicit_hash_key is not None:
            entry["ExplicitHashKey"] = self.explicit_hash_key
        return json.dumps(entry, separators=(",", ":"))


@dataclass(frozen=True)
class ShardEnd:
    """The end of a closed shard: the children Kinesis named in the last GetRecords response."""

    child_shards: tuple[dict[str, Any], ...] = ()

    def to_line(self) -> str:
        return json.dumps({SHARD_END_KEY: True, "ChildShards": list(self.child_shards)}, separators=(",", ":"))


@dataclass(frozen=True)
class ShardContents:
    shard: ShardInfo
    records: list[RecordedRecord]
    end: ShardEnd | None


@dataclass(frozen=True)
class Manifest:
    stream: str
    captured_at: str
    shards: tuple[ShardInfo, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def shard(self, shard_id: str) -> ShardInfo:
        for shard in self.shards:
            if shard.shard_id == shard_id:
                return shard
        raise KeyError(shard_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "format": FORMAT,
            "stream": self.stream,
            "captured_at": self.captured_at,
            "shards": [shard.to_dict() for shard in self.shards],
        }


def _decimal(value: object, what: str) -> int:
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise ValueError(f"{what} must be a decimal string, got {value!r}")
    return int(value)


class Recording:
    """A recording on disk, read lazily shard by shard.

    ``open`` validates the manifest; shard files are validated as they are read, so a damaged
    line is reported (file and line) when a reader reaches it.
    """

    def __init__(self, path: Path, manifest: Manifest):
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Recording:
        root = Path(path)
        manifest_path = root / MANIFEST
        if not root.is_dir():
            raise DataError("not a recording directory", str(root))
        if not manifest_path.is_file():
            raise DataError(f"no {MANIFEST}: not a recording (or an incomplete one)", str(root))
        return cls(root, read_manifest(manifest_path))

    @property
    def shards(self) -> tuple[ShardInfo, ...]:
        return self.manifest.shards

    def shard_file(self, shard_id: str) -> Path:
        """The shard's file (``.jsonl`` or ``.jsonl.gz``); DataError if neither exists."""
        plain = self.path / SHARDS_DIR / f"{shard_id}.jsonl"
        if plain.is_file():
            return plain
        packed = plain.with_name(plain.name + ".gz")
        if packed.is_file():
            return packed
        raise DataError(f"shard {shard_id} is in the manifest but has no file", str(plain))

    def validate(self) -> dict[str, int]:
        """Read every shard file once (DataError on the first bad line); records per shard."""
        return {shard.shard_id: sum(1 for _ in self.records(shard.shard_id)) for shard in self.shards}

    def records(self, shard_id: str) -> Iterator[RecordedRecord]:
        """The shard's records in sequence order (the shard end line is checked, not yielded)."""
        for item in self._items(shard_id):
            if isinstance(item, RecordedRecord):
                yield item

    def read_shard(self, shard_id: str) -> ShardContents:
        records: list[RecordedRecord] = []
        end: ShardEnd | None = None
        for item in self._items(shard_id):
            if isinstance(item, RecordedRecord):
                records.append(item)
            else:
                end = item
        return ShardContents(self.manifest.shard(shard_id), records, end)

    def _items(self, shard_id: str) -> Iterator[RecordedRecord | ShardEnd]:
        self.manifest.shard(shard_id)
        path = self.shard_file(shard_id)
        yield from read_shard_lines(path)


def read_manifest(path: Path) -> Manifest:
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"not UTF-8 ({error.reason})", str(path)) from None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DataError(f"not JSON: {error.msg}", str(path), error.lineno) from None
    if not isinstance(document, dict):
        raise DataError("the manifest is not a JSON object", str(path), 1)
    declared = document.get("format")
    if declared != FORMAT:
        if isinstance(declared, str) and declared.startswith(FORMAT_FAMILY):
            raise DataError(f"unsupported format version {declared!r} (this pistats reads {FORMAT!r})", str(path))
        raise DataError(f"format is {declared!r}, expected {FORMAT!r}", str(path))
    shards_raw = document.get("shards")
    if not isinstance(shards_raw, list):
        raise DataError("manifest has no \"shards\" list", str(path))
    shards = []
    seen = set()
    for index, entry in enumerate(shards_raw):
        try:
            shard = ShardInfo.from_dict(entry)
        except ValueError as error:
            raise DataError(f"shards[{index}]: {error}", str(path)) from None
        if shard.shard_id in seen:
            raise DataError(f"shards[{index}]: duplicate ShardId {shard.shard_id}", str(path))
        seen.add(shard.shard_id)
        shards.append(shard)
    stream = document.get("stream")
    captured_at = document.get("captured_at")
    extra = {k: v for k, v in document.items() if k not in {"format", "stream", "captured_at", "shards"}}
    return Manifest(
        stream=stream if isinstance(stream, str) else "",
        captured_at=captured_at if isinstance(captured_at, str) else "",
        shards=tuple(shards),
        extra=extra,
    )


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


def read_shard_lines(path: Path) -> Iterator[RecordedRecord | ShardEnd]:
    """Parse one shard file, checking every line; DataError names the file and line."""
    where = str(path)
    previous: int | None = None
    ended = False
    with _open_text(path) as lines:
        line_number = 0
        while True:
            try:
                line = lines.readline()
            except UnicodeDecodeError as error:
                raise DataError(f"not UTF-8 ({error.reason})", where, line_number + 1) from None
            except (OSError, EOFError) as error:
                raise DataError(f"cannot read: {error}", where, line_number + 1) from None
            if not line:
                break
            line_number += 1
            if ended:
                raise DataError("line after the shard end line", where, line_number)
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"not JSON: {error.msg}", where, line_number) from None
            if not isinstance(entry, dict):
                raise DataError("not a JSON object", where, line_number)
            if entry.get(SHARD_END_KEY) is True:
                children = entry.get("ChildShards", [])
                if not isinstance(children, list):
                    raise DataError("ChildShards is not a list", where, line_number)
                ended = True
                yield ShardEnd(tuple(children))
                continue
            try:
                record = _record_from_entry(entry)
            except ValueError as error:
                raise DataError(str(error), where, line_number) from None
            current = record.sequence_int
            if previous is not None and current <= previous:
                raise DataError(
                    f"sequence number {record.sequence_number} does not follow {previous} (sequence numbers must increase)",
                    where,
                    line_number,
                )
            previous = current
            yield record


def _record_from_entry(entry: dict[str, Any]) -> RecordedRecord:
    sequence = entry.get("SequenceNumber")
    _decimal(sequence, "SequenceNumber")
    arrival_text = entry.get("ApproximateArrivalTimestamp")
    if not isinstance(arrival_text, str):
        raise ValueError("ApproximateArrivalTimestamp is missing or not a string")
    try:
        arrival = parse_timestamp(arrival_text)
    except ValueError:
        raise ValueError(f"ApproximateArrivalTimestamp {arrival_text!r} is not RFC 3339 with an offset") from None
    key = entry.get("PartitionKey")
    if not isinstance(key, str):
        raise ValueError("PartitionKey is missing or not a string")
    encoded = entry.get("Data")
    if not isinstance(encoded, str):
        raise ValueError("Data is missing or not a string")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("Data is not valid base64") from None
    explicit = entry.get("ExplicitHashKey")
    if explicit is not None:
        _decimal(explicit, "ExplicitHashKey")
    return RecordedRecord(sequence, arrival, key, data, explicit)


class RecordingWriter:
    """Writes a recording atomically: everything goes to a temporary sibling directory, renamed
    into place by :meth:`commit`. Used as a context manager, an exception aborts (the temporary
    directory is removed and nothing appears at ``path``).

    Records must be written in sequence order per shard (checked); shards may be interleaved.
    A recording already at ``path`` is replaced only with ``overwrite`` (else FileExistsError).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        stream: str,
        captured_at: datetime | str,
        compress: bool = False,
        overwrite: bool = False,
        extra: dict[str, Any] | None = None,
    ):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(errno.EEXIST, "already exists", str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._overwrite = overwrite
        self._stream = stream
        self._captured_at = captured_at if isinstance(captured_at, str) else format_timestamp(captured_at)
        self._compress = compress
        self._extra = dict(extra or {})
        self._temp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=self.path.parent))
        (self._temp / SHARDS_DIR).mkdir()
        self._shards: dict[str, ShardInfo] = {}
        self._files: dict[str, io.TextIOBase] = {}
        self._underlying: list[io.BufferedWriter] = []
        self._last: dict[str, int] = {}
        self._ended: set[str] = set()
        self._done = False
        self.records_written = 0

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None or not self._done:
            self.abort()

    @property
    def staging(self) -> Path:
        """The temporary directory being written: extra files put here are committed with it."""
        return self._temp

    def add_shard(self, shard: ShardInfo) -> None:
        """Declare a shard (its manifest entry); may be replaced later, e.g. once it closes."""
        self._shards[shard.shard_id] = shard
        self._file(shard.shard_id)

    def write(self, shard_id: str, record: RecordedRecord) -> None:
        if shard_id not in self._shards:
            raise ValueError(f"shard {shard_id} was not declared with add_shard")
        if shard_id in self._ended:
            raise ValueError(f"shard {shard_id} already ended")
        current = record.sequence_int
        previous = self._last.get(shard_id)
        if previous is not None and current <= previous:
            raise ValueError(f"shard {shard_id}: sequence number {current} does not follow {previous}")
        self._last[shard_id] = current
        self._file(shard_id).write(record.to_line() + "\n")
        self.records_written += 1

    def write_many(self, shard_id: str, records: Iterable[RecordedRecord]) -> None:
        for record in records:
            self.write(shard_id, record)

    def end_shard(self, shard_id: str, child_shards: Iterable[dict[str, Any]] = ()) -> None:
        if shard_id in self._ended:
            raise ValueError(f"shard {shard_id} already ended")
        self._file(shard_id).write(ShardEnd(tuple(child_shards)).to_line() + "\n")
        self._ended.add(shard_id)

    def commit(self) -> Path:
        """Close the shard files, write the manifest last, and rename the directory into place."""
        self._close_files()
        shards = tuple(sorted(self._shards.values(), key=lambda s: shard_sort_key(s.shard_id)))
        manifest = Manifest(self._stream, self._captured_at, shards, self._extra)
        manifest_path = self._temp / MANIFEST
        with open(manifest_path, "w", encoding="utf-8") as handle:
            json.dump(manifest.to_dict(), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        if self.path.exists():
            # Move the old recording aside first so there is never a moment with a half-replaced one.
            graveyard = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.old-", dir=self.path.parent))
            os.rename(self.path, graveyard / self.path.name)
            os.rename(self._temp, self.path)
            shutil.rmtree(graveyard, ignore_errors=True)
        else:
            os.rename(self._temp, self.path)
        self._done = True
        return self.path

    def abort(self) -> None:
        self._close_files()
        if not self._done:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._done = True

    def _close_files(self) -> None:
        for handle in [*self._files.values(), *self._underlying]:
            if not handle.closed:
                handle.close()

    def _file(self, shard_id: str) -> io.TextIOBase:
        handle = self._files.get(shard_id)
        if handle is None:
            name = f"{shard_id}.jsonl" + (".gz" if self._compress else "")
            target = self._temp / SHARDS_DIR / name
            if self._compress:
                # mtime=0 keeps compressed recordings byte-identical for a given content.
                underlying = open(target, "wb")
                self._underlying.append(underlying)
                raw = gzip.GzipFile(filename="", mode="wb", fileobj=underlying, mtime=0)
                handle = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
            else:
                handle = open(target, "w", encoding="utf-8", newline="\n")
            self._files[shard_id] = handle
        return handle


def iter_manifest_order(recording: Recording) -> list[ShardInfo]:
    """Shards ordered so every parent precedes its children (then by shard number)."""
    by_id = {shard.shard_id: shard for shard in recording.shards}
    ordered: list[ShardInfo] = []
    placed: set[str] = set()

    def place(shard: ShardInfo) -> None:
        if shard.shard_id in placed:
            return
        for parent in shard.parents:
            if parent in by_id:
                place(by_id[parent])
        placed.add(shard.shard_id)
        ordered.append(shard)

    for shard in sorted(recording.shards, key=lambda s: shard_sort_key(s.shard_id)):
        place(shard)
    return ordered
