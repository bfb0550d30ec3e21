"""registry_write's arrays, written directly, are byte for byte what psycopg's binary list dumper writes."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from psycopg.adapt import PyFormat, Transformer

from pistats.registry.arrays import (
    BYTEA_ARRAY_OID,
    TEXT_ARRAY_OID,
    TIMESTAMPTZ_ARRAY_OID,
    bytea_array,
    text_array,
    timestamptz_array,
)


def psycopg_binary(values: list) -> bytes:
    return bytes(Transformer().get_dumper(values, PyFormat.BINARY).dump(values))


def some_texts(rng: random.Random) -> list:
    alphabet = "aZ09 '\"\\{},é字🙂\u2028"
    return [None if rng.random() < 0.2 else "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
            for _ in range(rng.randrange(1, 30))]


@pytest.mark.parametrize("seed", range(20))
def test_text_arrays_match_psycopg(seed):
    values = some_texts(random.Random(seed))
    values[0] = values[0] or "x"  # psycopg needs one non-NULL element to know the type
    assert text_array(values) == psycopg_binary(values)


@pytest.mark.parametrize("seed", range(20))
def test_timestamptz_arrays_match_psycopg(seed):
    rng = random.Random(seed)
    zones = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    values = [None if rng.random() < 0.2 else
              datetime(rng.randrange(1900, 2100), rng.randrange(1, 13), rng.randrange(1, 29), rng.randrange(24),
                       rng.randrange(60), rng.randrange(60), rng.randrange(1_000_000), tzinfo=rng.choice(zones))
              for _ in range(rng.randrange(1, 30))]
    values[0] = values[0] or datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc)  # before the epoch
    assert timestamptz_array(values) == psycopg_binary(values)


@pytest.mark.parametrize("seed", range(10))
def test_bytea_arrays_match_psycopg(seed):
    rng = random.Random(seed)
    values = [None if rng.random() < 0.2 else rng.randbytes(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 30))]
    values[0] = values[0] or b"\x00"
    assert bytea_array(values) == psycopg_binary(values)


def test_the_array_type_oids_are_psycopgs():
    for values, oid in ((["a"], TEXT_ARRAY_OID), ([b"a"], BYTEA_ARRAY_OID),
                        ([datetime(2026, 1, 1, tzinfo=timezone.utc)], TIMESTAMPTZ_ARRAY_OID)):
        assert Transformer().get_dumper(values, PyFormat.BINARY).oid == oid


def test_a_naive_datetime_is_refused():
    with pytest.raises(TypeError):
        timestamptz_array([datetime(2026, 1, 1)])


def test_text_is_encoded_in_the_connections_encoding():
    assert text_array(["é"], "latin-1")[-5:] == b"\x00\x00\x00\x01\xe9"  # length 1, then the byte
    assert text_array(["é"])[-6:] == b"\x00\x00\x00\x02\xc3\xa9"
