"""SQS adapter: the send queue and its dead-letter queue.

Every SendMessageBatch is cut by count (10) and by bytes (chalicelib.core.batching): a request over
SQS's limit is refused whole, and its rows with it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib.core.batching import (
    SIZE_MARGIN_BYTES,
    Failed,
    chunked_by_size,
    message_size,
    send_with_retries,
)
from chalicelib.core.limits import SQS_MAX_BATCH_BYTES, SQS_MAX_MESSAGE_BYTES
from chalicelib.core.records import QueuedRow
from chalicelib.core.schedule import VISIBLE_EARLY_SECONDS, delay_seconds
from chalicelib.errors import CallqueueError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)


# SendMessageBatch refuses a request whose messages (bodies and attributes) add up to more than
# its limit whole, and a message over its own limit fails the request too.
_MAX_MESSAGE_BYTES = SQS_MAX_MESSAGE_BYTES - SIZE_MARGIN_BYTES
_MAX_REQUEST_BYTES = SQS_MAX_BATCH_BYTES - SIZE_MARGIN_BYTES


class RowTooLargeError(CallqueueError):
    """Rows too large for an SQS message, left off the queue while the others were sent.

    The splitter rejects a row over chalicelib.core.limits.MAX_ROW_BYTES, far below SQS's limit, so
    this means a row reached the queue without that check."""

    def __init__(self, rows: Sequence[tuple[QueuedRow, int]], max_bytes: int) -> None:
        named = ", ".join(f"job {r.job_id} row {r.row} ({size} bytes)" for r, size in rows)
        super().__init__(f"rows over the SQS message limit of {max_bytes} bytes: {named}")
        self.rows = [(r.job_id, r.row) for r, _ in rows]


class SendQueue:
    def __init__(
        self,
        sqs: SQSClient,
        queue_name: str,
        dead_letter_queue_name: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        in_flight: int = 8,
        visible_early: float = VISIBLE_EARLY_SECONDS,
    ) -> None:
        """`visible_early`: how long before it is due a row is made visible
        (chalicelib.core.schedule.visible_early_seconds)."""
        self._sqs = sqs
        self._visible_early = visible_early
        self._queue_name = queue_name
        self._dlq_name = dead_letter_queue_name
        self._clock = clock
        self._sleep = sleep
        self._in_flight = in_flight

    @cached_property
    def url(self) -> str:
        return self._sqs.get_queue_url(QueueName=self._queue_name)["QueueUrl"]

    @cached_property
    def dead_letter_url(self) -> str:
        return self._sqs.get_queue_url(QueueName=self._dlq_name)["QueueUrl"]

    def enqueue(self, rows: Iterable[QueuedRow]) -> int:
        """Put rows on the send queue, each delayed until (just before) it is due; returns how
        many went.

        Requests go out on several threads: a chunk at 200 CPS over 900 s is 18,000 requests,
        too many to send one after another. A request that fails stops the sending of more;
        the requests in flight finish, and the first failure raises (the chunk is enqueued
        again whole: the call ledger makes a row delivered twice safe). A row too large for
        SQS is left out and the others go; then RowTooLargeError names it.
        """
        count = 0
        url = self.url
        too_large: list[tuple[QueuedRow, int]] = []
        messages = (
            _Message(row, _body(row.to_json()), due_at=row.due_at - self._visible_early)
            for row in rows
        )
        futures: list[Future[None]] = []
        failed: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self._in_flight) as pool:
            for batch in _requests(_fitting(messages, too_large)):
                futures.append(pool.submit(self._send_batch, url, batch))
                count += len(batch)
                # Keep only a bounded number of batches in memory.
                if len(futures) >= self._in_flight * 4:
                    failed = futures.pop(0).exception()
                    if failed is not None:
                        break
        # The pool has waited for every request sent, so none is still going when this raises.
        errors = [e for e in (failed, *(f.exception() for f in futures)) if e is not None]
        for error in errors[1:]:
            log.error("another SendMessageBatch of the same rows failed", exc_info=error)
        if errors:
            raise errors[0]
        if too_large:
            raise RowTooLargeError(too_large, _MAX_MESSAGE_BYTES)
        return count

    def retry_later(self, rows: Sequence[tuple[QueuedRow, float]]) -> None:
        """Put rows back on the send queue, each with its own delay in seconds."""
        self._send_all(self.url, (_Message(r, _body(r.to_json()), delay=d) for r, d in rows))

    def dead_letter(self, rows: Sequence[tuple[QueuedRow, dict[str, Any]]]) -> None:
        """Move rows whose attempts ran out to the DLQ, with their last error."""
        self._send_all(
            self.dead_letter_url,
            (_Message(r, _body({**r.to_json(), "last_error": e})) for r, e in rows),
        )

    def dead_letters(self, *, limit: int = 10_000) -> list[dict[str, Any]]:
        """The rows in the DLQ, read without taking them (visibility timeout 0)."""
        rows: dict[str, dict[str, Any]] = {}
        empty = 0
        while len(rows) < limit and empty < 3:
            received = self._sqs.receive_message(
                QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=0
            ).get("Messages", [])
            fresh = [m for m in received if m["MessageId"] not in rows]
            empty = 0 if fresh else empty + 1
            for message in fresh:
                rows[message["MessageId"]] = json.loads(message["Body"])
        return list(rows.values())

    def redrive_dead_letters(self) -> int:
        """Put every row in the DLQ back on the send queue as a fresh first attempt, due now."""
        moved = 0
        while received := self._sqs.receive_message(
            QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10, VisibilityTimeout=60
        ).get("Messages", []):
            rows = []
            for message in received:
                data = json.loads(message["Body"])
                data.pop("last_error", None)
                rows.append(
                    replace(
                        QueuedRow.from_json(data), attempt=1, due_at=self._clock(), job_start=0.0
                    )
                )
            # Send first, delete after: a failure in between repeats a row, never loses one.
            self._send_all(
                self.url, (_Message(r, _body(r.to_json()), due_at=r.due_at) for r in rows)
            )
            self._sqs.delete_message_batch(
                QueueUrl=self.dead_letter_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(received)
                ],
            )
            moved += len(rows)
        return moved

    def _send_all(self, url: str, messages: Iterable[_Message]) -> None:
        """Send messages one request after another; a row too large for SQS is left out and
        raised after the others went."""
        too_large: list[tuple[QueuedRow, int]] = []
        for batch in _requests(_fitting(messages, too_large)):
            self._send_batch(url, batch)
        if too_large:
            raise RowTooLargeError(too_large, _MAX_MESSAGE_BYTES)

    def _send_batch(self, url: str, batch: list[_Message]) -> None:
        now = self._clock()
        entries = []
        for i, message in enumerate(batch):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": message.body}
            if message.due_at is not None:
                entry["DelaySeconds"] = delay_seconds(message.due_at, now)
            elif message.delay is not None:
                entry["DelaySeconds"] = delay_seconds(now + message.delay, now)
            entries.append(entry)
        self._send_entries(url, entries)

    def _send_entries(self, url: str, entries: list[dict[str, Any]]) -> None:
        def send(pending: list[dict[str, Any]]) -> list[Failed]:
            response = self._sqs.send_message_batch(QueueUrl=url, Entries=pending)  # type: ignore[arg-type]
            return [
                Failed(f["Id"], f["Code"], f.get("Message", ""), f["SenderFault"])
                for f in response.get("Failed", [])
            ]

        send_with_retries(send, entries, what="SendMessageBatch", sleep=self._sleep)


@dataclass(frozen=True)
class _Message:
    """A row's message: its body, and when it becomes visible (at `due_at`, `delay` seconds
    after it is sent, or at once when neither is given)."""

    row: QueuedRow
    body: str
    due_at: float | None = None
    delay: float | None = None


def _body(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _fitting(
    messages: Iterable[_Message], too_large: list[tuple[QueuedRow, int]]
) -> Iterator[_Message]:
    """The messages SQS takes; those over its message limit are added to `too_large`."""
    for message in messages:
        size = message_size(message.body)
        if size > _MAX_MESSAGE_BYTES:
            too_large.append((message.row, size))
        else:
            yield message


def _requests(messages: Iterable[_Message]) -> Iterator[list[_Message]]:
    return chunked_by_size(messages, lambda m: message_size(m.body), _MAX_REQUEST_BYTES)
