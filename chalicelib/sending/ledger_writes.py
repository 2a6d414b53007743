"""A sender batch's outcomes, written to the call ledger (chalicelib.sending.ledger) 25 to a
request, and the attributes an outcome adds to its row's item.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.core.batching import fit_envelope
from chalicelib.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# DynamoDB's ceiling: items in one BatchWriteItem.
MAX_BATCH_WRITE_ITEMS = 25
# A batch request's unprocessed items (BatchWriteItem, with backoff) or keys (BatchGetItem) are
# asked for again this many times.
BATCH_ATTEMPTS = 5

# CallLedger.reopen: (job, row, attempt, the claim time held) -> whether the row was reopened.
Reopen = Callable[[str, int, int, float | None], bool]


def envelope_of(attribute: dict[str, Any]) -> dict[str, Any]:
    """The envelope an outcome stored (compressed; or as JSON text, by earlier versions)."""
    if "B" in attribute:
        stored: dict[str, Any] = json.loads(zlib.decompress(attribute["B"]))
        return stored
    text: dict[str, Any] = json.loads(attribute["S"])
    return text


def row_key(job_id: str, row: int) -> dict[str, Any]:
    return {"job_id": {"S": job_id}, "row": {"N": str(row)}}


def outcome_attributes(envelope: dict[str, Any]) -> dict[str, Any]:
    """What an outcome adds to its row's item: the envelope, within DynamoDB's 400 KB item
    (trimmed as the topic trims it: the same envelope) and compressed (an SMS's envelope is
    about 1.5 KB of JSON, two write units; compressed, the item is one:
    docs/decisions/dynamodb-units.md), and the number the row's call went to and the SID
    Twilio gave what it created, which a status callback is bound to (CallLedger.bind_callback)."""
    text = json.dumps(fit_envelope(envelope), separators=(",", ":"))
    attributes: dict[str, Any] = {"envelope": {"B": zlib.compress(text.encode(), 9)}}
    to = (envelope.get("request") or {}).get("To")
    if isinstance(to, str):
        attributes["to"] = {"S": to}
    sid = envelope.get("sid")
    if isinstance(sid, str) and sid:
        attributes["sid"] = {"S": sid}
    return attributes


class LedgerWrites:
    """Outcomes of a sender's batch, written to the ledger 25 to a request (BatchWriteItem)
    instead of one request a row: as soon as 25 are waiting, and whatever is left at `flush`.

    The sender flushes before it publishes or requeues anything, so no row is published or put
    back before its outcome is in the ledger. An invocation that dies with outcomes still
    buffered (at most 24) leaves those rows as claimed-and-calling: their next delivery waits
    out the in-doubt time and settles them the way any lost response is settled.
    """

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        *,
        reopen: Reopen,
        retention_seconds: int,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._reopen = reopen
        self._retention = retention_seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], dict[str, Any]] = {}
        self._held: dict[tuple[str, int], float] = {}
        # Rows whose retry the ledger refused: their claim is no longer this batch's.
        self.refused: set[tuple[str, int]] = set()

    def hold(self, job_id: str, row: int, held_at: float) -> None:
        """This batch holds the row's claim made (or taken over) at `held_at`."""
        with self._lock:
            self._held[(job_id, row)] = held_at

    def completed(self, job_id: str, row: int, attempt: int, envelope: dict[str, Any]) -> None:
        item = self._item(job_id, row, attempt, envelope)
        with self._lock:
            # A request may hold an item once: the latest word on a row stands.
            self._pending[(job_id, row)] = item
            full = len(self._pending) >= MAX_BATCH_WRITE_ITEMS
        if full:
            self.flush()

    def retryable(self, job_id: str, row: int, attempt: int) -> None:
        """Open the row to be called again, at once and only if its claim is still this
        batch's: a batch that ran past the in-doubt time may have had its claim taken over by
        another delivery, which settles the row (and may have called it since). Written
        unconditionally, a late retry reopened such a row and it was called twice. A refused
        row is in `refused`: the sender neither publishes nor requeues it."""
        with self._lock:
            held_at = self._held.get((job_id, row))
            # The latest word on a row stands: an outcome buffered before this is dropped.
            self._pending.pop((job_id, row), None)
        if not self._reopen(job_id, row, attempt, held_at):
            with self._lock:
                self.refused.add((job_id, row))

    def flush(self) -> None:
        with self._lock:
            taken, self._pending = self._pending, {}
        if not taken:
            return
        try:
            self._write(list(taken.values()))
        except Exception:
            # Kept for the next flush (the sender's last one raises, so nothing of this batch
            # is published before its outcome is written), unless a later word replaced it.
            with self._lock:
                self._pending = {**taken, **self._pending}
            raise

    def _item(
        self, job_id: str, row: int, attempt: int, envelope: dict[str, Any]
    ) -> dict[str, Any]:
        now = self._clock()
        return {
            **row_key(job_id, row),
            "attempt": {"N": str(attempt)},
            "state": {"S": "done"},
            "claimed_at": {"N": repr(now)},
            "expires_at": {"N": str(int(now) + self._retention)},
            **outcome_attributes(envelope),
        }

    def _write(self, items: list[dict[str, Any]]) -> None:
        """Put whole items (unconditionally, as CallLedger.completed updates them), 25 to a
        request, sending what DynamoDB leaves unprocessed again; raises if some are still left."""
        for start in range(0, len(items), MAX_BATCH_WRITE_ITEMS):
            requests: list[Any] = [
                {"PutRequest": {"Item": item}}
                for item in items[start : start + MAX_BATCH_WRITE_ITEMS]
            ]
            for attempt in range(BATCH_ATTEMPTS):
                response = self._db.batch_write_item(RequestItems={self._table: requests})
                requests = list(response.get("UnprocessedItems", {}).get(self._table, []))
                if not requests:
                    break
                self._sleep(0.05 * 2**attempt)
            else:
                raise RetryableError(
                    f"call ledger: {len(requests)} outcomes unwritten after "
                    f"{BATCH_ATTEMPTS} attempts"
                )
