"""What `callqueue run` says when it gives up with rows that have no outcome: each such row's
item in the results table (its call ledger state: `calling` since when, `retry`, or no item at
all) and what the send queue still holds, so a user sees where the rows stopped instead of a
bare count."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# How many open rows the warning names; the report lists them all.
NAMED = 10
QUEUE_COUNTS = {
    "ApproximateNumberOfMessages": "visible",
    "ApproximateNumberOfMessagesNotVisible": "in flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}


@dataclass(frozen=True)
class OpenRow:
    """A row with an item in the results table and no final outcome seen."""

    job_id: str
    row: int
    state: str  # the ledger's: calling, retry, done (published, not seen), or "" (no claim)
    attempt: int | None
    claimed_seconds_ago: float | None

    def describe(self) -> str:
        parts = [f"job {self.job_id} row {self.row}: {self.state or 'never claimed'}"]
        if self.attempt is not None:
            parts.append(f"attempt {self.attempt}")
        if self.claimed_seconds_ago is not None:
            parts.append(f"claimed {self.claimed_seconds_ago:.0f} s ago")
        return ", ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "row": self.row,
            "state": self.state,
            "attempt": self.attempt,
            "claimed_seconds_ago": self.claimed_seconds_ago,
        }


def open_rows(
    dynamodb: Any,
    table: str,
    jobs: Iterable[str],
    settled: Callable[[str, int], bool],
    now: float,
) -> list[OpenRow]:
    """The rows of `jobs` whose items the table holds and that `settled` says have no outcome."""
    found: list[OpenRow] = []
    for job_id in jobs:
        pages = dynamodb.get_paginator("query").paginate(
            TableName=table,
            KeyConditionExpression="job_id = :j",
            ExpressionAttributeValues={":j": {"S": job_id}},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                row = int(item["row"]["N"])
                if settled(job_id, row):
                    continue
                claimed = item.get("claimed_at", {}).get("N")
                attempt = item.get("attempt", {}).get("N")
                found.append(
                    OpenRow(
                        job_id,
                        row,
                        item.get("state", {}).get("S", ""),
                        int(attempt) if attempt is not None else None,
                        now - float(claimed) if claimed is not None else None,
                    )
                )
    return sorted(found, key=lambda r: (r.job_id, r.row))


def queue_counts(sqs: Any, name: str) -> dict[str, int]:
    """The queue's messages by where they are: visible, in flight, delayed."""
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(QUEUE_COUNTS))
    return {name: int(attributes["Attributes"].get(key, 0)) for key, name in QUEUE_COUNTS.items()}


def warning(rows: list[OpenRow], unclaimed: int, queue: dict[str, int]) -> str:
    """The lines a run that gave up prints: the open rows (the first NAMED), how many rows have
    no item at all, and the send queue's counts."""
    lines = [f"callqueue: rows without an outcome: {len(rows) + unclaimed}"]
    lines += [f"  {r.describe()}" for r in rows[:NAMED]]
    if len(rows) > NAMED:
        lines.append(f"  ... and {len(rows) - NAMED} more (the report lists them all)")
    if unclaimed:
        lines.append(f"  {unclaimed} never reached the sender (no item in the results table)")
    counts = ", ".join(f"{n} {name}" for name, n in queue.items())
    lines.append(f"  the send queue holds: {counts}")
    return "\n".join(lines)
