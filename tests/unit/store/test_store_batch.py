import pytest

from pistats.store.batch import Accumulator


def accumulator(**overrides):
    options = {"table": "events", "max_rows": 3, "max_bytes": 100, "max_age_s": 1.0, **overrides}
    return Accumulator(**options)


def test_full_on_rows():
    acc = accumulator()
    for index in range(3):
        assert not acc.full
        acc.add(index, (index,), f"k{index}", 1, now=0.0)
    assert acc.full and acc.due(0.0) and not acc.fits(1)
    batch = acc.take()
    assert batch.tuple_ids == (0, 1, 2) and batch.rows == ((0,), (1,), (2,))
    assert len(acc) == 0 and acc.take() is None


def test_bytes_bound_refuses_the_row_that_would_overflow():
    acc = accumulator(max_rows=100)
    acc.add("a", ("a",), "a", 60, now=0.0)
    assert not acc.fits(41) and acc.fits(40)
    with pytest.raises(ValueError):
        acc.add("b", ("b",), "b", 41, now=0.0)


def test_oversized_row_travels_alone():
    acc = accumulator()
    assert acc.fits(1000)
    acc.add("big", ("big",), "big", 1000, now=0.0)
    assert acc.full and not acc.fits(1)


def test_due_by_age_of_the_oldest_row():
    acc = accumulator()
    assert not acc.due(100.0)
    acc.add(1, (1,), "1", 1, now=10.0)
    acc.add(2, (2,), "2", 1, now=10.9)
    assert not acc.due(10.99)
    assert acc.due(11.0)
    acc.take()
    acc.add(3, (3,), "3", 1, now=20.0)
    assert not acc.due(20.5)


def test_token_follows_keys():
    first, second = accumulator(), accumulator()
    for acc in (first, second):
        acc.add(1, ("row",), "key-1", 1, now=0.0)
    other = accumulator()
    other.add(1, ("row",), "key-2", 1, now=0.0)
    assert first.take().token == second.take().token != other.take().token


def test_pending_tuples_ack_on_the_last_row_and_fail_once():
    from pistats.store.batch import PendingTuples

    pending = PendingTuples()
    assert pending.expect("a", 3) == [] and pending.expect("b", 1) == [] and pending.expect("z", 0) == ["z"]
    assert pending.stored(["a", "b"]) == ["b"]
    assert pending.stored(["a", "a"]) == ["a"] and len(pending) == 0
    assert pending.stored(["a"]) == []  # unknown (settled) ids settle nothing
    pending.expect("c", 3)
    assert pending.failed(["c"]) == ["c"]
    assert pending.failed(["c"]) == []  # failed once only
    assert pending.stored(["c"]) == [] and len(pending) == 0


def test_add_many_takes_what_fits_by_rows_and_by_bytes():
    rows, keys = [(n,) for n in range(6)], [f"k{n}" for n in range(6)]
    by_rows = accumulator(max_rows=4, max_bytes=100)
    assert by_rows.add_many("t", rows, keys, [30, 30, 30, 5, 5, 5], 0, now=5.0) == 4  # 95 bytes, 4 rows
    assert by_rows.full and by_rows.add_many("t", rows, keys, [30, 30, 30, 5, 5, 5], 4, now=5.0) == 0
    by_bytes = accumulator(max_rows=4, max_bytes=100)
    assert by_bytes.add_many("t", rows, keys, [30, 30, 30, 20, 5, 5], 0, now=5.0) == 3  # a 4th: 110 bytes
    assert by_bytes.nbytes == 90 and not by_bytes.full
    assert by_bytes.add_many("t", rows, keys, [30, 30, 30, 20, 5, 5], 3, now=5.0) == 0
    alone = accumulator(max_rows=4, max_bytes=100)
    assert alone.add_many("t", rows, keys, [500, 1, 1, 1, 1, 1], 0, now=5.0) == 1  # travels alone
    assert alone.full


def test_add_many_matches_adding_one_by_one():
    sizes = [30, 30, 30, 5, 50, 5, 5, 200, 1, 1]
    rows, keys = [(n,) for n in range(len(sizes))], [f"k{n}" for n in range(len(sizes))]

    def one_by_one():
        acc, batches = accumulator(max_rows=4, max_bytes=100), []
        for row, key, size in zip(rows, keys, sizes):
            if not acc.fits(size):
                batches.append(acc.take())
            acc.add("t", row, key, size, now=0.0)
            if acc.full:
                batches.append(acc.take())
        return batches + [acc.take()]

    def in_bulk():
        acc, batches, start = accumulator(max_rows=4, max_bytes=100), [], 0
        while start < len(rows):
            start += acc.add_many("t", rows, keys, sizes, start, now=0.0)
            if start < len(rows) or acc.full:
                batches.append(acc.take())
        return batches + [acc.take()]

    expected = one_by_one()
    assert [batch.rows if batch else None for batch in in_bulk()] == [batch.rows if batch else None for batch in expected]
    assert [batch.token for batch in in_bulk() if batch] == [batch.token for batch in expected if batch]


def test_add_many_sets_the_age_from_the_first_row_only():
    acc = accumulator(max_rows=10, max_bytes=1000)
    assert acc.add_many("t", [(1,)], ["k1"], [1], 0, now=10.0) == 1
    assert acc.add_many("u", [(2,)], ["k2"], [1], 0, now=10.9) == 1
    assert acc.due(11.0) and acc.take().tuple_ids == ("t", "u")
