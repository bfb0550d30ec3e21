"""The analytics store: ClickHouse server and embedded chdb backends, schema, batching sink, report."""
