"""The garbage collector of a long-running pipeline process, set once its start-up is done.

CPython's cycle collector runs its youngest generation every 700 net container allocations and
walks every older object now and then. A pipeline process holds what it built at start-up (the
GeoIP and user-agent machinery, botocore's service models, chdb) and, between flushes, the rows
of its open batches: under load the spout, the bolts and the sink spent 6-16 us of CPU per
record in collections that found almost nothing, since the pipeline's objects do not form cycles
(docs/performance.md). ``settle_heap`` moves what start-up built out of the collector's sight
(``gc.freeze``) and collects only after ``YOUNG_THRESHOLD`` net container allocations: cyclic
garbage, should any appear, still triggers a collection once that many objects accumulate.
"""

from __future__ import annotations

import gc

# Net container allocations (allocations less deallocations) between young collections: a
# few MiB of objects at most, above a batch's transient growth.
YOUNG_THRESHOLD = 50_000


def settle_heap() -> None:
    """Call at the end of a process's start-up, before its main loop."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
