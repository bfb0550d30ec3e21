"""Kinesis: shard reading, checkpoints, recordings and replay (boto3 directly)."""
