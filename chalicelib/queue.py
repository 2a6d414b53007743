"""SQS adapter: the send queue and its dead-letter queue."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib.batching import Failed, chunked, send_with_retries
from chalicelib.planning import VISIBLE_EARLY_SECONDS, delay_seconds
from chalicelib.records import QueuedRow

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


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
        (chalicelib.planning.visible_early_seconds)."""
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
        """Put rows on the send queue, each delayed until (just before) it is due.

        Batches of 10 go out on several threads: a chunk at 200 CPS over 900 s is 18,000 requests,
        too many to send one after another.
        """
        count = 0
        url = self.url
        with ThreadPoolExecutor(max_workers=self._in_flight) as pool:
            futures = []
            for batch in chunked(rows):
                count += len(batch)
                futures.append(pool.submit(self._send_batch, url, batch, None))
                # Keep only a bounded number of batches in memory.
                if len(futures) >= self._in_flight * 4:
                    futures.pop(0).result()
            for future in futures:
                future.result()
        return count

    def retry_later(self, rows: Sequence[tuple[QueuedRow, float]]) -> None:
        """Put rows back on the send queue, each with its own delay in seconds."""
        for batch in chunked(rows):
            self._send_batch(self.url, [r for r, _ in batch], [d for _, d in batch])

    def dead_letter(self, rows: Sequence[tuple[QueuedRow, dict[str, Any]]]) -> None:
        """Move rows whose attempts ran out to the DLQ, with their last error."""
        for batch in chunked(rows):
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": json.dumps({**row.to_json(), "last_error": error}),
                }
                for i, (row, error) in enumerate(batch)
            ]
            self._send_entries(self.dead_letter_url, entries)

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
            self._send_batch(self.url, rows, None)
            self._sqs.delete_message_batch(
                QueueUrl=self.dead_letter_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(received)
                ],
            )
            moved += len(rows)
        return moved

    def _send_batch(self, url: str, batch: list[QueuedRow], delays: list[float] | None) -> None:
        now = self._clock()
        entries = []
        for i, row in enumerate(batch):
            delay = (
                delay_seconds(row.due_at - self._visible_early, now)
                if delays is None
                else delay_seconds(now + delays[i], now)
            )
            entries.append(
                {
                    "Id": str(i),
                    "MessageBody": json.dumps(row.to_json(), separators=(",", ":")),
                    "DelaySeconds": delay,
                }
            )
        self._send_entries(url, entries)

    def _send_entries(self, url: str, entries: list[dict[str, Any]]) -> None:
        def send(pending: list[dict[str, Any]]) -> list[Failed]:
            response = self._sqs.send_message_batch(QueueUrl=url, Entries=pending)  # type: ignore[arg-type]
            return [
                Failed(f["Id"], f["Code"], f.get("Message", ""), f["SenderFault"])
                for f in response.get("Failed", [])
            ]

        send_with_retries(send, entries, what="SendMessageBatch", sleep=self._sleep)
