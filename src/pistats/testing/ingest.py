"""Stand-ins for the ingest's Redis and Kinesis sides, for measuring the service in process.

:class:`StaticKeys` accepts every write key as one client's, :class:`NoMarks` has never seen an
event, and :class:`AcceptingKinesis` answers PutRecords with every record stored. With them,
``IngestService`` runs validation, the registry (if any) and record building only.
"""

from __future__ import annotations

from pistats.ingest.keys import KeyLookup


class StaticKeys:
    def __init__(self, client_id: str = "acme"):
        self.client_id = client_id

    def resolve(self, key):
        return KeyLookup("ok", self.client_id, "000000000000")


class NoMarks:
    def seen(self, client_id, event_ids):
        return set()

    def mark(self, client_id, event_ids):
        return len(event_ids)


class AcceptingKinesis:
    def put_records(self, StreamName, Records):
        return {"Records": [{"ShardId": "shardId-000000000000", "SequenceNumber": "1"} for _ in Records]}
