"""The HTTP ingest (AWS Lambda handler and a local server): validation, write keys, PutRecords."""
