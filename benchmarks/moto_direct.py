"""moto's GetRecords answers written directly: the same bytes, without its generic serializer.

moto 5.2 writes every answer by walking botocore's shape of the operation, member by member:
for GetRecords that costs it 110-140 us of CPU per record served (the shape walk, base64 decoding
the stored record then encoding it again, a timestamp conversion through ``timetuple``), more
than the spout spends reading it. Real Kinesis serves records from other machines; on these two
cores moto's cost competes with the topology it feeds and pulls the topology's rate down by
about a fifth, which says something about the emulator, not about Storm.

``serving_get_records_directly()`` keeps moto's backend and its server (iterators, limits,
sequence numbers, resharding, errors: everything but the writing of a successful answer) and
writes the answer's ``Records`` with ``json.dumps`` in the serializer's member order, the stored
base64 as it is and the timestamp truncated to milliseconds as the serializer does. The rest of
the answer (``NextShardIterator``, ``MillisBehindLatest``, headers) still goes through moto's
serializer, with an empty record list. tests/unit/benchmarks/test_moto_direct.py
checks the bodies are byte for byte moto's own.

moto also runs every answer's body through a regular expression that fills in an XML
``<RequestId>``; on a GetRecords page of a thousand records that costs it about 20 us of CPU per
record (with a lookbehind tried at every character), though a JSON answer has no such element.
Within the block, a Kinesis answer whose body does not contain ``<RequestId>`` skips it: a body
the expression cannot match comes back unchanged either way, and the headers are moto's own.
"""

from __future__ import annotations

import calendar
import contextlib
import json
from collections.abc import Iterator

RECORDS_MARKER = '"Records": []'
REQUEST_ID_ELEMENT = "<RequestId>"


def _arrival(value) -> int | float:
    """moto's unix timestamp: whole seconds, plus milliseconds (truncated) when there are any."""
    seconds = calendar.timegm(value.utctimetuple())
    return seconds + (value.microsecond // 1000) / 1000.0 if value.microsecond else seconds


def _records_json(records) -> str:
    # The member order of botocore's Record shape, which moto's serializer follows.
    return json.dumps([{"SequenceNumber": str(record.sequence_number),
                        "ApproximateArrivalTimestamp": _arrival(record.created_at_datetime),
                        "Data": record.data, "PartitionKey": record.partition_key}
                       for record in records])


@contextlib.contextmanager
def serving_get_records_directly() -> Iterator[None]:
    """Within the block, moto (in this process) writes GetRecords answers' records directly."""
    from moto.core.responses import ActionResult
    from moto.kinesis.responses import KinesisResponse

    stock = KinesisResponse.get_records
    own_enrich = "_enrich_response" in vars(KinesisResponse)
    stock_enrich = KinesisResponse._enrich_response

    def enrich_response(headers, body):
        # moto's own with an empty body when the expression has nothing to match in this one.
        if isinstance(body, str) and REQUEST_ID_ELEMENT not in body:
            return stock_enrich(headers, "")[0], body
        return stock_enrich(headers, body)

    class _DirectRecords(ActionResult):
        def __init__(self, result: dict, records: list) -> None:
            super().__init__({**result, "Records": []})
            self._records = records

        def execute_result(self, context):
            status, headers, body = super().execute_result(context)
            if isinstance(body, bytes):
                body = body.decode()
            if body.count(RECORDS_MARKER) != 1:  # not the shape this was written for: moto's own
                return ActionResult({**self.result, "Records": [r.to_json() for r in self._records]}
                                    ).execute_result(context)
            body = body.replace(RECORDS_MARKER, '"Records": ' + _records_json(self._records))
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            return status, headers, body

    def get_records(self):
        # moto's own handler (moto/kinesis/responses.py), keeping the fetched records as they are
        # stored: the stock one turns each into a dict of decoded bytes the serializer encodes again.
        next_iterator, records, millis_behind = self.kinesis_backend.get_records(
            self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit"))
        return _DirectRecords({"NextShardIterator": next_iterator, "MillisBehindLatest": millis_behind}, records)

    KinesisResponse.get_records = get_records
    KinesisResponse._enrich_response = staticmethod(enrich_response)
    try:
        yield
    finally:
        KinesisResponse.get_records = stock
        if own_enrich:
            KinesisResponse._enrich_response = staticmethod(stock_enrich)
        else:
            del KinesisResponse._enrich_response
