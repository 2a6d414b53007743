"""DynamoDB tables the tests create, keyed as `.chalice/infrastructure.yaml` declares them."""

from __future__ import annotations

from typing import Any


def create_ledger_table(client: Any, name: str) -> None:
    """The call ledger (and the results table): one item per job and row."""
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "job_id", "AttributeType": "S"},
            {"AttributeName": "row", "AttributeType": "N"},
        ],
        KeySchema=[
            {"AttributeName": "job_id", "KeyType": "HASH"},
            {"AttributeName": "row", "KeyType": "RANGE"},
        ],
    )


def create_rate_table(client: Any, name: str) -> None:
    """The rate-limit table: the account's slot counters and the senders' schedules."""
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
