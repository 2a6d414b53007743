"""The results sink: the latest attempt of every row in DynamoDB, for look-ups while a job runs.

One item per (job_id, row). Beside its key, the table (ResultsTable in
.chalice/infrastructure.yaml) has two indexes:
- `by_outcome`: job_id + outcome_row ("{outcome}#{row:09d}"), a job's rows of one outcome in order;
- `by_error_code`: error_code + job_row ("{job_id}#{row:09d}"), only rows that have an error code.
Items carry the number called, which is personal data, so each expires (`expires_at`, the table's
TTL attribute) `retention_days` after it was written.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BY_OUTCOME = "by_outcome"
BY_ERROR_CODE = "by_error_code"
DAY_SECONDS = 86_400

# A redelivered envelope (same attempt) overwrites its own item with the same content; an older
# attempt arriving late (SNS and SQS do not keep order) must not replace a newer one.
_NEWER_OR_SAME = "attribute_not_exists(#job_id) OR #attempt <= :attempt"


@dataclass(frozen=True)
class RowResult:
    """The latest recorded attempt of one row."""

    job_id: str
    row: int
    api: str
    outcome: str
    attempt: int
    status: int | None
    error_code: int | None
    sid: str | None
    to: str | None
    updated_at: float


def outcome_row(outcome: str, row: int) -> str:
    # Zero-padded so that the index's string order is row order.
    return f"{outcome}#{row:09d}"


def job_row(job_id: str, row: int) -> str:
    return f"{job_id}#{row:09d}"


def number_of(request: Mapping[str, Any]) -> str | None:
    """The number the row called: `To`, or `PhoneNumber` for a Lookup."""
    value = request.get("To", request.get("PhoneNumber"))
    return value if isinstance(value, str) else None


def item_of(envelope: Mapping[str, Any], *, now: float, retention_days: int) -> dict[str, Any]:
    """The DynamoDB item (typed attribute values) recording one envelope."""
    job_id = str(envelope["job_id"])
    row = int(envelope["row"])
    outcome = str(envelope["outcome"])
    request: Mapping[str, Any] = envelope.get("request") or {}
    error: Mapping[str, Any] = envelope.get("error") or {}
    timings: Mapping[str, Any] = envelope.get("timings") or {}
    strings: dict[str, str | None] = {
        "job_id": job_id,
        "api": str(envelope["api"]),
        "outcome": outcome,
        "outcome_row": outcome_row(outcome, row),
        "job_row": job_row(job_id, row),
        "error_message": error.get("message"),
        "sid": envelope.get("sid"),
        "to": number_of(request),
        "request": json.dumps(request, separators=(",", ":")),
        "headers": json.dumps(envelope.get("headers") or {}, separators=(",", ":")),
    }
    numbers: dict[str, float | int | None] = {
        "row": row,
        "attempt": int(envelope["attempt"]),
        "status": envelope.get("status"),
        "error_code": error.get("code"),
        "due_at": timings.get("due_at"),
        "started_at": timings.get("started_at"),
        "finished_at": timings.get("finished_at"),
        "updated_at": now,
        # TTL reads whole seconds.
        "expires_at": int(now) + retention_days * DAY_SECONDS,
    }
    item: dict[str, Any] = {k: {"S": str(v)} for k, v in strings.items() if v is not None}
    item.update({k: {"N": str(v)} for k, v in numbers.items() if v is not None})
    return item


def _optional_int(item: Mapping[str, Any], name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def _optional_str(item: Mapping[str, Any], name: str) -> str | None:
    return str(item[name]["S"]) if name in item else None


def row_result_of(item: Mapping[str, Any]) -> RowResult:
    return RowResult(
        job_id=item["job_id"]["S"],
        row=int(item["row"]["N"]),
        api=item["api"]["S"],
        outcome=item["outcome"]["S"],
        attempt=int(item["attempt"]["N"]),
        status=_optional_int(item, "status"),
        error_code=_optional_int(item, "error_code"),
        sid=_optional_str(item, "sid"),
        to=_optional_str(item, "to"),
        updated_at=float(item["updated_at"]["N"]),
    )


class ResultsTable:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        *,
        retention_days: int = 30,
        clock: Callable[[], float] = time.time,
        page_size: int | None = None,
    ) -> None:
        """`page_size` caps the items per Query page; None leaves DynamoDB's 1 MB pages."""
        self._db = dynamodb
        self._table = table
        self._retention_days = retention_days
        self._clock = clock
        self._page_size = page_size

    def record(self, envelopes: Sequence[Mapping[str, Any]]) -> int:
        """Record each envelope as its row's latest attempt; returns the items written.

        An envelope older than the row's recorded attempt is skipped. Any other failure raises,
        so the batch is delivered again; rewriting what was already written is harmless.
        """
        written = 0
        for envelope in envelopes:
            item = item_of(envelope, now=self._clock(), retention_days=self._retention_days)
            try:
                self._db.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression=_NEWER_OR_SAME,
                    ExpressionAttributeNames={"#job_id": "job_id", "#attempt": "attempt"},
                    ExpressionAttributeValues={":attempt": item["attempt"]},
                )
            except self._db.exceptions.ConditionalCheckFailedException:
                continue
            written += 1
        return written

    def outcomes(self, job_id: str) -> Iterator[RowResult]:
        """Every recorded row of a job, in row order."""
        for item in self._job_items(job_id):
            yield row_result_of(item)

    def count_by_outcome(self, job_id: str) -> Counter[str]:
        """How many of a job's rows ended in each final outcome ("retrying" is not final)."""
        counts: Counter[str] = Counter()
        for item in self._job_items(job_id, outcome_only=True):
            outcome = item["outcome"]["S"]
            if outcome != "retrying":
                counts[outcome] += 1
        return counts

    def rows_with_error(self, error_code: int) -> Iterator[RowResult]:
        """Every recorded row, of any job, whose latest attempt has this Twilio error code."""
        for item in self._query(
            IndexName=BY_ERROR_CODE,
            KeyConditionExpression="#error_code = :code",
            ExpressionAttributeNames={"#error_code": "error_code"},
            ExpressionAttributeValues={":code": {"N": str(error_code)}},
        ):
            yield row_result_of(item)

    def _job_items(self, job_id: str, *, outcome_only: bool = False) -> Iterator[dict[str, Any]]:
        names = {"#job_id": "job_id"}
        kwargs: dict[str, Any] = {}
        if outcome_only:
            names["#outcome"] = "outcome"
            kwargs["ProjectionExpression"] = "#outcome"
        # Consistent: the reconciler decides from these reads that a job is complete.
        return self._query(
            KeyConditionExpression="#job_id = :job_id",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":job_id": {"S": job_id}},
            ConsistentRead=True,
            **kwargs,
        )

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs["TableName"] = self._table
        if self._page_size is not None:
            kwargs["Limit"] = self._page_size
        while True:
            page = self._db.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
