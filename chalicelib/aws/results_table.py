"""The results table: the latest attempt of every row in DynamoDB, read by the API and the
reconciler while a job runs. Its items, their indexes and their expiry are
chalicelib.aws.result_items'.

Each row's item is also its call ledger's (chalicelib.sending.ledger: `state`, `claimed_at`,
`envelope`, ...), and the sender's outcome write records the row's result with it; the results
sink (its handler calls `record`) writes only the envelopes no sender recorded (not marked
`recorded`). An item the ledger has claimed but whose outcome is not in yet has no `outcome`
and, like one a callback alone made, is not counted as settled.

A message's delivery status, from Twilio's status callbacks, is kept on the same item
(`delivery_status`, `delivery_rank`, `delivery_error_code`, `delivery_at`), and a
call's also `call_duration` (seconds) and `answered_by`. A callback can arrive before the row's
outcome is written (it is bound to the claim: CallLedger.bind_callback), and neither write
replaces the other's attributes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

from chalicelib.aws.result_items import (
    BY_ERROR_CODE,
    RowResult,
    expires_at,
    item_of,
    row_result_of,
    update_of,
)
from chalicelib.core.delivery import DeliveryTally
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.observability import Metrics, record_responses

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# A redelivered envelope (same attempt) overwrites its own item with the same content; an older
# attempt arriving late (SNS and SQS do not keep order) must not replace a newer one.
_NEWER_OR_SAME = "attribute_not_exists(#attempt) OR #attempt <= :attempt"
# On an item the call ledger claimed, only its claim's attempt: the ledger's `attempt` says
# which attempt may call next (CallLedger._claim_put), and only the ledger moves it.
_UPDATE_IF = f"(attribute_not_exists(#state) AND ({_NEWER_OR_SAME})) OR #attempt = :attempt"
# Rows of a batch written at once, each its own conditional request.
WRITE_THREADS = 16
# A later status (by rank) replaces an earlier one; an equal or earlier one arriving late or
# again changes nothing, so `delivered` is never overwritten by a late `sent`.
_LATER_STATUS = "attribute_not_exists(delivery_rank) OR delivery_rank < :rank"


class Progress(NamedTuple):
    """A job's rows as the results table has them (ResultsTable.progress)."""

    counts: Counter[str]
    recent: int
    delivery: DeliveryTally


