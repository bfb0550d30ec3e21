"""How a long-running worker process sets up Python's cyclic garbage collector once it has started.

Each topology component (the spout, the enrich and sink bolts) imports large libraries and
builds large read-only state at start-up (botocore's service models, the GeoIP reader and user
agent caches, chdb and Arrow), then allocates records, rows and ledger entries that live for a
second or two each. With the collector's defaults every full collection walks the start-up heap
again, and the records that outlive a young collection are walked again at every later one.
Measured with CPU time inside ``gc.callbacks`` over a topology leg of 90,000 events
(benchmarks/compare.py's), three pairs: the four Python components spent 1.41-1.51 s collecting
with the defaults and 0.18-0.21 s after ``settle_after_startup`` (docs/performance.md).
"""

from __future__ import annotations

import gc

# Allocations (net of deallocations) between young collections; the default is 700. Memory freed
# by reference counting is unaffected: only objects in reference cycles wait up to this many
# allocations longer, a few MiB at most.
YOUNG_GENERATION_THRESHOLD = 50_000


def settle_after_startup() -> None:
    """Call once a process has built its long-lived state: that state moves to the collector's
    permanent generation, which no collection walks again (``gc.freeze``), and young collections
    run every ``YOUNG_GENERATION_THRESHOLD`` allocations instead of every 700. Objects frozen here
    and later dropped are freed by reference counting as ever; only a cycle among them would stay."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
