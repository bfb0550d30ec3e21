import itertools
import math

import pytest

from pistats.store.refusal import DATA_ERROR_CODES, Refused, error_code, is_refusal, isolate_refused

# Failures that are not the rows' fault: retried, then the tuples are replayed.
TRANSIENT = {
    None: "connection refused (no code)",
    3: "UNEXPECTED_END_OF_FILE",
    16: "NO_SUCH_COLUMN_IN_TABLE (a schema problem, not the rows')",
    32: "ATTEMPT_TO_READ_AFTER_EOF",
    33: "CANNOT_READ_ALL_DATA",
    36: "BAD_ARGUMENTS",
    60: "UNKNOWN_TABLE",
    81: "UNKNOWN_DATABASE",
    115: "UNKNOWN_SETTING",
    159: "TIMEOUT_EXCEEDED",
    160: "TOO_SLOW",
    164: "READONLY",
    173: "CANNOT_ALLOCATE_MEMORY",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR",
    236: "ABORTED",
    241: "MEMORY_LIMIT_EXCEEDED",
    242: "TABLE_IS_READ_ONLY",
    243: "NOT_ENOUGH_SPACE",
    279: "ALL_CONNECTION_TRIES_FAILED",
    394: "QUERY_WAS_CANCELLED",
    425: "SYSTEM_ERROR",
    516: "AUTHENTICATION_FAILED",
    999: "KEEPER_EXCEPTION",
    1000: "POCO_EXCEPTION",
}


@pytest.mark.parametrize("code", sorted(DATA_ERROR_CODES))
def test_data_errors_are_refusals(code):
    assert is_refusal(code, f"Code: {code}. DB::Exception: something about a value")


@pytest.mark.parametrize("code", sorted(TRANSIENT, key=lambda code: -1 if code is None else code))
def test_other_failures_are_transient(code):
    assert not is_refusal(code, "Code: whatever. DB::Exception: some failure")


@pytest.mark.parametrize("message, refused", [
    ("Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). The limit is "
     "controlled by 'max_partitions_per_insert_block' setting.", True),  # chdb 26.9's words
    ("Code: 252. DB::Exception: Too many partitions for a single INSERT block (101 partitions, limit is 100).", True),
    ("Code: 252. DB::Exception: Too many parts (300 with average size of 1.00 KiB) in table 'db.events'. "
     "Merges are processing significantly slower than inserts. (TOO_MANY_PARTS)", False),
])
def test_code_252_is_a_refusal_only_for_too_many_partitions(message, refused):
    assert is_refusal(252, message) is refused


def test_data_and_transient_codes_are_disjoint():
    assert not set(DATA_ERROR_CODES) & set(TRANSIENT)


@pytest.mark.parametrize("message, code", [
    ("Code: 252. DB::Exception: Too many partitions", 252),
    ("Code: 469.\nDB::Exception: Constraint `c` for table db.t is violated", 469),  # clickhouse-driver's form
    ("chdb:///x?database=pistats: Code: 6. DB::Exception: Cannot parse", 6),
    ("Connection refused", None),
    ("", None),
])
def test_error_code_from_the_message(message, code):
    assert error_code(message) == code


def bad_rows(refused_rows, calls=None):
    """An insert that refuses any range holding one of ``refused_rows``, with the message of the
    first one in it; ``calls`` records each (start, stop)."""

    def insert(start, stop):
        if calls is not None:
            calls.append((start, stop))
        inside = [row for row in sorted(refused_rows) if start <= row < stop]
        return f"row {inside[0]}" if inside else None

    return insert


def covers(isolation, size):
    """The refused ranges are disjoint, in order, and with the stored rows make up the batch."""
    position, total = 0, 0
    for part in isolation.refused:
        assert part.start >= position and part.stop > part.start
        position, total = part.stop, total + len(part)
    return total + isolation.stored == size


@pytest.mark.parametrize("size", range(1, 11))
def test_every_set_of_refused_rows_is_found_exactly_with_enough_inserts(size):
    for count in range(size + 1):
        for refused_rows in itertools.combinations(range(size), count):
            if not refused_rows:
                continue  # isolate_refused is only called for a batch that was refused
            calls = []
            found = isolate_refused(size, "batch refused", bad_rows(refused_rows, calls), max_inserts=10_000)
            assert [(part.start, part.stop) for part in found.refused] == [(row, row + 1) for row in refused_rows]
            # Each refused row carries the message of its own refusal (of the batch's, when the
            # batch is that one row).
            assert all(part.isolated for part in found.refused)
            assert all(part.message == ("batch refused" if size == 1 else f"row {part.start}") for part in found.refused)
            assert found.stored == size - len(refused_rows) and found.inserts == len(calls)
            assert found.inserts <= 2 * len(refused_rows) * max(1, math.ceil(math.log2(size)))


def test_one_refused_row_in_5000_costs_two_inserts_per_level():
    calls = []
    found = isolate_refused(5000, "batch refused", bad_rows({4321}, calls), max_inserts=64)
    assert found.refused == (Refused(4321, 4322, "row 4321"),)
    assert found.stored == 4999
    assert found.inserts == len(calls) <= 2 * math.ceil(math.log2(5000))
    assert calls[:2] == [(0, 2500), (2500, 5000)]


def test_when_every_row_is_refused_the_budget_bounds_the_inserts():
    calls = []
    found = isolate_refused(5000, "schema mismatch", lambda start, stop: calls.append((start, stop)) or "mismatch",
                            max_inserts=64)
    assert found.inserts == len(calls) == 64
    assert found.stored == 0 and covers(found, 5000)
    assert not all(part.isolated for part in found.refused)  # refused together, not told apart


@pytest.mark.parametrize("budget", [0, 1, 2, 3, 7, 20])
def test_any_budget_accounts_for_every_row(budget):
    refused_rows = {3, 4, 17, 40, 41, 42, 63}
    found = isolate_refused(64, "batch refused", bad_rows(refused_rows), max_inserts=budget)
    assert found.inserts <= budget and covers(found, 64)
    refused = {row for part in found.refused for row in range(part.start, part.stop)}
    assert refused >= refused_rows  # a refused row is never counted as stored


def test_a_refusal_of_the_rows_together_is_split_until_each_part_goes_in():
    """Too many partitions: no row is at fault, any part spanning at most 100 months goes in."""
    months = [index // 4 for index in range(600)]  # 150 months, in arrival order

    def insert(start, stop):
        return "Too many partitions" if len(set(months[start:stop])) > 100 else None

    found = isolate_refused(600, "Too many partitions", insert, max_inserts=64)
    assert found.refused == () and found.stored == 600 and found.inserts == 2


def test_single_row_and_empty_batches():
    assert isolate_refused(1, "refused", bad_rows({0}), max_inserts=64).refused == (Refused(0, 1, "refused"),)
    assert isolate_refused(0, "refused", bad_rows(set()), max_inserts=64).refused == ()


def test_a_transient_failure_while_splitting_propagates():
    def insert(start, stop):
        if stop - start < 50:
            raise ConnectionError("server went away")
        return "refused" if start <= 7 < stop else None

    with pytest.raises(ConnectionError):
        isolate_refused(200, "refused", insert, max_inserts=64)


def test_same_answers_give_the_same_inserts():
    first, second = [], []
    isolate_refused(1000, "refused", bad_rows({5, 600, 601}, first), max_inserts=40)
    isolate_refused(1000, "refused", bad_rows({5, 600, 601}, second), max_inserts=40)
    assert first == second


def test_negative_budget_is_a_bug():
    with pytest.raises(ValueError):
        isolate_refused(10, "refused", bad_rows({1}), max_inserts=-1)
