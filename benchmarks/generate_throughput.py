"""How fast `pistats generate` writes records, and what the parts cost.

Prints records/s for the whole command (population, events, shard routing, writing, expected.json)
and separately for building the records and for computing expected.json. Run:

    .venv/bin/python benchmarks/generate_throughput.py [--events N]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from pistats.generate import GenerateConfig, generate
from pistats.generate.expected import CountryLookup, expected_counts
from pistats.generate.generator import Generator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    config = GenerateConfig(events=args.events, shards=4, clients=20, seed=7, reshard_at=0.5)
    work = Path(tempfile.mkdtemp(prefix="pistats-bench-"))
    try:
        countries = CountryLookup()
        started = time.perf_counter()
        items = Generator(config, countries).items()
        built = time.perf_counter() - started
        started = time.perf_counter()
        expected_counts((item.data for item in items), countries)
        counted = time.perf_counter() - started
        countries.close()

        started = time.perf_counter()
        result = generate(config, work / "rec")
        whole = time.perf_counter() - started
        size = sum(p.stat().st_size for p in (work / "rec").rglob("*") if p.is_file())
        print(f"events:                 {args.events}")
        print(f"build records:          {built:.2f} s  ({args.events / built:,.0f} records/s)")
        print(f"expected.json:          {counted:.2f} s  ({args.events / counted:,.0f} records/s)")
        print(f"pistats generate total: {whole:.2f} s  ({args.events / whole:,.0f} records/s)")
        print(f"recording size:         {size / 1e6:.1f} MB ({size / result.records:,.0f} bytes/record)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
