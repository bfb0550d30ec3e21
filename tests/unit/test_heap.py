import gc

from pistats.heap import YOUNG_THRESHOLD, settle_heap


def test_settle_heap_freezes_start_up_and_raises_the_young_threshold():
    before = gc.get_threshold()
    built_at_start_up = [{"n": n} for n in range(1000)]
    try:
        settle_heap()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() >= len(built_at_start_up)
        # Cycles made afterwards are still found: by a collection, once enough accumulate.
        cycle = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
