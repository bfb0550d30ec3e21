"""The chaos option's fault plan: parsing and periodic faults (pistats.testing.faults)."""

import pytest

from pistats.kinesis.config import KinesisConfig
from pistats.testing.faults import FaultyKinesis, parse_fault_plan


class _Exceptions:
    @staticmethod
    def from_code(code):
        return type(code, (Exception,), {"__init__": lambda self, error, operation: Exception.__init__(self, code)})


class _Client:
    exceptions = _Exceptions()

    def list_shards(self, **kwargs):
        return {"Shards": []}


def test_plan_parses_into_periodic_faults():
    faults = parse_fault_plan("GetRecords:ProvisionedThroughputExceededException@7, ListShards:LimitExceededException@2")
    assert [(f.operation, f.code, f.every) for f in faults] == [
        ("GetRecords", "ProvisionedThroughputExceededException", 7),
        ("ListShards", "LimitExceededException", 2),
    ]


@pytest.mark.parametrize("plan", ["GetRecords@3", "GetRecords:Throttled", "PutRecord:X@1", "GetRecords:X@0"])
def test_bad_plans_are_refused(plan):
    with pytest.raises(ValueError, match="bad fault plan item"):
        parse_fault_plan(plan)


def test_config_validates_its_fault_plan():
    assert KinesisConfig(stream="s", fault_plan="GetRecords:ExpiredIteratorException@11").fault_plan
    with pytest.raises(ValueError):
        KinesisConfig(stream="s", fault_plan="nonsense")


def test_periodic_fault_fails_every_nth_call_forever():
    client = FaultyKinesis(_Client())
    for fault in parse_fault_plan("ListShards:LimitExceededException@3"):
        client.add(fault)
    outcomes = []
    for _ in range(9):
        try:
            client.list_shards()
            outcomes.append("ok")
        except Exception as error:  # the injected ClientError stand-in
            outcomes.append(str(error))
    assert outcomes == ["ok", "ok", "LimitExceededException"] * 3