class ResultsTable:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        *,
        retention_days: int = 30,
        clock: Callable[[], float] = time.time,
        page_size: int | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`page_size` caps the items per Query page; None leaves DynamoDB's 1 MB pages.
        `metrics`: the Twilio call metrics of each recorded batch (the results sink sees every
        response once, or again if its batch is delivered again)."""
        self._db = dynamodb
        self._table = table
        self._retention_days = retention_days
        self._clock = clock
        self._page_size = page_size
        self._metrics = metrics

    def record(self, envelopes: Sequence[ResponseEnvelope]) -> int:
        """Record each envelope as its row's latest attempt, but those the sender recorded
        itself (`recorded`: a write here would only bill a unit again); returns the items
        written.

        An envelope older than the row's recorded attempt is skipped. Any other failure raises,
        so the batch is delivered again; rewriting what was already written is harmless.

        Each row is written as `_put` (the common case: no callback yet, no newer attempt
        recorded) or, beside a callback or a newer attempt, `_update`.
        """
        now = self._clock()
        latest: dict[tuple[str, int], ResponseEnvelope] = {}
        for envelope in envelopes:
            if envelope.recorded:
                continue
            key = (envelope.job_id, envelope.row)
            held = latest.get(key)
            # One write a row: of one row's envelopes, the latest attempt.
            if held is None or held.attempt <= envelope.attempt:
                latest[key] = envelope
        items = [item_of(e, now=now, retention_days=self._retention_days) for e in latest.values()]
        # A conditional write a row, not a transaction: a transaction bills each item twice,
        # and the rows are independent (docs/decisions/dynamodb-units.md).
        if len(items) > 1:
            with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(items))) as pool:
                written = sum(pool.map(self._write, items))
        else:
            written = sum(self._write(item) for item in items)
        if self._metrics is not None:
            # Only once every write succeeded: a failed batch counts when it comes back.
            record_responses(self._metrics, [envelope.to_json() for envelope in envelopes])
            self._metrics.flush()
        return written

    def _write(self, item: dict[str, Any]) -> bool:
        return self._put(item) or self._update(item)

    def _put_request(self, item: dict[str, Any]) -> dict[str, Any]:
        # A whole item never replaces the call ledger's claim (`state`): a claim erased by a
        # late write here would let the row be called again.
        return {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": (
                f"attribute_not_exists(#state) AND attribute_not_exists(delivery_rank) "
                f"AND ({_NEWER_OR_SAME})"
            ),
            "ExpressionAttributeNames": {"#attempt": "attempt", "#state": "state"},
            "ExpressionAttributeValues": {":attempt": item["attempt"]},
        }

    def _put(self, item: dict[str, Any]) -> bool:
        """A whole item: neither the ledger nor a callback has written to the row yet."""
        try:
            self._db.put_item(**self._put_request(item))
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _update(self, item: dict[str, Any]) -> bool:
        """The response's attributes set beside a callback's delivery status or the ledger's
        claim (which it leaves as they are); False for an attempt older than the one recorded,
        or on a claimed row, for another attempt than the claim's."""
        update = update_of(item)
        update["ExpressionAttributeNames"]["#state"] = "state"
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"job_id": item["job_id"], "row": item["row"]},
                ConditionExpression=_UPDATE_IF,
                **update,
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def record_delivery(
        self,
        job_id: str,
        row: int,
        *,
        status: str,
        rank: int,
        error_code: int | None,
        api: str = "messages",
        duration: int | None = None,
        answered_by: str | None = None,
    ) -> bool:
        """Record a message's (or, `api` "calls", a call's) delivery status unless the row
        already has a later one (by `rank`). True if it was recorded, False for a status that
        came late or again. A call's `duration` and `answered_by` are set when given. The
        message's SID is the row's own (the call ledger bound the callback to it), so it is
        not stored again: an SMS row's item stays one write unit."""
        now = self._clock()
        values: dict[str, Any] = {
            ":status": {"S": status},
            ":rank": {"N": str(rank)},
            ":at": {"N": str(now)},
            ":expires": {"N": str(expires_at(now, self._retention_days))},
        }
        expression = (
            "SET delivery_status = :status, delivery_rank = :rank, delivery_at = :at, "
            "expires_at = if_not_exists(expires_at, :expires)"
        )
        if error_code is None:
            expression += " REMOVE delivery_error_code"
        else:
            expression = expression.replace("SET ", "SET delivery_error_code = :code, ", 1)
            values[":code"] = {"N": str(error_code)}
        if duration is not None:
            expression = expression.replace("SET ", "SET call_duration = :duration, ", 1)
            values[":duration"] = {"N": str(duration)}
        if answered_by is not None:
            expression = expression.replace("SET ", "SET answered_by = :answered_by, ", 1)
            values[":answered_by"] = {"S": answered_by}
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}, "row": {"N": str(row)}},
                UpdateExpression=expression,
                ConditionExpression=_LATER_STATUS,
                ExpressionAttributeValues=values,
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def outcomes(self, job_id: str) -> Iterator[RowResult]:
        """Every recorded row of a job, in row order (rows only a callback has named yet are
        left out)."""
        for item in self._job_items(job_id):
            if "outcome" in item:
                yield row_result_of(item)

    def progress(self, job_id: str, since: float) -> Progress:
        """How many of a job's rows ended in each final outcome, how many of those ended (their
        latest attempt finished) at or after `since`, and the sent rows' delivery statuses:
        one read of the job's items."""
        counts: Counter[str] = Counter()
        recent = 0
        delivery = DeliveryTally()
        names = {
            "#job_id": "job_id",
            "#outcome": "outcome",
            "#finished": "finished_at",
            "#api": "api",
            "#delivery": "delivery_status",
            "#answered": "answered_by",
            "#code": "delivery_error_code",
        }
        for item in self._query(
            KeyConditionExpression="#job_id = :job_id",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={":job_id": {"S": job_id}},
            ProjectionExpression="#outcome, #finished, #api, #delivery, #answered, #code",
        ):
            outcome = item.get("outcome", {}).get("S")
            if outcome is None or outcome == "retrying":
                continue
            counts[outcome] += 1
            if "finished_at" in item and float(item["finished_at"]["N"]) >= since:
                recent += 1
            delivery.add(
                item.get("api", {}).get("S"),
                outcome,
                item.get("delivery_status", {}).get("S"),
                item.get("answered_by", {}).get("S"),
                int(item["delivery_error_code"]["N"]) if "delivery_error_code" in item else None,
            )
        return Progress(counts, recent, delivery)

    def count_by_outcome(self, job_id: str) -> Counter[str]:
        """How many of a job's rows ended in each final outcome ("retrying" is not final)."""
        counts: Counter[str] = Counter()
        for item in self._job_items(job_id, outcome_only=True):
            outcome = item.get("outcome", {}).get("S")
            if outcome is not None and outcome != "retrying":
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
