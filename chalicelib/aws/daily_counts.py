"""The account's rows released per day (ACCOUNT_DAILY_LIMIT), shared by every job's release loop:
one item per day of the account's time zone in the jobs table, under a key no job id can have
(job ids are letters, digits, - and _)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.errors import CallqueueError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_PREFIX = "account-day#"
# Releases racing for the same day's last rows; each try reads the count again.
_TRIES = 8


class DailyCounterContended(CallqueueError):
    """Releases kept changing the day's count while this one read it: the step is retried."""


class DailyCounts:
    def __init__(self, dynamodb: DynamoDBClient, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def used(self, day: str) -> int:
        item = self._db.get_item(
            TableName=self._table, Key={"job_id": {"S": _PREFIX + day}}, ConsistentRead=True
        ).get("Item")
        return int(item["released"]["N"]) if item else 0

    def reserve(self, day: str, wanted: int, limit: int) -> int:
        """Take up to `wanted` of the day's `limit` rows; how many were taken (0 when the day's
        are all taken). The count only grows by what is granted, whoever races: a conditional
        write on the count read."""
        for _ in range(_TRIES):
            used = self.used(day)
            granted = max(0, min(wanted, limit - used))
            if granted == 0:
                return 0
            try:
                self._db.update_item(
                    TableName=self._table,
                    Key={"job_id": {"S": _PREFIX + day}},
                    UpdateExpression="SET released = :new",
                    ConditionExpression="attribute_not_exists(released) OR released = :old"
                    if used == 0
                    else "released = :old",
                    ExpressionAttributeValues={
                        ":new": {"N": str(used + granted)},
                        ":old": {"N": str(used)},
                    },
                )
            except self._db.exceptions.ConditionalCheckFailedException:
                continue
            return granted
        raise DailyCounterContended(f"{day}: the account's daily count changed {_TRIES} times")
