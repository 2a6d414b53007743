"""DynamoDB adapter for the jobs table: one item per job, keyed by job id."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

JobState = Literal["splitting", "running", "released", "completed", "failed", "cancelled"]


class JobExists(Exception):
    """A job with this id was already recorded: the same upload was delivered again."""


@dataclass(frozen=True)
class Job:
    job_id: str
    bucket: str
    key: str
    etag: str
    state: JobState
    cps: int
    window_seconds: int
    created_at: float
    rows: int = 0
    valid: int = 0
    rejected: int = 0
    chunks: int = 0
    started_at: float | None = None
    released_chunks: int = 0
    error: str | None = None
    rejects_key: str | None = None


_NUMBERS = {
    "cps",
    "window_seconds",
    "created_at",
    "rows",
    "valid",
    "rejected",
    "chunks",
    "started_at",
    "released_chunks",
}


def _to_item(job: Job) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for name, value in asdict(job).items():
        if value is None:
            continue
        item[name] = {"N": str(value)} if name in _NUMBERS else {"S": str(value)}
    return item


def _from_item(item: dict[str, Any]) -> Job:
    values: dict[str, Any] = {}
    for name, typed in item.items():
        if name in _NUMBERS:
            number = Decimal(typed["N"])
            is_int = name not in ("created_at", "started_at")
            values[name] = int(number) if is_int else float(number)
        elif "S" in typed and name in Job.__dataclass_fields__:
            values[name] = typed["S"]
    return Job(**values)


class JobStore:
    def __init__(self, dynamodb: DynamoDBClient, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def create(self, job: Job) -> None:
        """Record a new job; a second delivery of the same upload raises JobExists."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item=_to_item(job),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            raise JobExists(job.job_id) from None

    def get(self, job_id: str) -> Job | None:
        item = self._db.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        return None if item is None else _from_item(item)

    def update(self, job_id: str, **changes: Any) -> None:
        """Set the given attributes (None removes one)."""
        sets: list[str] = []
        removes: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        for i, (name, value) in enumerate(sorted(changes.items())):
            names[f"#a{i}"] = name
            if value is None:
                removes.append(f"#a{i}")
            else:
                sets.append(f"#a{i} = :v{i}")
                values[f":v{i}"] = {"N": str(value)} if name in _NUMBERS else {"S": str(value)}
        expression = ""
        if sets:
            expression += "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"job_id": {"S": job_id}},
            "UpdateExpression": expression.strip(),
            "ExpressionAttributeNames": names,
            "ConditionExpression": "attribute_exists(job_id)",
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        self._db.update_item(**kwargs)
