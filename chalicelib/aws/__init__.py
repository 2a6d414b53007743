"""Adapters, one per AWS resource: the buckets, the send queue, the jobs, results and suppression
tables, the event bus. Each takes its boto3 client in __init__."""
