from dataclasses import dataclass

import pytest

from pistats.kinesis.microbatch import InFlight, bucket_of, split


@dataclass
class Record:
    partition_key: str


@dataclass
class Delivery:
    message_id: str
    record: Record


def deliveries(keys):
    return [Delivery(f"m{n}", Record(key)) for n, key in enumerate(keys)]


def test_bucket_is_stable_across_processes_and_in_range():
    # crc32, not Python's per-process salted hash(): these values hold in every process and release.
    assert bucket_of("abc", 1000) == 891568578 % 1000  # zlib.crc32(b"abc")
    assert all(0 <= bucket_of(f"k{n}", 7) < 7 for n in range(200))
    assert bucket_of("\ud800 lone surrogate", 4) in range(4)  # any str a partition key may hold


def test_split_groups_by_bucket_and_keeps_order_within_each():
    keys = [f"c:u{n % 5}" for n in range(40)]
    batches = split(deliveries(keys), buckets=3, max_records=100)
    assert sorted(id_ for batch in batches for id_ in batch.message_ids) == sorted(f"m{n}" for n in range(40))
    assert len({batch.bucket for batch in batches}) == len(batches)
    for batch in batches:
        assert {bucket_of(d.record.partition_key, 3) for d in batch.deliveries} == {batch.bucket}
        numbers = [int(id_[1:]) for id_ in batch.message_ids]
        assert numbers == sorted(numbers)


def test_split_caps_batches_and_keeps_their_order():
    batches = split(deliveries(["same"] * 7), buckets=4, max_records=3)
    assert [batch.message_ids for batch in batches] == [("m0", "m1", "m2"), ("m3", "m4", "m5"), ("m6",)]


def test_split_of_nothing_and_bad_settings():
    assert split([], 4, 10) == []
    with pytest.raises(ValueError):
        split(deliveries(["a"]), 0, 10)
    with pytest.raises(ValueError):
        split(deliveries(["a"]), 1, 0)


def test_in_flight_maps_each_batch_id_to_its_records_once():
    in_flight = InFlight()
    first, second = in_flight.open(["a", "b"]), in_flight.open(["c"])
    assert first != second and len(in_flight) == 2
    assert in_flight.close(second) == ("c",)
    assert in_flight.close(second) == ()  # a repeated ack settles nothing
    assert in_flight.close("b999") == ()  # a tuple of the process before a restart
    assert in_flight.close(first) == ("a", "b") and len(in_flight) == 0
