"""At most one Twilio call per row: a ledger of calls in DynamoDB, keyed by (job, row), kept on
the row's item in the results table (the outcome write records the row's result too:
chalicelib.sending.ledger_writes.outcome_update; docs/decisions/one-item-per-row.md).

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

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from chalicelib.sending.claims import Attempt, Binding, Claim, binding_of
from chalicelib.sending.ledger_writes import (
    BATCH_ATTEMPTS,
    LedgerWrites,
    envelope_of,
    outcome_update,
    retry_update,
    row_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_R = TypeVar("_R")

# DynamoDB's ceiling: keys in one BatchGetItem.
MAX_BATCH_GET_KEYS = 100
# A batch's claims made at once, each its own request.
CLAIM_THREADS = 16


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
        self._retention_days = retention_days
        self._retention = retention_days * 86400
        self._clock = clock

    @property
    def in_doubt_after(self) -> float:
        """Seconds after its claim when a call that never recorded an outcome is in doubt."""
        return self._in_doubt_after

    @property
    def call_deadline(self) -> float:
        """Seconds after its claim by which a call must have started: half the in-doubt time,
        so a call that starts is over (Twilio's timeout) before anyone may take it as lost.
        Unbounded when calls are never waited for (an in-doubt time of 0)."""
        return self._in_doubt_after / 2 if self._in_doubt_after > 0 else float("inf")

    def claim(self, job_id: str, row: int, attempt: int) -> Claim:
        now = self._clock()
        refused = self._put_claim(job_id, row, attempt, now)
        if refused is None:
            return Claim("call", held_at=now)
        if not refused:
            return self._existing(job_id, row, attempt, now)
        return self._verdict(refused, job_id, row, attempt, now)

    def claim_all(self, attempts: Sequence[Attempt]) -> list[Claim]:
        """A verdict for each attempt, in order, as `claim` gives: each row's claim is a
        conditional put of its own, up to CLAIM_THREADS at once (a transaction of the same
        claims bills each item twice, and the rows are independent:
        docs/decisions/dynamodb-units.md). The rows whose claims were refused were seen before:
        their verdicts come from their items as each refusal returned them (no read), or, where
        DynamoDB returned none, from their items read together."""
        verdicts: list[Claim | None] = [None] * len(attempts)
        rows: set[tuple[str, int]] = set()
        first: list[int] = []
        for i, (job_id, row, _) in enumerate(attempts):
            # A row delivered twice in one batch is claimed on its own, after its first delivery.
            if (job_id, row) not in rows:
                rows.add((job_id, row))
                first.append(i)
        now = self._clock()
        claimed = self._claim_each([attempts[i] for i in first], now)
        seen: list[int] = []
        taken: list[tuple[int, dict[str, Any]]] = []
        for i, refused in zip(first, claimed, strict=True):
            if refused is None:
                verdicts[i] = Claim("call", held_at=now)
            elif refused:
                taken.append((i, refused))
            else:
                seen.append(i)
        # Each row in doubt is taken over with a write of its own, up to CLAIM_THREADS at once:
        # a batch redelivered after its invocation was ended holds dozens, and one after
        # another those writes ran the redelivered batch past its own timeout under load.
        judged = _each(
            lambda pair: self._verdict(pair[1], *attempts[pair[0]], now), taken, CLAIM_THREADS
        )
        for (i, _), verdict in zip(taken, judged, strict=True):
            verdicts[i] = verdict
        for start in range(0, len(seen), MAX_BATCH_GET_KEYS):
            chunk = seen[start : start + MAX_BATCH_GET_KEYS]
            found = self._existing_all([attempts[i] for i in chunk], now)
            for i, verdict in zip(chunk, found, strict=True):
                verdicts[i] = verdict
        return [v if v is not None else self.claim(*attempts[i]) for i, v in enumerate(verdicts)]

    def _claim_each(self, attempts: Sequence[Attempt], now: float) -> list[dict[str, Any] | None]:
        """Each attempt's claim put, up to CLAIM_THREADS at once: None where it landed, else
        what refused it (`_put_claim`). All or none, as the transaction they replace was: when
        a put fails (throttled, a network error), the claims that landed are given back (open
        to this attempt again, as for a call Twilio did not process) and the error raised, so
        the batch's redelivery calls its rows at once rather than waiting out the in-doubt
        time for calls never made."""

        def put(attempt: Attempt) -> dict[str, Any] | BaseException | None:
            try:
                return self._put_claim(*attempt, now)
            except Exception as error:  # noqa: BLE001 - raised below, once the rest are back
                return error

        if len(attempts) > 1:
            with ThreadPoolExecutor(max_workers=min(CLAIM_THREADS, len(attempts))) as pool:
                results = list(pool.map(put, attempts))
        else:
            results = [put(a) for a in attempts]
        errors = [r for r in results if isinstance(r, BaseException)]
        if not errors:
            return [r for r in results if not isinstance(r, BaseException)]
        for attempt, result in zip(attempts, results, strict=True):
            if result is None:
                self._give_back(*attempt, now)
        raise errors[0]

    def _give_back(self, job_id: str, row: int, attempt: int, now: float) -> None:
        """A claim this batch made at `now` and will not call on, open to the attempt again;
        one that cannot be given back stays and is settled as in doubt (logged)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=row_key(job_id, row),
                UpdateExpression="SET #s = :retry",
                ConditionExpression="#s = :calling AND claimed_at = :at AND attempt = :attempt",
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={
                    ":retry": {"S": "retry"},
                    ":calling": {"S": "calling"},
                    ":at": {"N": repr(now)},
                    ":attempt": {"N": str(attempt)},
                },
            )
        except Exception:
            log.warning("could not give back the claim of %s row %d", job_id, row, exc_info=True)

    def _put_claim(self, job_id: str, row: int, attempt: int, now: float) -> dict[str, Any] | None:
        """The row claimed for this attempt: None; or, when its condition refused it, the row's
        item as the condition found it (the refusal returns it, so no read is billed), empty
        when DynamoDB did not return it."""
        try:
            self._db.put_item(**self._claim_put(job_id, row, attempt, now))
        except self._db.exceptions.ConditionalCheckFailedException as refused:
            item: dict[str, Any] = getattr(refused, "response", {}).get("Item") or {}
            return dict(item)
        return None

    def _claim_put(self, job_id: str, row: int, attempt: int, now: float) -> dict[str, Any]:
        return {
            "TableName": self._table,
            "Item": {
                **row_key(job_id, row),
                "attempt": {"N": str(attempt)},
                "state": {"S": "calling"},
                "claimed_at": {"N": repr(now)},
                "expires_at": {"N": str(int(now) + self._retention)},
            },
            # An attempt Twilio did not process may be made again: by the next attempt, or by
            # the same one redelivered before its successor was queued. An item without `state`
            # was never claimed (the results sink wrote it: a row that ended without a sender,
            # or a callback alone): it is claimed, as a row with no item is.
            "ConditionExpression": (
                "attribute_not_exists(#s) OR (#s = :retry AND attempt <= :attempt)"
            ),
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {
                ":retry": {"S": "retry"},
                ":attempt": {"N": str(attempt)},
            },
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    def _existing(self, job_id: str, row: int, attempt: int, now: float) -> Claim:
        item = self._db.get_item(
            TableName=self._table, Key=row_key(job_id, row), ConsistentRead=True
        ).get("Item")
        return self._verdict(item, job_id, row, attempt, now)

    def _existing_all(self, attempts: Sequence[Attempt], now: float) -> list[Claim]:
        """`_existing` for rows whose claims were refused, their items read together (one
        BatchGetItem for up to 100; the keys DynamoDB leaves unprocessed are asked for again,
        and any still left are read one by one). Under redeliveries a batch can hold dozens
        of rows seen before: read one at a time, they took a request each."""
        items: dict[tuple[str, int], dict[str, Any]] = {}
        keys = [row_key(job_id, row) for job_id, row, _ in attempts]
        for start in range(0, len(keys), MAX_BATCH_GET_KEYS):
            pending: list[Any] = keys[start : start + MAX_BATCH_GET_KEYS]
            for _ in range(BATCH_ATTEMPTS):
                response = self._db.batch_get_item(
                    RequestItems={self._table: {"Keys": pending, "ConsistentRead": True}}
                )
                for item in response.get("Responses", {}).get(self._table, []):
                    items[(item["job_id"]["S"], int(item["row"]["N"]))] = item
                unprocessed = response.get("UnprocessedKeys", {}).get(self._table)
                pending = list(unprocessed["Keys"]) if unprocessed else []
                if not pending:
                    break

        def verdict(attempt: Attempt) -> Claim:
            job_id, row, number = attempt
            found = items.get((job_id, row))
            if found is None:  # unread, or deleted in between (TTL): on its own
                return self._existing(job_id, row, number, now)
            return self._verdict(found, job_id, row, number, now)

        return _each(verdict, list(attempts), CLAIM_THREADS)

    def _verdict(
        self, item: dict[str, Any] | None, job_id: str, row: int, attempt: int, now: float
    ) -> Claim:
        """The verdict for a claim the ledger refused, by the row's item as it is now."""
        if item is None or "state" not in item:  # deleted in between (TTL), or never claimed
            return self.claim(job_id, row, attempt)
        state = item["state"]["S"]
        if state == "done":
            return Claim("done", envelope=envelope_of(item["envelope"]))
        if state == "retry":
            return Claim("stale")  # a later attempt is queued already
        age = now - float(item["claimed_at"]["N"])
        if age < self._in_doubt_after:
            return Claim("wait", wait_seconds=self._in_doubt_after - age)
        if self._take_over(job_id, row, item["claimed_at"], now):
            evidence = item.get("callback_sid", {}).get("S")
            # The first claim of this attempt: a row taken over before kept it.
            first = item.get("first_claimed_at", item["claimed_at"])
            claimed_for = item.get("attempt", {}).get("N")
            return Claim(
                "in_doubt",
                callback_sid=evidence,
                claimed_at=float(first["N"]),
                held_at=now,
                attempt=int(claimed_for) if claimed_for is not None else None,
            )
        # Another delivery of the row took it over first, and settles it.
        return Claim("wait", wait_seconds=self._in_doubt_after)

    def _take_over(self, job_id: str, row: int, seen: Any, now: float) -> bool:
        """Claim a row in doubt for this delivery: its claim time moved to now, if it is still
        the claim that was seen. Two deliveries of a row can find it in doubt at once (a batch
        redelivered, and the copies put back to wait); each would look the message up, find
        none when the first claimant never called, and call: only the one whose write lands
        settles it, and the other waits."""
        return self._update_if(
            job_id,
            row,
            UpdateExpression=(
                "SET claimed_at = :now, first_claimed_at = if_not_exists(first_claimed_at, :seen)"
            ),
            ConditionExpression="#s = :calling AND claimed_at = :seen",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={
                ":now": {"N": repr(now)},
                ":calling": {"S": "calling"},
                ":seen": seen,
            },
        )

    def completed(self, job_id: str, row: int, attempt: int, envelope: dict[str, Any]) -> None:
        """The attempt has its final outcome, on the row's item as its result too; later
        deliveries republish `envelope`."""
        self._db.update_item(
            TableName=self._table,
            Key=row_key(job_id, row),
            **outcome_update(envelope, now=self._clock(), retention_days=self._retention_days),
        )

    def bind_callback(self, job_id: str, row: int, sid: str, to: str | None) -> Binding:
        """Whether a signed status callback naming (job, row) may change that row: only for
        the message the row's call created. The signature proves Twilio sent it, not that the
        row's call made the message (a row may set its own StatusCallback to another row's URL).

        A row whose call has completed accepts only its own SID (and To); one still in flight
        (the callback can come before the response is recorded) takes the first SID as evidence
        of what its call created, which settles the row if its response is lost."""
        key = row_key(job_id, row)
        item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        found = binding_of(item, sid, to)
        if found is not None:
            return found
        try:
            self._db.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression="SET callback_sid = :sid",
                ConditionExpression=(
                    "attribute_exists(#s) AND attribute_not_exists(sid) AND "
                    "(attribute_not_exists(callback_sid) OR callback_sid = :sid)"
                ),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":sid": {"S": sid}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._db.exceptions.ConditionalCheckFailedException as refused:
            # Written in between: the row's outcome (its own SID, perhaps this one) or another
            # callback's SID. Judged by the item as the refusal returned it.
            now = getattr(refused, "response", {}).get("Item")
            return binding_of(now, sid, to) or "mismatch"
        return "bound"

    def reopen(
        self,
        job_id: str,
        row: int,
        attempt: int,
        held_at: float | None,
        envelope: dict[str, Any] | None = None,
    ) -> bool:
        """Record that Twilio did not process `attempt`, so the next attempt may call: only
        while the row is still claimed for that attempt (and, given `held_at`, by the claim
        made at that time). False when the claim has moved on (taken over, or settled).
        Given the attempt's `envelope` (`retrying`), the row's result is recorded with it."""
        now = self._clock()
        if envelope is None:
            update: dict[str, Any] = {
                # As a whole new item would: what the attempt bound or recorded goes with it.
                "UpdateExpression": (
                    "SET #s = :retry, claimed_at = :now, expires_at = :exp "
                    "REMOVE envelope, callback_sid, first_claimed_at, sid, #to"
                ),
                "ExpressionAttributeNames": {"#s": "state", "#to": "to"},
                "ExpressionAttributeValues": {
                    ":retry": {"S": "retry"},
                    ":now": {"N": repr(now)},
                    ":exp": {"N": str(int(now) + self._retention)},
                },
            }
        else:
            update = retry_update(envelope, now=now, retention_days=self._retention_days)
            update["ExpressionAttributeNames"]["#s"] = "state"
        condition = "#s = :calling AND attempt = :a"
        values = update["ExpressionAttributeValues"]
        values.update({":calling": {"S": "calling"}, ":a": {"N": str(attempt)}})
        if held_at is not None:
            condition += " AND claimed_at = :held"
            values[":held"] = {"N": repr(held_at)}
        return self._update_if(job_id, row, ConditionExpression=condition, **update)

    def writes(self) -> LedgerWrites:
        """A buffer of outcomes, written several at once (see LedgerWrites)."""
        return LedgerWrites(
            self._db,
            self._table,
            reopen=self.reopen,
            retention_days=self._retention_days,
            clock=self._clock,
        )

    def _update_if(self, job_id: str, row: int, **request: Any) -> bool:
        """One conditional UpdateItem of the row's item; False when its condition did not hold."""
        try:
            self._db.update_item(TableName=self._table, Key=row_key(job_id, row), **request)
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True


def _each(work: Callable[[_T], _R], items: Sequence[_T], threads: int) -> list[_R]:
    """`work` on each item, in order, up to `threads` at once (each may make a request of its
    own); the first error is raised once the others are done, as `pool.map` does."""
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(threads, len(items))) as pool:
        return list(pool.map(work, items))
