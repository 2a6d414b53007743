"""The suppression list: numbers that must never be called again, in DynamoDB.

A number is suppressed when Twilio says it unsubscribed (21610, the recipient replied STOP), is not
a mobile number (21614) or is not a valid number (21211), or when a Lookup finds it invalid or a
landline. The sender adds the number itself as the response arrives (the router does too, for
callbacks and other sources), and checks the list for each row just before its call; a row to a
suppressed number ends `suppressed` without a call.

The table (SuppressionTable in .chalice/infrastructure.yaml) has one item per number, keyed by
`number` exactly as the rows give it (E.164); `reason`, `error_code`, `job_id`, `source` (one of
SOURCES) and `added_at` record why, how and when it was first suppressed. Items written before
`source` was recorded read with source None.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chalicelib.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# BatchGetItem takes at most 100 keys per request.
MAX_BATCH_GET = 100

SUPPRESSING_CODES: Mapping[int, str] = {
    21610: "unsubscribed",
    21614: "not a mobile number",
    21211: "invalid number",
    # From delivery status callbacks (chalicelib/api/status.py).
    30005: "unknown destination",
    30006: "landline or unreachable carrier",
}
INVALID_LOOKUP = "invalid number (lookup)"
LANDLINE_LOOKUP = "landline (lookup)"

# Where a suppression came from: a send's error (the sender, the router's events), a reply
# (STOP), a file imported, a status callback, a person's `suppression add`.
SOURCES = ("send_error", "reply", "import", "callback", "manual")
# BatchWriteItem takes at most 25 puts per request.
MAX_BATCH_WRITE = 25

# `number` is a DynamoDB reserved word, so expressions name it through a placeholder.
_NAMES = {"#n": "number"}


@dataclass(frozen=True)
class Suppression:
    number: str
    reason: str
    error_code: int | None
    job_id: str | None
    added_at: float | None
    source: str | None = None


def number_of(envelope: Mapping[str, Any]) -> str | None:
    """The number a response envelope's request called: `To`, or `PhoneNumber` for a Lookup.

    The same choice as QueuedRow.number, so what is suppressed is what the sender checks.
    """
    request: Mapping[str, Any] = envelope.get("request") or {}
    value = request.get("To", request.get("PhoneNumber"))
    return value if isinstance(value, str) else None


def suppression_reason(envelope: Mapping[str, Any]) -> tuple[str, int | None] | None:
    """Whether one response envelope means its number must never be called again:
    (reason, Twilio error code or None), or None."""
    error: Mapping[str, Any] = envelope.get("error") or {}
    code = error.get("code")
    if isinstance(code, int) and code in SUPPRESSING_CODES:
        return SUPPRESSING_CODES[code], code
    body = envelope.get("body")
    if envelope.get("api") != "lookup" or envelope.get("status") != 200 or not body:
        return None
    if body.get("valid") is False:
        return INVALID_LOOKUP, None
    # Lookup returns null for each data package that was not requested (or not available).
    line_type = body.get("line_type_intelligence")
    if isinstance(line_type, Mapping) and line_type.get("type") == "landline":
        return LANDLINE_LOOKUP, None
    return None


def _suppression_of(item: Mapping[str, Any]) -> Suppression:
    return Suppression(
        number=item["number"]["S"],
        reason=item["reason"]["S"],
        error_code=int(Decimal(item["error_code"]["N"])) if "error_code" in item else None,
        job_id=item["job_id"]["S"] if "job_id" in item else None,
        added_at=float(item["added_at"]["N"]) if "added_at" in item else None,
        source=item["source"]["S"] if "source" in item else None,
    )


class SuppressionList:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 5,
        base_delay: float = 0.05,
        page_size: int | None = None,
    ) -> None:
        """`attempts` and `base_delay` bound the retries of keys BatchGetItem leaves unprocessed;
        `page_size` caps the items per Scan page (None leaves DynamoDB's 1 MB pages)."""
        self._db = dynamodb
        self._table = table
        self._clock = clock
        self._sleep = sleep
        self._attempts = attempts
        self._base_delay = base_delay
        self._page_size = page_size

    def add(
        self,
        number: str,
        reason: str,
        *,
        error_code: int | None = None,
        job_id: str | None = None,
        source: str = "send_error",
    ) -> bool:
        """Suppress a number; True if it was not suppressed before.

        The first reason is kept: a number that said STOP and later failed as invalid stays
        recorded as unsubscribed, and redelivered events change nothing.
        """
        if not number:
            raise ValueError("an empty number cannot be suppressed")
        item = self._item(number, reason, source)
        if error_code is not None:
            item["error_code"] = {"N": str(error_code)}
        if job_id is not None:
            item["job_id"] = {"S": job_id}
        try:
            self._db.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(#n)",
                ExpressionAttributeNames=_NAMES,
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def add_from(self, envelope: Mapping[str, Any]) -> bool:
        """Suppress the number of an outcome whose response says it must never be called again
        (the sender does this itself, the moment the response arrives); True if newly so."""
        number, reason = number_of(envelope), suppression_reason(envelope)
        if number is None or reason is None:
            return False
        job_id = envelope.get("job_id")
        return self.add(
            number,
            reason[0],
            error_code=reason[1],
            job_id=job_id if isinstance(job_id, str) else None,
        )

    def add_many(self, entries: Mapping[str, str], *, source: str = "import") -> int:
        """Suppress each number of `entries` (number: reason); returns how many were new.

        Numbers already suppressed keep their first reason: they are left out of the writes,
        which BatchWriteItem cannot make conditional. A number suppressed by another path between
        the check and the write is recorded with this reason instead, which changes no call."""
        new = sorted(set(entries) - self.suppressed(entries))
        for start in range(0, len(new), MAX_BATCH_WRITE):
            chunk = new[start : start + MAX_BATCH_WRITE]
            self._batch_write([self._item(n, entries[n], source) for n in chunk])
        return len(new)

    def remove(self, number: str) -> bool:
        """Stop suppressing a number; True if it was suppressed."""
        response = self._db.delete_item(
            TableName=self._table, Key={"number": {"S": number}}, ReturnValues="ALL_OLD"
        )
        return "Attributes" in response

    def suppressed(self, numbers: Iterable[str], *, consistent: bool = True) -> set[str]:
        """Which of `numbers` are suppressed: one BatchGetItem per 100 distinct numbers, each a
        read unit (half one when not `consistent`: a look that may miss a number suppressed in
        the last second, for what only spares work; docs/decisions/immediate-suppression.md)."""
        # BatchGetItem refuses a request that names a key twice, and an empty key value.
        wanted = sorted({n for n in numbers if n})
        found: set[str] = set()
        for start in range(0, len(wanted), MAX_BATCH_GET):
            found |= self._batch_get(wanted[start : start + MAX_BATCH_GET], consistent)
        return found

    def list(self) -> Iterator[Suppression]:
        """Every suppressed number, in no particular order."""
        kwargs: dict[str, Any] = {"TableName": self._table}
        if self._page_size is not None:
            kwargs["Limit"] = self._page_size
        while True:
            page = self._db.scan(**kwargs)
            for item in page.get("Items", []):
                yield _suppression_of(item)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _item(self, number: str, reason: str, source: str) -> dict[str, Any]:
        if source not in SOURCES:
            raise ValueError(f"unknown suppression source {source!r}")
        return {
            "number": {"S": number},
            "reason": {"S": reason},
            "source": {"S": source},
            "added_at": {"N": str(self._clock())},
        }

    def _batch_write(self, items: Sequence[Mapping[str, Any]]) -> None:
        requests: Sequence[Mapping[str, Any]] = [{"PutRequest": {"Item": i}} for i in items]
        for attempt in range(1, self._attempts + 1):
            response = self._db.batch_write_item(RequestItems={self._table: requests})  # type: ignore[dict-item]
            # Unprocessed puts (throttling) are sent again after a pause, as AWS recommends.
            requests = (response.get("UnprocessedItems") or {}).get(self._table) or []
            if not requests:
                return
            if attempt < self._attempts:
                self._sleep(self._base_delay * 2 ** (attempt - 1))
        raise RetryableError(
            f"BatchWriteItem on {self._table}: {len(requests)} puts still unprocessed "
            f"after {self._attempts} attempts"
        )

    def _batch_get(self, numbers: Iterable[str], consistent: bool) -> set[str]:
        keys: Sequence[Mapping[str, Any]] = [{"number": {"S": n}} for n in numbers]
        found: set[str] = set()
        for attempt in range(1, self._attempts + 1):
            response = self._db.batch_get_item(
                RequestItems={
                    self._table: {
                        "Keys": keys,
                        "ProjectionExpression": "#n",
                        "ExpressionAttributeNames": _NAMES,
                        # A number suppressed a moment ago must stop the very next row to it.
                        "ConsistentRead": consistent,
                    }
                }
            )
            found.update(item["number"]["S"] for item in response["Responses"].get(self._table, []))
            # DynamoDB returns keys unprocessed when it throttles or a response would pass
            # 16 MB; they are asked for again after a pause, as AWS recommends.
            unprocessed = (response.get("UnprocessedKeys") or {}).get(self._table)
            keys = unprocessed["Keys"] if unprocessed else []
            if not keys:
                return found
            if attempt < self._attempts:
                self._sleep(self._base_delay * 2 ** (attempt - 1))
        raise RetryableError(
            f"BatchGetItem on {self._table}: {len(keys)} keys still unprocessed "
            f"after {self._attempts} attempts"
        )


def stopped_number(envelope: Mapping[str, Any]) -> str | None:
    """The number an outcome says must never be called again, if any."""
    return number_of(envelope) if suppression_reason(envelope) is not None else None
