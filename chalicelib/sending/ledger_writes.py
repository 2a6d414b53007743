"""A sender batch's outcomes, written to their rows' items (chalicelib.sending.ledger), and the
one write that records an outcome: the call ledger's and the row's result at once.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from chalicelib.aws.result_items import item_of, update_of
from chalicelib.core.batching import fit_envelope
from chalicelib.core.envelope import ResponseEnvelope

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Outcomes buffered before they are written, and the writes made at once, each its own request.
FLUSH_AT = 25
WRITE_THREADS = 16
# A BatchGetItem's unprocessed keys are asked for again this many times.
BATCH_ATTEMPTS = 5

# CallLedger.reopen: (job, row, attempt, the claim time held, the attempt's envelope) -> whether
# the row was reopened.
Reopen = Callable[[str, int, int, float | None, dict[str, Any] | None], bool]


def envelope_of(attribute: dict[str, Any]) -> dict[str, Any]:
    """The envelope an outcome stored (compressed; or as JSON text, by earlier versions)."""
    if "B" in attribute:
        stored: dict[str, Any] = json.loads(zlib.decompress(attribute["B"]))
        return stored
    text: dict[str, Any] = json.loads(attribute["S"])
    return text


def row_key(job_id: str, row: int) -> dict[str, Any]:
    return {"job_id": {"S": job_id}, "row": {"N": str(row)}}


def outcome_update(
    envelope: Mapping[str, Any], *, now: float, retention_days: int
) -> dict[str, Any]:
    """UpdateItem arguments (but the table and key) recording an outcome on its row's item, as
    both the ledger's verdict and the row's result: `state` done, the envelope to publish again
    (trimmed as the topic trims it, and compressed), and the result attributes the API reads
    (chalicelib.aws.result_items.item_of; its `to` and `sid` are what a status callback is bound
    to). Response attributes the envelope lacks are removed; a callback's delivery attributes
    are left as they are, since a callback can come before the outcome is written."""
    text = json.dumps(fit_envelope(envelope), separators=(",", ":"))
    result = item_of(ResponseEnvelope.from_json(envelope), now=now, retention_days=retention_days)
    ledger = {
        "state": {"S": "done"},
        "claimed_at": {"N": repr(now)},
        "envelope": {"B": zlib.compress(text.encode(), 9)},
    }
    # What only a claim in flight needs: the SID a callback bound before the response was in
    # yields to the response's own (bind_callback reads `sid` first), and a take-over's first
    # claim time to the outcome. Kept, they would take an SMS row's item over one unit.
    drop = ["first_claimed_at"] + (["callback_sid"] if "sid" in result else [])
    return update_of(result, also=ledger, drop=drop)


def retry_update(envelope: Mapping[str, Any], *, now: float, retention_days: int) -> dict[str, Any]:
    """UpdateItem arguments (but the table, key and condition) opening a row to its next
    attempt (`state` retry) and recording its result `retrying`, as one write. What the
    attempt bound or stored goes with it, as a whole new item would."""
    result = item_of(ResponseEnvelope.from_json(envelope), now=now, retention_days=retention_days)
    ledger = {"state": {"S": "retry"}, "claimed_at": {"N": repr(now)}}
    drop = ["envelope", "callback_sid", "first_claimed_at"]
    return update_of(result, also=ledger, drop=drop)


class LedgerWrites:
    """Outcomes of a sender's batch, each one UpdateItem of its row's item (outcome_update),
    buffered and written WRITE_THREADS at once: as soon as FLUSH_AT are waiting, and whatever is
    left at `flush`.

    The sender flushes before it publishes or requeues anything, so no row is published or put
    back before its outcome is on its item. An invocation that dies with outcomes still
    buffered leaves those rows as claimed-and-calling: their next delivery waits out the
    in-doubt time and settles them the way any lost response is settled.
    """

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        *,
        reopen: Reopen,
        retention_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._reopen = reopen
        self._retention_days = retention_days
        self._clock = clock
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
        update = outcome_update(envelope, now=self._clock(), retention_days=self._retention_days)
        with self._lock:
            # The latest word on a row stands.
            self._pending[(job_id, row)] = update
            full = len(self._pending) >= FLUSH_AT
        if full:
            self.flush()

    def retryable(
        self, job_id: str, row: int, attempt: int, envelope: dict[str, Any] | None = None
    ) -> None:
        """Open the row to be called again, at once and only if its claim is still this
        batch's: a batch that ran past the in-doubt time may have had its claim taken over by
        another delivery, which settles the row (and may have called it since). Written
        unconditionally, a late retry reopened such a row and it was called twice. A refused
        row is in `refused`: the sender neither publishes nor requeues it. The attempt's
        `envelope`, when it made one, is recorded as the row's result in the same write."""
        with self._lock:
            held_at = self._held.get((job_id, row))
            # The latest word on a row stands: an outcome buffered before this is dropped.
            self._pending.pop((job_id, row), None)
        if not self._reopen(job_id, row, attempt, held_at, envelope):
            with self._lock:
                self.refused.add((job_id, row))

    def retryable_all(self, rows: Sequence[tuple[str, int, int]]) -> None:
        """`retryable` for each (job, row, attempt), up to WRITE_THREADS at once: rows given
        back together (no slot by the deadline, a job paused) took a write each one after
        another, and under load that outlasted the invocation. The first error is raised once
        the others are written."""
        if len(rows) <= 1:
            for row in rows:
                self.retryable(*row)
            return
        with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(rows))) as pool:
            list(pool.map(lambda row: self.retryable(*row), rows))

    def flush(self) -> None:
        """Write what is buffered; raises the first failure, keeping the unwritten outcomes
        for the next flush (the sender's last one raises, so nothing of this batch is published
        before its outcome is written), unless a later word replaced them."""
        with self._lock:
            taken, self._pending = self._pending, {}
        if not taken:
            return
        failed = self._write_all(taken)
        if failed:
            with self._lock:
                self._pending = {**{k: taken[k] for k in failed}, **self._pending}
            raise next(iter(failed.values()))

    def _write_all(
        self, updates: dict[tuple[str, int], dict[str, Any]]
    ) -> dict[tuple[str, int], Exception]:
        def write(key: tuple[str, int]) -> Exception | None:
            try:
                self._db.update_item(TableName=self._table, Key=row_key(*key), **updates[key])
            except Exception as error:  # noqa: BLE001 - raised by flush, once the rest are in
                return error
            return None

        keys = list(updates)
        if len(keys) > 1:
            with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(keys))) as pool:
                results = list(pool.map(write, keys))
        else:
            results = [write(k) for k in keys]
        return {k: e for k, e in zip(keys, results, strict=True) if e is not None}
