"""At most one Twilio call per row: a ledger of calls in DynamoDB, keyed by (job, row).

SQS delivers at least once and an invocation can die after Twilio answered, so the same row can
reach the sender again. Before calling, the sender claims the row's attempt with a conditional
write; after the call it records the outcome and the envelope it published.

- A row whose call completed is never called again: its stored envelope is published again.
- A row whose attempt Twilio did not process (429, 5xx) is open to the next attempt only.
- A row whose call started but never completed (the invocation died, the response was lost) is
  not called again blindly. While its call could still be in flight it is put back to wait; after
  that its outcome is unknown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Verdict = Literal["call", "done", "wait", "in_doubt", "stale"]


@dataclass(frozen=True)
class Claim:
    verdict: Verdict
    # For "done": the envelope published when the call completed.
    envelope: dict[str, Any] | None = None
    # For "wait": seconds until the earlier call can no longer be in flight.
    wait_seconds: float = 0.0


class CallLedger:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        *,
        in_doubt_after: float,
        retention_days: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._in_doubt_after = in_doubt_after
        self._retention = retention_days * 86400
        self._clock = clock

    @property
    def call_deadline(self) -> float:
        """Seconds after its claim by which a call must have started: half the in-doubt time,
        so a call that starts is over (Twilio's timeout) before anyone may take it as lost.
        Unbounded when calls are never waited for (an in-doubt time of 0)."""
        return self._in_doubt_after / 2 if self._in_doubt_after > 0 else float("inf")

    def claim(self, job_id: str, row: int, attempt: int) -> Claim:
        now = self._clock()
        try:
            self._db.put_item(
                TableName=self._table,
                Item={
                    "job_id": {"S": job_id},
                    "row": {"N": str(row)},
                    "attempt": {"N": str(attempt)},
                    "state": {"S": "calling"},
                    "claimed_at": {"N": repr(now)},
                    "expires_at": {"N": str(int(now) + self._retention)},
                },
                # An attempt Twilio did not process may be made again: by the next attempt, or by
                # the same one redelivered before its successor was queued.
                ConditionExpression=(
                    "attribute_not_exists(job_id) OR (#s = :retry AND attempt <= :attempt)"
                ),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":retry": {"S": "retry"},
                    ":attempt": {"N": str(attempt)},
                },
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return self._existing(job_id, row, attempt, now)
        return Claim("call")

    def _existing(self, job_id: str, row: int, attempt: int, now: float) -> Claim:
        item = self._db.get_item(
            TableName=self._table,
            Key={"job_id": {"S": job_id}, "row": {"N": str(row)}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:  # deleted in between (TTL): claim again
            return self.claim(job_id, row, attempt)
        state = item["state"]["S"]
        if state == "done":
            return Claim("done", envelope=json.loads(item["envelope"]["S"]))
        if state == "retry":
            return Claim("stale")  # a later attempt is queued already
        age = now - float(item["claimed_at"]["N"])
        if age < self._in_doubt_after:
            return Claim("wait", wait_seconds=self._in_doubt_after - age)
        return Claim("in_doubt")

    def completed(self, job_id: str, row: int, attempt: int, envelope: dict[str, Any]) -> None:
        """The attempt has its final outcome; later deliveries republish `envelope`."""
        self._set(job_id, row, attempt, "done", envelope)

    def retryable(self, job_id: str, row: int, attempt: int) -> None:
        """Twilio did not process this attempt; the next attempt may call."""
        self._set(job_id, row, attempt, "retry", None)

    def _set(
        self, job_id: str, row: int, attempt: int, state: str, envelope: dict[str, Any] | None
    ) -> None:
        values: dict[str, Any] = {":s": {"S": state}, ":a": {"N": str(attempt)}}
        expression = "SET #s = :s, attempt = :a"
        if envelope is not None:
            values[":e"] = {"S": json.dumps(envelope, separators=(",", ":"))}
            expression += ", envelope = :e"
        self._db.update_item(
            TableName=self._table,
            Key={"job_id": {"S": job_id}, "row": {"N": str(row)}},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues=values,
        )
