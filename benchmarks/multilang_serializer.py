"""The JVM's side of multilang, side by side in one JVM: Storm's ``JsonSerializer`` against
``pistats.multilang.FastJsonSerializer`` (``jvm/``), on the topology's own tuples.

    .venv/bin/python benchmarks/multilang_serializer.py [--events 20000] [--batch 62] [--rounds 20]

Builds both hops' tuples as the topology does (``benchmarks/wire_codec.py``'s batches, packed by
``pistats.wire``: the spout's ``[bucket, records]`` and the enrich bolt's ``[events]``), compiles
the serializer and ``benchmarks/jvm/MultilangSerializerBench.java`` against Storm's jars, and
times, per record, writing each tuple as the JVM sends it to the next component and reading it as
a component's emit. The first half of the rounds warm the JIT; the best of the rest counts.
Prints the ratios fast/storm.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pistats.localenv.jvm import compile_with_serializer  # noqa: E402
from pistats.wire import pack  # noqa: E402
from wire_codec import hop_batches  # noqa: E402


def measure(classpath: str, tuples: list[list], rounds: int, folder: Path) -> dict[str, float]:
    """{"storm write": ns, ...}: the best of the second half of the rounds, for all the tuples."""
    path = folder / "tuples.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in tuples))
    out = subprocess.run(["java", "-cp", classpath, "MultilangSerializerBench", str(path), str(rounds)],
                         check=True, capture_output=True, text=True, timeout=600).stdout
    times: dict[str, list[int]] = {}
    for line in out.splitlines():
        name, step, nanos = line.split()
        times.setdefault(f"{name} {step}", []).append(int(nanos))
    return {key: min(values[len(values) // 2:]) for key, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=62)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        classpath = compile_with_serializer(Path("benchmarks/jvm/MultilangSerializerBench.java"), Path(tmp))
        for hop, (batches, records) in hop_batches(args.events, args.batch).items():
            if hop.startswith("spout"):
                tuples = [[index % 16, pack(json.loads(batch))] for index, batch in enumerate(batches)]
            else:
                tuples = [[pack(json.loads(batch))] for batch in batches]
            best = measure(classpath, tuples, args.rounds, Path(tmp))
            figures = {key: round(nanos / 1000 / records, 2) for key, nanos in best.items()}
            results[hop] = {
                "us_per_record": figures,
                "fast_vs_storm": {step: round(figures[f"fast {step}"] / figures[f"storm {step}"], 2)
                                  for step in ("write", "read")},
                "bytes_per_tuple": round(sum(len(json.dumps(t)) for t in tuples) / len(tuples)),
            }
            print(f"{hop}: {len(tuples)} tuples of about {records // len(tuples)} records, "
                  f"{results[hop]['bytes_per_tuple']} bytes of JSON each")
            for step in ("write", "read"):
                print(f"  {step:5}  storm {figures[f'storm {step}']:5.2f} us/record  fast {figures[f'fast {step}']:5.2f}"
                      f"  ratio {results[hop]['fast_vs_storm'][step]:.2f}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
