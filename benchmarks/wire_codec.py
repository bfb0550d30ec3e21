"""The micro-batch codec, side by side in one process: Zstandard at level 1 (``pistats.wire``)
against deflate at level 1 (the earlier wire form), on the topology's two hops.

    .venv/bin/python benchmarks/wire_codec.py [--events 20000] [--batch 62]

Builds the batches as the topology does (``pistats generate``'s events, ``--batch`` records a
tuple: a poll of 1,000 records split into 16 buckets gives about 62): the spout's record
batches (``tuple_values``) and the enrich bolt's event batches (the chain without Redis
sessions, packed by column). For each codec: base64 bytes per record (what the JVM parses and
writes again) and CPU microseconds per record to compress and to decompress, best of 5. Prints
the ratios zstd/deflate.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import timeit
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pistats.enrich.chain import Chain  # noqa: E402
from pistats.enrich.event import wire_columns  # noqa: E402
from pistats.enrich.run import records_from_recording  # noqa: E402
from pistats.generate.generator import GenerateConfig, generate  # noqa: E402
from pistats.kinesis.ledger import ShardRecord  # noqa: E402
from pistats.kinesis.spout_tuples import tuple_values  # noqa: E402
from pistats.wire import COLUMNS_TAG, compact_json  # noqa: E402


def codecs() -> dict:
    import zstandard

    compressor, decompressor = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    return {"deflate-1": (lambda data: zlib.compress(data, 1), zlib.decompress),
            "zstd-1": (compressor.compress, decompressor.decompress)}


def hop_batches(events: int, batch: int) -> dict[str, tuple[list[bytes], int]]:
    """hop -> (its batches' JSON, records in them)."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(GenerateConfig(events=events, shards=4, bad_fraction=0.0, duplicate_fraction=0.0, seed=11),
                 Path(tmp) / "recording")
        records = list(records_from_recording(Path(tmp) / "recording"))
    # The spout's tuple values of the same records (its ShardRecord: the position as integers).
    shard_records = [ShardRecord(r.shard_id, int(r.sequence_number), r.sub_sequence_number, r.partition_key,
                                 r.arrival_ms, r.data) for r in records]
    chain = Chain.from_topology_conf({}, {}, sessions=False)
    spout, enrich = [], []
    for start in range(0, len(records), batch):
        spout.append(compact_json([tuple_values(record) for record in shard_records[start:start + batch]]))
        fields, columns = wire_columns(chain.run(records[start:start + batch])[0])
        enrich.append(compact_json([COLUMNS_TAG, fields, columns]))
    return {"spout -> enrich": (spout, len(shard_records)), "enrich -> sink": (enrich, len(records))}


def measure(batches: list[bytes], records: int, compress, decompress) -> dict[str, float]:
    packed = [compress(data) for data in batches]
    assert [decompress(frame) for frame in packed] == batches
    best = lambda run: min(timeit.repeat(run, number=1, repeat=5)) * 1e6 / records  # noqa: E731
    return {"b64_bytes": round(sum(len(base64.b64encode(frame)) for frame in packed) / records, 1),
            "compress_us": round(best(lambda: [compress(data) for data in batches]), 2),
            "decompress_us": round(best(lambda: [decompress(frame) for frame in packed]), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=62)
    args = parser.parse_args()
    results = {}
    for hop, (batches, records) in hop_batches(args.events, args.batch).items():
        figures = {name: measure(batches, records, *pair) for name, pair in codecs().items()}
        old, new = figures["deflate-1"], figures["zstd-1"]
        results[hop] = {**figures, "zstd_vs_deflate": {key: round(new[key] / old[key], 2) for key in new}}
        print(f"{hop}: json {sum(map(len, batches)) / records:.0f} bytes/record")
        for name, values in figures.items():
            print(f"  {name:10} {values['b64_bytes']:6.1f} b64 bytes/record, compress {values['compress_us']:5.2f} us, "
                  f"decompress {values['decompress_us']:5.2f} us")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
