import gc
import weakref

import pytest

from pistats.heap import YOUNG_GENERATION_THRESHOLD, settle_after_startup


@pytest.fixture
def restored_collector():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_what_start_up_built_is_frozen_and_young_collections_come_less_often(restored_collector):
    gc.unfreeze()
    built_at_start_up = [object() for _ in range(10)]
    middle, old = gc.get_threshold()[1:]
    settle_after_startup()
    assert gc.get_freeze_count() >= len(built_at_start_up)
    assert gc.get_threshold() == (YOUNG_GENERATION_THRESHOLD, middle, old)
    assert YOUNG_GENERATION_THRESHOLD > 700  # the interpreter's default


def test_cycles_made_after_start_up_are_still_collected(restored_collector):
    settle_after_startup()

    class Node:
        pass

    collected = []
    node = Node()
    node.self = node  # a cycle: reference counting alone never frees it
    weakref.finalize(node, collected.append, True)
    del node
    gc.collect()
    assert collected == [True]
