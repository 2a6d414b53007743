"""The enqueuer: puts a released chunk's rows on the send queue, each delayed until it is due."""

from __future__ import annotations

import logging

from chalicelib.observability import Metrics, bound
from chalicelib.queue import SendQueue
from chalicelib.records import QueuedRow
from chalicelib.storage import Storage

log = logging.getLogger(__name__)


class Enqueuer:
    def __init__(
        self, storage: Storage, queue: SendQueue, *, metrics: Metrics | None = None
    ) -> None:
        self._storage = storage
        self._queue = queue
        self._metrics = metrics

    def enqueue_chunk(self, bucket: str, key: str) -> int:
        rows, metadata = self._storage.read_chunk(bucket, key)
        # The release step stamps these on the object; without them the row times are unknown.
        job_id = metadata["job_id"]
        start = float(metadata["job_start"])
        queued = (
            QueuedRow(
                job_id=job_id,
                row=r.row,
                api=r.api,
                params=r.params,
                due_at=start + r.offset,
                job_start=start,
            )
            for r in rows
        )
        with bound(job_id=job_id):
            count = self._queue.enqueue(queued)
            log.info("job %s: %s enqueued, %d rows", job_id, key, count)
        if self._metrics is not None:
            self._metrics.count("RowsEnqueued", count)
            self._metrics.flush()
        return count
